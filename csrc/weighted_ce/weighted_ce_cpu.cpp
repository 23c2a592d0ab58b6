#include "weighted_ce_launch.h"

namespace noisyseg {

template <> void wce_forward_cpu<NOISYSEG_CPU_ISA>(const WceArgs& a) { wce_forward(a, CpuLauncher{}); }
template <> void wce_backward_cpu<NOISYSEG_CPU_ISA>(const WceArgs& a) { wce_backward(a, CpuLauncher{}); }
template <> void wce_double_backward_cpu<NOISYSEG_CPU_ISA>(const WceArgs& a) { wce_double_backward(a, CpuLauncher{}); }

}  // namespace noisyseg
