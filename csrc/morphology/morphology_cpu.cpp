#include "morphology_launch.h"

namespace noisyseg {

// Chunks of output lines (n, d, h). Threads only for large passes (>= 2^26 element reads, a few ms on one core): a small
// pass takes well under a millisecond on one core, and on a loaded machine an OpenMP barrier can
// wait a whole scheduler time slice for a descheduled thread.
template <> void morph_stencil_cpu<NOISYSEG_CPU_ISA>(const MorphArgs& a) {
  morph_dispatch(a, "morphology_stencil", [&](auto tag, auto is_max) {
    using T = typename decltype(tag)::type;
    constexpr bool IsMax = decltype(is_max)::value;
    const morph::Geom g{a.D, a.H, a.W, a.plane};
    const T* src = as_ptr<const T>(a.src);
    T* dst = as_ptr<T>(a.dst);
    const int32_t* off = as_ptr<const int32_t>(a.offsets);
    const int64_t lines = a.N * a.D * a.H;
    const int64_t reads_per_line = a.W * (a.K > 0 ? a.K : 1);
    const bool parallel = lines * reads_per_line >= (int64_t(1) << 26);
    const int64_t grain = !parallel ? (lines > 0 ? lines : 1)
                                    : ((int64_t(1) << 21) + reads_per_line - 1) / reads_per_line;
    parallel_for(lines, grain, [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        const int64_t h = line % a.H, nd = line / a.H;
        if (!a.per_element) {
          morph::stencil_line<IsMax>(src, dst, g, off, a.K, nd / a.D, nd % a.D, h);
          continue;
        }
        T* out = dst + line * a.W;
        for (int64_t w = 0; w < a.W; ++w) out[w] = morph::stencil_at<IsMax>(src, g, off, a.K, nd / a.D, nd % a.D, h, w);
      }
    });
  });
}

template <> void morph_combine_cpu<NOISYSEG_CPU_ISA>(const MorphArgs& a) { morph_combine(a, CpuLauncher{}); }

}  // namespace noisyseg
