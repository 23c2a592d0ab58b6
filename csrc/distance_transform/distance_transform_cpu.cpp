#include <vector>

#include "distance_transform_launch.h"

namespace noisyseg {
namespace {

// CPU policy: OpenMP over lines, each chunk with its own scratch.
struct EdtCpuLauncher : CpuLauncher {
  template <typename Body>
  void lines(int64_t B, int64_t L, int64_t max_len, const Body& body) const {
    const int64_t total = B * L;
    const int64_t grain = 64;
    parallel_for(total, grain, [&](int64_t begin, int64_t end) {
      std::vector<int32_t> v(size_t(max_len > 0 ? max_len : 1));
      std::vector<float> fv(v.size());
      std::vector<double> z(v.size());
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / L;
        body(b, t - b * L, v.data(), fv.data(), z.data(), int64_t(1));
      }
    });
  }
};

}  // namespace

void distance_transform_cpu(const EdtArgs& a) { distance_transform_run(a, EdtCpuLauncher{}); }
void mask_surface_cpu(const SurfaceArgs& a) { mask_surface_run(a, CpuLauncher{}); }

}  // namespace noisyseg
