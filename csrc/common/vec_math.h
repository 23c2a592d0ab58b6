// exp and log written so that GCC can vectorise loops calling them (no libm call, no branch):
// glibc's vector variants are only declared under -ffast-math, which the build does not use.
// float: Cody-Waite range reduction and the Cephes minimax polynomials (about 1-2 ulp);
// double: libm (not a hot path). On the device they are CUDA's intrinsics, like ns_exp/ns_log.
#pragma once

#include <cmath>
#include <cstdint>

#include "host_device.h"
#include "scalar_types.h"

namespace noisyseg {

// exp(x): accurate for x <= 88.3 (callers here pass x - max <= 0), +inf above 88.72, 0 below
// -87.34 (the subnormal range is flushed), NaN in -> NaN out.
NS_HD float vexp(float x) {
#if defined(__CUDA_ARCH__)
  return __expf(x);
#else
  const float xc = x > 88.3f ? 88.3f : (x < -87.34f ? -87.34f : x);
  const float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (xc - k * 0.693359375f) - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const uint32_t shift = uint32_t(int32_t(k)) << 23;  // multiply by 2^k through the exponent bits
  const float y = bits_to_float(float_to_bits(p) + shift);
  return x != x ? x : (x > 88.72283905f ? ns_inf<float>() : (x < -87.33654475f ? 0.0f : y));
#endif
}

// log(x): log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, subnormals handled.
NS_HD float vlog(float x) {
#if defined(__CUDA_ARCH__)
  return __logf(x);
#else
  const bool sub = x < 1.17549435e-38f;
  const float xs = sub ? x * 8388608.0f : x;  // scale subnormals by 2^23
  const uint32_t b = float_to_bits(xs);
  int32_t e = int32_t((b >> 23) & 0xffu) - 126 - (sub ? 23 : 0);
  float m = bits_to_float((b & 0x007fffffu) | 0x3f000000u);  // mantissa in [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1 : e;
  const float f = low ? m + m - 1.0f : m - 1.0f;
  const float z = f * f;
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
  const float fe = float(e);
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  const float res = (f + y) + 0.693359375f * fe;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  return (x != x || x < 0.0f) ? nan : (x == 0.0f ? -ns_inf<float>() : (x == ns_inf<float>() ? x : res));
#endif
}

NS_HD double vexp(double x) { return exp(x); }
NS_HD double vlog(double x) { return log(x); }

}  // namespace noisyseg
