#include <vector>

#include "distance_transform_launch.h"

namespace noisyseg {
namespace {

// CPU policy: OpenMP over chunks of lines, each chunk with its own envelope scratch.
struct EdtCpuLauncher : CpuLauncher {
  template <typename Body>
  void lines(const edt::LineMap& map, int64_t max_len, const Body& body) const {
    parallel_for(map.total, 64, [&](int64_t begin, int64_t end) {
      const size_t len = size_t(max_len > 0 ? max_len : 1);
      std::vector<int32_t> v(len);
      std::vector<float> fv(len);
      std::vector<double> z(len);
      const edt::Scratch s{v.data(), fv.data(), z.data(), 1};
      for (int64_t t = begin; t < end; ++t) {
        int64_t j, l;
        map.locate(t, j, l);
        body(j, l, s);
      }
    });
  }
};

}  // namespace

void distance_transform_cpu(const EdtArgs& a) { distance_transform_run(a, EdtCpuLauncher{}); }
void mask_boxes_cpu(const BoxArgs& a) { mask_boxes_run(a, EdtCpuLauncher{}); }
void mask_surface_cpu(const SurfaceArgs& a) { mask_surface_run(a, CpuLauncher{}); }

}  // namespace noisyseg
