// weighted_ce: arguments and launchers (CPU always, CUDA when compiled with it).
#pragma once

#include <cstdint>

namespace noisyseg {

struct WceArgs {
  int dtype = 0, label_dtype = 0;  // DType codes of logits (and weight, grads) and target
  uintptr_t x = 0, target = 0, weight = 0;  // weight 0: all weights 1
  int64_t N = 0, C = 0, S = 0, ignore_index = -100, parts = 1;
  // forward
  uintptr_t loss_map = 0, partials = 0;  // partials: (parts, 4) doubles
  // forward, CPU only: with grad_x set, it also writes d loss / d x of the summed loss, divided by
  // the number of valid labels (counted first) when grad_mean, i.e. the gradient of "mean"
  bool grad_mean = false;
  // backward and double backward
  uintptr_t g = 0, gws = 0, ggx = 0, ggw = 0;
  int64_t g_stride = 1;
  uintptr_t grad_x = 0, grad_w = 0, grad_g = 0;
};

// CPU entry points, one per compiled instruction-set variant kIsa (common/cpu_isa.h); the
// bindings call the active one through NOISYSEG_CPU_FN.
template <int kIsa> void wce_forward_cpu(const WceArgs& a);
template <int kIsa> void wce_backward_cpu(const WceArgs& a);
template <int kIsa> void wce_double_backward_cpu(const WceArgs& a);
#ifdef NOISYSEG_WITH_CUDA
void wce_forward_cuda(const WceArgs& a, uintptr_t stream);
void wce_backward_cuda(const WceArgs& a, uintptr_t stream);
void wce_double_backward_cuda(const WceArgs& a, uintptr_t stream);
#endif

}  // namespace noisyseg
