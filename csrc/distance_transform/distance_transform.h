// distance_transform: arguments and launchers (CPU always, CUDA when compiled with it).
// See distance_transform_math.h for the job table, the packed output and the masks' sources.
#pragma once

#include <cstdint>

namespace noisyseg {

struct EdtArgs {
  uintptr_t src0 = 0, src1 = 0;  // mask sources (label maps or 0/1 planes) of dtype code label_dtype
  int label_dtype = 4;           // kUInt8
  uintptr_t jobs = 0;            // int64 (J, kJobCols)
  uintptr_t line_start = 0;      // int64 (4, J + 1) prefix sums of each job's lines per pass (along
                                 // axes 0, 1, 2, then the query pass), or 0: lines_* / J per job
  int64_t J = 0, lines0 = 0, lines1 = 0, lines2 = 0, lines_query = 0;  // total lines of each pass
  int64_t D = 1, n0 = 1, n1 = 1, n2 = 1;             // image sizes padded to 3D (leading 1s)
  double h0 = 1.0, h1 = 1.0, h2 = 1.0;               // spacing along the padded axes
  bool surface = false;          // seeds = the mask's surface voxels (else its voxels)
  uintptr_t out = 0;             // float32 packed output
  uintptr_t qflags = 0;          // uint8 packed query flags (as many slots as out, zeroed), or 0
  // CUDA only, as many slots as out: envelope scratch v int32, fv float32, z float64
  uintptr_t scratch_v = 0, scratch_f = 0, scratch_z = 0;
};

struct BoxArgs {
  uintptr_t src0 = 0, src1 = 0;
  int label_dtype = 4;
  uintptr_t rows = 0;  // int64 (R, 5): source 0/1, plane offset, first class, classes (<= 32), first box
  uintptr_t box = 0;   // int32 (boxes, 6), initialised to (INT32_MAX x 3, -1 x 3)
  uintptr_t flag = 0;  // int64[2]: a value outside [0, num_values) seen in a plane
  int64_t num_values = 2;
  int64_t R = 0, D = 1, n0 = 1, n1 = 1, n2 = 1;
};

struct SurfaceArgs {
  uintptr_t mask = 0;  // uint8 (B, S)
  uintptr_t out = 0;   // uint8 (B, S): 1 on the surface
  int64_t B = 0, D = 1, n0 = 1, n1 = 1, n2 = 1, parts = 1;
};

// CPU entry points, one per compiled instruction-set variant kIsa (common/cpu_isa.h); the
// bindings call the active one through NOISYSEG_CPU_FN.
template <int kIsa> void distance_transform_cpu(const EdtArgs& a);
template <int kIsa> void mask_boxes_cpu(const BoxArgs& a);
template <int kIsa> void mask_surface_cpu(const SurfaceArgs& a);
#ifdef NOISYSEG_WITH_CUDA
void distance_transform_cuda(const EdtArgs& a, uintptr_t stream);
void mask_boxes_cuda(const BoxArgs& a, uintptr_t stream);
void mask_surface_cuda(const SurfaceArgs& a, uintptr_t stream);
#endif

}  // namespace noisyseg
