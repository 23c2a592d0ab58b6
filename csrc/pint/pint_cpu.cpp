#include "pint_launch.h"

namespace noisyseg {

void pint_mc_stacked_cpu(const PintArgs& a) { pint_mc_stacked(a, CpuStripLauncher{}); }
void pint_mc_accumulate_cpu(const PintArgs& a) { pint_mc_accumulate(a, CpuStripLauncher{}); }
void pint_mc_finalize_cpu(const PintArgs& a) { pint_mc_finalize(a, CpuStripLauncher{}); }
void pint_loss_forward_cpu(const PintArgs& a) { pint_loss_forward(a, CpuStripLauncher{}); }
void pint_loss_backward_cpu(const PintArgs& a) { pint_loss_backward(a, CpuStripLauncher{}); }

}  // namespace noisyseg
