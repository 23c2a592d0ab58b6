#include "morphology_launch.h"

namespace noisyseg {

// One OpenMP task per chunk of output lines (n, d, h).
void morph_stencil_cpu(const MorphArgs& a) {
  morph_dispatch(a, "morphology_stencil", [&](auto tag, auto is_max) {
    using T = typename decltype(tag)::type;
    constexpr bool IsMax = decltype(is_max)::value;
    const morph::Geom g{a.D, a.H, a.W};
    const T* src = as_ptr<const T>(a.src);
    T* dst = as_ptr<T>(a.dst);
    const int32_t* off = as_ptr<const int32_t>(a.offsets);
    const int64_t lines = a.N * a.D * a.H;
    const int64_t grain = a.W >= 16384 ? 1 : 16384 / a.W;
    parallel_for(lines, grain, [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        const int64_t h = line % a.H, nd = line / a.H;
        morph::stencil_line<IsMax>(src, dst, g, off, a.K, nd / a.D, nd % a.D, h);
      }
    });
  });
}

void morph_combine_cpu(const MorphArgs& a) { morph_combine(a, CpuLauncher{}); }

}  // namespace noisyseg
