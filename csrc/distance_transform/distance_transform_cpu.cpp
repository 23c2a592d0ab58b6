#include <vector>

#include "distance_transform_launch.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN
namespace {

// CPU policy: OpenMP over chunks of lines, each chunk with its own envelope scratch. Lines differ
// in length (boxes differ in size) and every pass ends in a barrier, so chunks are handed out
// dynamically: a thread that is slow (or descheduled on a busy machine) holds up nobody. No
// reductions happen here, so results do not depend on the schedule.
struct EdtCpuLauncher : CpuLauncher {
  // Bodies with kBlocks also offer adjacent_lines(j, l) and block(j, l, m, scratch) for m lines
  // taken together (see EnvelopePass).
  template <typename Body, typename = void>
  struct HasBlocks { static constexpr bool value = false; };
  template <typename Body>
  struct HasBlocks<Body, decltype(void(Body::kBlocks))> { static constexpr bool value = Body::kBlocks; };

  template <typename Body>
  void lines(const edt::LineMap& map, int64_t max_len, const Body& body) const {
    const int64_t grain = 32;
    const int64_t chunks = (map.total + grain - 1) / grain;
    const size_t len = size_t(max_len > 0 ? max_len : 1);
#pragma omp parallel if (chunks > 1)
    {
      std::vector<int32_t> v(len);
      std::vector<float> fv(len);
      std::vector<double> z(len);
      const edt::Scratch s{v.data(), fv.data(), z.data(), 1};
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t end = (c + 1) * grain < map.total ? (c + 1) * grain : map.total;
        for (int64_t t = c * grain; t < end;) {
          int64_t j, l;
          map.locate(t, j, l);  // a binary search over the jobs: small next to a line's work
          if constexpr (HasBlocks<Body>::value) {
            int64_t m = body.adjacent_lines(j, l);
            m = m < end - t ? m : end - t;
            body.block(j, l, m, s);
            t += m;
          } else {
            body(j, l, s);
            ++t;
          }
        }
      }
    }
  }
};

}  // namespace
NOISYSEG_CPU_NAMESPACE_END

template <> void distance_transform_cpu<NOISYSEG_CPU_ISA>(const EdtArgs& a) { distance_transform_run(a, EdtCpuLauncher{}); }
template <> void mask_boxes_cpu<NOISYSEG_CPU_ISA>(const BoxArgs& a) { mask_boxes_run(a, EdtCpuLauncher{}); }
template <> void mask_surface_cpu<NOISYSEG_CPU_ISA>(const SurfaceArgs& a) { mask_surface_run(a, CpuLauncher{}); }

}  // namespace noisyseg
