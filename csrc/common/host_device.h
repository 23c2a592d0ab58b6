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

// Labels of a target map (uint8 / bool, int32 or int64) against C classes and ignore_index, tested
// with 32-bit operations only, bitwise (no branch), so that the pixel loops around them vectorise.
// 32 bits because the baseline variant's SSE2 has no 64-bit compare (pcmpgtq is SSE4.2): with the
// label tested as an int64, every weighted_ce loop stayed scalar there; and 32-bit lanes are those
// of the float math. An int64 is split into its halves: t is in [0, C) when the high half is 0 and
// the low half (unsigned) is below C, and equals ignore_index when both halves do. Assumes
// C < 2^31. Three functions rather than one struct: a struct local in an `omp simd` loop is kept
// in memory, one copy a lane, and the loop did not vectorise. Compare label_class(t), not t, with
// class indices (int32 too): it is the class wherever label_valid(t) holds.
NS_HD uint32_t label_high_bits(int64_t t) { return uint32_t(uint64_t(t) >> 32); }
NS_HD uint32_t label_high_bits(int32_t t) { return uint32_t(t >> 31); }  // the sign extension
NS_HD uint32_t label_high_bits(uint8_t) { return 0u; }

template <typename L>
NS_HD bool label_in_range(L t, int64_t C) { return (label_high_bits(t) == 0u) & (uint32_t(t) < uint32_t(C)); }
template <typename L>
NS_HD bool label_ignored(L t, int64_t ignore_index) {
  return (uint32_t(t) == uint32_t(uint64_t(ignore_index))) &
         (label_high_bits(t) == uint32_t(uint64_t(ignore_index) >> 32));
}
// A label to learn from: in [0, C) and not ignore_index.
template <typename L>
NS_HD bool label_valid(L t, int64_t C, int64_t ignore_index) {
  return label_in_range(t, C) & !label_ignored(t, ignore_index);
}
// Outside [0, C) and not ignore_index: the kernels count these, and Python raises.
template <typename L>
NS_HD bool label_bad(L t, int64_t C, int64_t ignore_index) {
  return !label_in_range(t, C) & !label_ignored(t, ignore_index);
}
// The class of a valid label (the low 32 bits).
template <typename L>
NS_HD int32_t label_class(L t) { return int32_t(uint32_t(t)); }

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
