// distance_transform: arguments and launchers (CPU always, CUDA when compiled with it).
#pragma once

#include <cstdint>

namespace noisyseg {

// Images are (B, n0, n1, n2) row-major; D = real spatial dims (leading sizes of padding are 1).
struct EdtArgs {
  uintptr_t mask = 0;                  // uint8 (B, S) seeds: nonzero = seed
  uintptr_t out = 0;                   // float32 (B, S) distances
  uintptr_t box_lo = 0, box_hi = 0;    // int64 (B, 3) each, or 0: the whole image
  uintptr_t scratch_v = 0, scratch_f = 0, scratch_z = 0;  // CUDA only: int32, float32, float64, B*S each
  int64_t B = 0, D = 1, n0 = 1, n1 = 1, n2 = 1;
  double h0 = 1.0, h1 = 1.0, h2 = 1.0;  // spacing along the padded axes
};

struct SurfaceArgs {
  uintptr_t mask = 0;  // uint8 (B, S)
  uintptr_t out = 0;   // uint8 (B, S): 1 on the surface
  int64_t B = 0, D = 1, n0 = 1, n1 = 1, n2 = 1, parts = 1;
};

void distance_transform_cpu(const EdtArgs& a);
void mask_surface_cpu(const SurfaceArgs& a);
#ifdef NOISYSEG_WITH_CUDA
void distance_transform_cuda(const EdtArgs& a, uintptr_t stream);
void mask_surface_cuda(const SurfaceArgs& a, uintptr_t stream);
#endif

}  // namespace noisyseg
