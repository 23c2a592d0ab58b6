#include "pint_launch.h"

namespace noisyseg {

void pint_mc_stacked_cuda(const PintArgs& a, uintptr_t stream) {
  pint_mc_stacked(a, CudaStripLauncher{stream, "mc_uncertainty"});
}
void pint_mc_accumulate_cuda(const PintArgs& a, uintptr_t stream) {
  pint_mc_accumulate(a, CudaStripLauncher{stream, "UncertaintyAccumulator.add"});
}
void pint_mc_finalize_cuda(const PintArgs& a, uintptr_t stream) {
  pint_mc_finalize(a, CudaStripLauncher{stream, "UncertaintyAccumulator.result"});
}
void pint_loss_forward_cuda(const PintArgs& a, uintptr_t stream) {
  pint_loss_forward(a, CudaStripLauncher{stream, "pint_loss"});
}
void pint_loss_backward_cuda(const PintArgs& a, uintptr_t stream) {
  pint_loss_backward(a, CudaStripLauncher{stream, "pint_loss backward"});
}

}  // namespace noisyseg
