// exp, log and select written so that GCC vectorises the strip loops that use them (no libm call,
// no branch): glibc's vector variants are only declared under -ffast-math, which the build does
// not use. float: Cody-Waite range reduction and the Cephes minimax polynomials (about 1 ulp;
// exp flushes below -87 to 0, log assumes a positive normal argument; log(1 + x) on [0, 1], the
// two-class softmax's case, a polynomial of its own);
// double: libm (not a hot path). On the device: CUDA's intrinsics, like ns_exp / ns_log.
//
// Why the bit-level select: with the default -ftrapping-math GCC sinks a floating computation
// into the arm of a `c ? a : b` that uses it and then refuses to if-convert the branch, so the
// whole loop stays scalar. vsel keeps both values computed and blends their bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu_isa.h"
#include "host_device.h"
#include "scalar_types.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

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

#if !defined(__CUDA_ARCH__)
// Host float exp/log: branch-free Cephes polynomials (about 1 ulp), inlined so that loops over
// pixels can vectorise; glibc's expf/logf are opaque calls that cost most of a CPU kernel's time.
// Signed bit casts of their own (not scalar_types.h's unsigned ones): with those the vectorised
// weighted_ce forward measured 1.4x slower.
NS_HD float ns_bits_float(int32_t i) { float f; __builtin_memcpy(&f, &i, 4); return f; }
NS_HD int32_t ns_float_bits(float f) { int32_t i; __builtin_memcpy(&i, &f, 4); return i; }

// kBlend picks how the two selects (clamp, flush to 0) are spelled; the value is the same. GCC
// vectorises different loops with each: a loop that feeds exp into log (log(1 + exp(-|d|)), the
// two-class closed forms) only with the bitwise vsel blends, with `?:` it stays scalar; the
// tiled weighted_ce loops (run-time class count) only with `?:`, with vsel its backward ran 3.4x
// slower (both measured). Hence cephes_exp and cephes_exp_blend, one polynomial.
template <bool kBlend>
NS_HD float cephes_exp_t(float x) {
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const float xc = kBlend ? vsel(x > 88.0f, 88.0f, x) : (x > 88.0f ? 88.0f : x);  // NaN stays NaN
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
  return kBlend ? vsel(xc < -87.0f, 0.0f, y * scale) : (xc < -87.0f ? 0.0f : y * scale);
}
NS_HD float cephes_exp(float x) { return cephes_exp_t<false>(x); }
NS_HD float cephes_exp_blend(float x) { return cephes_exp_t<true>(x); }

// log for x > 0 normal (callers pass sums >= 1); NaN in, NaN out.
NS_HD float cephes_log(float x) {
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

// log(1 + x) for x in [0, 1] (a two-class softmax's exp(-|d|)); NaN in, NaN out. x * q(x), q a
// degree-9 polynomial fitted to log1p(x) / x on [0, 1] by iteratively reweighted least squares
// (about 2 ulp in float): no exponent / mantissa split as in cephes_log, half its operations,
// and no rounding of 1 + x (log1p's relative precision for small x).
NS_HD float log1p_unit_poly(float x) {
  float q = -3.2439595088362694e-3f;
  q = q * x + 1.9851164892315865e-2f;
  q = q * x - 5.695897340774536e-2f;
  q = q * x + 1.06035977602005e-1f;
  q = q * x - 1.530555784702301e-1f;
  q = q * x + 1.9675926864147186e-1f;
  q = q * x - 2.4954131245613098e-1f;
  q = q * x + 3.332996070384979e-1f;
  q = q * x - 4.999990165233612e-1f;
  q = q * x + 1.0f;
  // NaN gives NaN without the test; the select is there for GCC: without it the weighted_ce
  // loops that feed an exp into this stayed scalar (24 of them, -fopt-info-vec).
  return x != x ? x : x * q;
}
#endif

// vexp_blend: vexp for loops that go on to take a log of the result (see cephes_exp_t).
// vlog: x > 0 (callers pass sums >= 1, or guard x == 0 with vsel); NaN in, NaN out.
// vlog1p_unit: log(1 + x) for x in [0, 1] (the polynomial above on the host, float; log1pf on the
// device: __logf(1 + x) was off by up to 1.5e-7 absolute, so a small cross-entropy lost its
// relative precision, and the kernels that take it are memory-bound).
#if defined(__CUDA_ARCH__)
NS_HD float vexp(float x) { return __expf(x); }
NS_HD float vexp_blend(float x) { return __expf(x); }
NS_HD float vlog(float x) { return __logf(x); }
NS_HD float vlog1p_unit(float x) { return log1pf(x); }
#else
NS_HD float vexp(float x) { return cephes_exp(x); }
NS_HD float vexp_blend(float x) { return cephes_exp_blend(x); }
NS_HD float vlog(float x) { return cephes_log(x); }
NS_HD float vlog1p_unit(float x) { return log1p_unit_poly(x); }
#endif
NS_HD double vlog1p_unit(double x) { return log1p(x); }
NS_HD double vexp(double x) { return exp(x); }
NS_HD double vexp_blend(double x) { return exp(x); }
NS_HD double vlog(double x) { return log(x); }

// exp / log for kernels that want libm accuracy on the device (expf / logf, not the __expf
// intrinsics) and the vectorisable polynomials above on the host.
#if defined(__CUDA_ARCH__)
NS_HD float ns_exp(float x) { return expf(x); }
NS_HD float ns_exp_blend(float x) { return expf(x); }
NS_HD float ns_log(float x) { return logf(x); }
NS_HD float ns_log1p_unit(float x) { return log1pf(x); }  // the polynomial is for host loops
#else
NS_HD float ns_exp(float x) { return vexp(x); }
NS_HD float ns_exp_blend(float x) { return cephes_exp_blend(x); }
NS_HD float ns_log(float x) { return vlog(x); }
NS_HD float ns_log1p_unit(float x) { return vlog1p_unit(x); }
#endif
NS_HD double ns_log1p_unit(double x) { return log1p(x); }
NS_HD double ns_exp(double x) { return exp(x); }
NS_HD double ns_exp_blend(double x) { return exp(x); }
NS_HD double ns_log(double x) { return log(x); }

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
