// Marks the math shared by the CPU and the CUDA launchers: one definition, compiled by both, and
// always inlined into the launcher's loop on both sides. On the host this is what lets the strip
// loops vectorise: GCC's heuristics otherwise leave bigger helpers (StripExp::init, the strip
// bodies) as calls, and a call inside a strip loop keeps the loop scalar (measured: the PINT
// forward ran 21 ns a pixel instead of 2).
#pragma once

#if defined(__CUDACC__)
#define NS_HD __host__ __device__ __forceinline__
#else
#define NS_HD inline __attribute__((always_inline))
#endif

// `#pragma unroll n` for nvcc (GCC warns on it and vectorises the host loops anyway).
#if defined(__CUDACC__)
#define NS_PRAGMA(x) _Pragma(#x)
#define NS_UNROLL(n) NS_PRAGMA(unroll n)
#else
#define NS_UNROLL(n)
#endif

#include <cstdint>
#include <cmath>
#include <limits>

#include "cpu_isa.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

template <typename A>
NS_HD A ns_inf() { return std::numeric_limits<A>::infinity(); }

// max that propagates NaN (std::fmax drops it; torch propagates it).
template <typename A>
NS_HD A nan_max(A a, A b) { return (b > a || b != b) ? b : a; }

// ns_exp / ns_log (accurate on the device, vectorisable on the host) live in vec_math.h.

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

// A label to learn from: in [0, C) and not ignore_index (bitwise &, no branch: the pixel loops
// that use it vectorise).
NS_HD bool is_valid_label(int64_t t, int64_t C, int64_t ignore_index) {
  return (t != ignore_index) & (t >= 0) & (t < C);
}

// Records a bad input value found inside a kernel (e.g. a label out of range) in a 2-slot int64
// flag that Python zeroes before the launch and reads after it: flag[0] = 1, flag[1] = the value.
// Concurrent writers all store 1 and some bad value, so the race is benign.
NS_HD void record_bad_value(int64_t* flag, int64_t value) {
  if (!flag) return;
#if defined(__CUDA_ARCH__)
  flag[1] = value;
  __threadfence();
  flag[0] = 1;
#else
  __atomic_store_n(&flag[1], value, __ATOMIC_RELAXED);
  __atomic_store_n(&flag[0], int64_t(1), __ATOMIC_RELAXED);
#endif
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
