#include "morphology_launch.h"

namespace noisyseg {

// One thread per output element (grid-stride loop); the offsets live in device memory.
template <bool IsMax, typename T>
__global__ void morph_stencil_kernel(const T* src, T* dst, morph::Geom g, const int32_t* off, int64_t K,
                                     int64_t total) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t w = i % g.W, rest = i / g.W;
    const int64_t h = rest % g.H, rest2 = rest / g.H;
    const int64_t d = rest2 % g.D, n = rest2 / g.D;
    dst[i] = morph::stencil_at<IsMax>(src, g, off, K, n, d, h, w);
  }
}

void morph_stencil_cuda(const MorphArgs& a, uintptr_t stream) {
  const int64_t total = a.N * a.D * a.H * a.W;
  if (total == 0) return;
  morph_dispatch(a, "morphology_stencil", [&](auto tag, auto is_max) {
    using T = typename decltype(tag)::type;
    constexpr bool IsMax = decltype(is_max)::value;
    morph_stencil_kernel<IsMax, T><<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
        as_ptr<const T>(a.src), as_ptr<T>(a.dst), morph::Geom{a.D, a.H, a.W, a.plane}, as_ptr<const int32_t>(a.offsets),
        a.K, total);
    cuda_check_launch("morphology_stencil");
  });
}

void morph_combine_cuda(const MorphArgs& a, uintptr_t stream) {
  morph_combine(a, CudaLauncher{stream, "morphology_combine"});
}

}  // namespace noisyseg
