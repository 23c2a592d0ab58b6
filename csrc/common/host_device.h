// Marks the math shared by the CPU and the CUDA launchers: one definition, compiled by both.
#pragma once

#if defined(__CUDACC__)
#define NS_HD __host__ __device__ __forceinline__
#else
#define NS_HD inline
#endif

#include <cstdint>
#include <cmath>
#include <limits>

namespace noisyseg {

template <typename A>
NS_HD A ns_inf() { return std::numeric_limits<A>::infinity(); }

// max that propagates NaN (std::fmax drops it; torch propagates it).
template <typename A>
NS_HD A nan_max(A a, A b) { return ((b > a) | (b != b)) ? b : a; }

#if defined(__CUDA_ARCH__)
NS_HD float ns_exp(float x) { return expf(x); }
NS_HD float ns_log(float x) { return logf(x); }
#else
// Host float exp/log: branch-free Cephes polynomials (about 1 ulp), inlined so that loops over
// pixels can vectorise; glibc's expf/logf are opaque calls that cost most of a CPU kernel's time.
NS_HD float ns_bits_float(int32_t i) { float f; __builtin_memcpy(&f, &i, 4); return f; }
NS_HD int32_t ns_float_bits(float f) { int32_t i; __builtin_memcpy(&i, &f, 4); return i; }

NS_HD float ns_exp(float x) {
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const float xc = x > 88.0f ? 88.0f : x;  // comparisons keep NaN as NaN
  const float t = xc * 1.44269504088896341f + magic;
  const int32_t n = ns_float_bits(t) - ns_float_bits(magic);
  const float fn = t - magic;
  float r = xc - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const float scale = ns_bits_float((n + 127) << 23);  // 2^n, valid for n in [-126, 127]
  return xc < -87.0f ? 0.0f : y * scale;
}

// log for x > 0 normal (callers pass sums >= 1); NaN in, NaN out.
NS_HD float ns_log(float x) {
  const int32_t bits = ns_float_bits(x);
  float e = float((bits >> 23) - 127);
  float m = ns_bits_float((bits & 0x007fffff) | 0x3f800000);  // mantissa in [1, 2)
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1.0f : e;
  const float f = m - 1.0f, z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  const float res = f + y + 0.693359375f * e;
  return x != x ? x : res;
}
#endif
NS_HD double ns_exp(double x) { return exp(x); }
NS_HD double ns_log(double x) { return log(x); }

}  // namespace noisyseg

namespace noisyseg {

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

}  // namespace noisyseg
