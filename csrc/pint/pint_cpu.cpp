#include "pint_launch.h"

namespace noisyseg {

template <> void pint_mc_stacked_cpu<NOISYSEG_CPU_ISA>(const PintArgs& a) { pint_mc_stacked(a, CpuStripLauncher{}); }
template <> void pint_mc_accumulate_cpu<NOISYSEG_CPU_ISA>(const PintArgs& a) { pint_mc_accumulate(a, CpuStripLauncher{}); }
template <> void pint_mc_finalize_cpu<NOISYSEG_CPU_ISA>(const PintArgs& a) { pint_mc_finalize(a, CpuStripLauncher{}); }
template <> void pint_loss_forward_cpu<NOISYSEG_CPU_ISA>(const PintArgs& a) { pint_loss_forward(a, CpuStripLauncher{}); }
template <> void pint_loss_backward_cpu<NOISYSEG_CPU_ISA>(const PintArgs& a) { pint_loss_backward(a, CpuStripLauncher{}); }

}  // namespace noisyseg
