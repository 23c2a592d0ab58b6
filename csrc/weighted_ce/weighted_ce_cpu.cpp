#include "weighted_ce_launch.h"

namespace noisyseg {

void wce_forward_cpu(const WceArgs& a) { wce_forward(a, CpuLauncher{}); }
void wce_backward_cpu(const WceArgs& a) { wce_backward(a, CpuLauncher{}); }
void wce_double_backward_cpu(const WceArgs& a) { wce_double_backward(a, CpuLauncher{}); }

}  // namespace noisyseg
