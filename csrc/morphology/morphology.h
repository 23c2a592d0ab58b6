// morphology: arguments and launchers (CPU always, CUDA when compiled with it).
#pragma once

#include <cstdint>

namespace noisyseg {

struct MorphArgs {
  int dtype = 0;                      // DType code: bool / uint8 / int32 / int64
  uintptr_t src = 0, dst = 0;         // (N, D, H, W) contiguous; stencil src: stacked planes
  uintptr_t aux = 0;                  // combine: the second input
  uintptr_t offsets = 0;              // stencil: (K, 4) int32 (plane, dd, dh, dw) on the tensors' device
  int64_t K = 0;
  int64_t N = 0, D = 1, H = 1, W = 1;
  int64_t plane = 0;                  // stencil: elements between stacked source planes
  bool is_max = true;                 // stencil: max (dilation) or min (erosion) pass
  bool per_element = false;           // CPU stencil: loop over elements with the CUDA kernel's
                                      // per-element math (lets CPU tests check that code path)
  int mode = 0;                       // combine: 0 = keep foreground, 1 = agree or zero
};

// CPU entry points, one per compiled instruction-set variant kIsa (common/cpu_isa.h); the
// bindings call the active one through NOISYSEG_CPU_FN.
template <int kIsa> void morph_stencil_cpu(const MorphArgs& a);
template <int kIsa> void morph_combine_cpu(const MorphArgs& a);
#ifdef NOISYSEG_WITH_CUDA
void morph_stencil_cuda(const MorphArgs& a, uintptr_t stream);
void morph_combine_cuda(const MorphArgs& a, uintptr_t stream);
#endif

}  // namespace noisyseg
