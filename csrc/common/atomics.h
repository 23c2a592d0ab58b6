// Atomic min / max on int32 for kernels shared by the CPU and CUDA launchers (bounding boxes and
// other order-independent reductions): atomicMin/atomicMax on the GPU, a compare-exchange loop on
// the CPU. Both skip the write when the stored value is already at least as good.
#pragma once

#include <cstdint>

#include "cpu_isa.h"
#include "host_device.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

NS_HD void atomic_min_i32(int32_t* p, int32_t v) {
#if defined(__CUDA_ARCH__)
  if (*(volatile int32_t*)p > v) atomicMin(p, v);
#else
  int32_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (v < cur && !__atomic_compare_exchange_n(p, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
#endif
}

NS_HD void atomic_max_i32(int32_t* p, int32_t v) {
#if defined(__CUDA_ARCH__)
  if (*(volatile int32_t*)p < v) atomicMax(p, v);
#else
  int32_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (v > cur && !__atomic_compare_exchange_n(p, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
#endif
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
