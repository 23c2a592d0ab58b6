#include "weighted_ce_launch.h"

namespace noisyseg {

void wce_forward_cuda(const WceArgs& a, uintptr_t stream) {
  wce_forward(a, CudaLauncher{stream, "weighted_ce_forward"});
}
void wce_backward_cuda(const WceArgs& a, uintptr_t stream) {
  wce_backward(a, CudaLauncher{stream, "weighted_ce_backward"});
}
void wce_double_backward_cuda(const WceArgs& a, uintptr_t stream) {
  wce_double_backward(a, CudaLauncher{stream, "weighted_ce_double_backward"});
}

}  // namespace noisyseg
