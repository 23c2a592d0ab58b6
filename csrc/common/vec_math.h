// exp, log and select written so that GCC vectorises the strip loops that use them (no libm call,
// no branch): glibc's vector variants are only declared under -ffast-math, which the build does
// not use. float: Cody-Waite range reduction and the Cephes minimax polynomials (about 1-2 ulp);
// double: libm (not a hot path). On the device: CUDA's intrinsics, like ns_exp / ns_log.
//
// Why the bit-level select: with the default -ftrapping-math GCC sinks a floating computation
// into the arm of a `c ? a : b` that uses it and then refuses to if-convert the branch, so the
// whole loop stays scalar. vsel keeps both values computed and blends their bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "host_device.h"
#include "scalar_types.h"

namespace noisyseg {

NS_HD float vsel(bool c, float a, float b) {
#if defined(__CUDA_ARCH__)
  return c ? a : b;
#else
  const uint32_t m = 0u - uint32_t(c);
  return bits_to_float((float_to_bits(a) & m) | (float_to_bits(b) & ~m));
#endif
}

NS_HD double vsel(bool c, double a, double b) {
#if defined(__CUDA_ARCH__)
  return c ? a : b;
#else
  uint64_t ua, ub;
  std::memcpy(&ua, &a, 8);
  std::memcpy(&ub, &b, 8);
  const uint64_t m = 0ull - uint64_t(c);
  const uint64_t r = (ua & m) | (ub & ~m);
  double d;
  std::memcpy(&d, &r, 8);
  return d;
#endif
}

// exp(x): accurate for x <= 88.37 (callers here pass x - max <= 0), +inf above, 0 below -87.34
// (the subnormal range is flushed), NaN in -> NaN out (a NaN's shift below is 0).
NS_HD float vexp(float x) {
#if defined(__CUDA_ARCH__)
  return __expf(x);
#else
  const float t = x * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: rounds x / ln 2
  const float k = t - 12582912.0f;
  const float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const uint32_t shift = (float_to_bits(t) - 0x4B400000u) << 23;  // k in the exponent bits
  const float y = bits_to_float(float_to_bits(p) + shift);
  const float out = vsel(x < -87.33654475f, 0.0f, y);
  return vsel(x > 88.37f, ns_inf<float>(), out);
#endif
}

// log(x): log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, subnormals handled.
NS_HD float vlog(float x) {
#if defined(__CUDA_ARCH__)
  return __logf(x);
#else
  const bool sub = x < 1.17549435e-38f;
  const float xs = vsel(sub, x * 8388608.0f, x);  // scale subnormals by 2^23
  const uint32_t b = float_to_bits(xs);
  int32_t e = int32_t((b >> 23) & 0xffu) - 126 - (sub ? 23 : 0);
  const float m = bits_to_float((b & 0x007fffffu) | 0x3f000000u);  // mantissa in [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1 : e;
  const float f = vsel(low, m + m - 1.0f, m - 1.0f);
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
  float out = vsel(x == ns_inf<float>(), x, res);
  out = vsel(x == 0.0f, -ns_inf<float>(), out);
  return vsel((x != x) | (x < 0.0f), std::numeric_limits<float>::quiet_NaN(), out);
#endif
}

NS_HD double vexp(double x) { return exp(x); }
NS_HD double vlog(double x) { return log(x); }

}  // namespace noisyseg
