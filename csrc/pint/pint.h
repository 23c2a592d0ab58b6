// pint: arguments and launchers of the mean-teacher kernels (uncertainty and gated loss).
#pragma once

#include <cstdint>

namespace noisyseg {

struct PintArgs {
  int dtype = 0, label_dtype = 6;  // DType codes of the scores (teacher or student) and target
  uintptr_t x = 0, target = 0, partials = 0;  // target 0 = absent (uncertainty only)
  int64_t T = 1, N = 0, C = 0, S = 0, ignore_index = -100, parts = 1;
  // uncertainty: running sums (accumulation dtype), outputs mean (N, C, S) and u (N, S)
  uintptr_t sums = 0, mean = 0, u = 0;
  bool first = true, normalize = false;
  int64_t count = 0;  // number of passes summed (streaming result)
  // uncertainty: image output (N,) and, with a target, bad (N,) = each image's labels out of
  // range, both in the accumulation dtype (the loss counts its own in stats[3])
  uintptr_t image = 0, bad = 0;
  // gated loss: mu (N, C, S) and u (N, S) in the accumulation dtype; the image gate (N,) bytes,
  // written first from image_u (N,) (accumulation dtype) by image_mode (0 all, 1 threshold,
  // 2 keep the `keep` lowest; pint_math.h ImageGate)
  uintptr_t mu = 0, image_u = 0, image_gate = 0, gate = 0, loss_map = 0;
  int image_mode = 0;
  double pixel_threshold = 0.0, image_threshold = 0.0, weight = 1.0;
  int64_t keep = 0;
  bool has_pixel_threshold = false;
  // reduction (pint_math.h Reduction), the reduced loss (0-dim, the student's dtype) and stats (4,)
  // [valid pixels, trusted fraction, image fraction, labels out of range] in the accumulation dtype
  int reduction = 1;
  uintptr_t loss = 0, stats = 0;
  // d loss / d student scores (N, C, S) in the accumulation dtype, written by the forward; 0 = not wanted
  uintptr_t dloss = 0;
  // forward, "mean", host memory only: count the valid pixels first and write dloss divided by
  // that count (the gradient for an upstream 1, which the backward may then return as it is)
  bool prescale = false;
  // backward: upstream gradient g (0-dim, or (N, S) when g_map) in the student's dtype (a.dtype)
  // and grad (N, C, S) = dloss * g (/ count for "mean"; Python passes "sum" for a prescaled
  // dloss), also the student's dtype
  uintptr_t g = 0, grad = 0;
  bool g_map = false;
};

// CPU entry points, one per compiled instruction-set variant kIsa (common/cpu_isa.h); the
// bindings call the active one through NOISYSEG_CPU_FN.
template <int kIsa> void pint_mc_stacked_cpu(const PintArgs& a);
template <int kIsa> void pint_mc_accumulate_cpu(const PintArgs& a);
template <int kIsa> void pint_mc_finalize_cpu(const PintArgs& a);
template <int kIsa> void pint_loss_forward_cpu(const PintArgs& a);
template <int kIsa> void pint_loss_backward_cpu(const PintArgs& a);
#ifdef NOISYSEG_WITH_CUDA
void pint_mc_stacked_cuda(const PintArgs& a, uintptr_t stream);
void pint_mc_accumulate_cuda(const PintArgs& a, uintptr_t stream);
void pint_mc_finalize_cuda(const PintArgs& a, uintptr_t stream);
void pint_loss_forward_cuda(const PintArgs& a, uintptr_t stream);
void pint_loss_backward_cuda(const PintArgs& a, uintptr_t stream);
#endif

}  // namespace noisyseg
