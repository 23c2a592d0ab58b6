// Element types seen by the kernels. The module does not link libtorch, so float16 / bfloat16
// are plain 16-bit storage converted to float on load and rounded (to nearest even) on store.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu_isa.h"
#include "host_device.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#endif

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

NS_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f; std::memcpy(&f, &u, 4); return f;
#endif
}
NS_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u; std::memcpy(&u, &f, 4); return u;
#endif
}

NS_HD float half_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return bits_to_float(sign);
    // subnormal half: value = man * 2^-24
    float v = float(man) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}

NS_HD uint16_t float_to_half(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  // Round-to-nearest-even conversion (same result as torch / __float2half_rn).
  uint32_t x = float_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u));
  if (x >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: overflow to inf
  if (x < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    // value in units of 2^-24, rounded to nearest even
    float v = bits_to_float(x) * 16777216.0f;
    uint32_t r = uint32_t(v);
    float frac = v - float(r);
    if (frac > 0.5f || (frac == 0.5f && (r & 1u))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t mant_odd = (x >> 13) & 1u;
  x += 0xc8000fffu + mant_odd;  // re-bias exponent (-112 << 23) and round
  return uint16_t(sign | (x >> 13));
#endif
}

NS_HD float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }
NS_HD uint16_t float_to_bf16(float f) {
  uint32_t x = float_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even
  return uint16_t(x >> 16);
}

// Accumulation type: float for 16- and 32-bit inputs, double for double.
template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };
template <typename T> using acc_t = typename Acc<T>::type;

template <typename A, typename T> NS_HD A load(const T* p, int64_t i) { return A(p[i]); }
template <typename A> NS_HD A load(const Half* p, int64_t i) { return A(half_to_float(p[i].bits)); }
template <typename A> NS_HD A load(const BFloat16* p, int64_t i) { return A(bf16_to_float(p[i].bits)); }

// load for inputs a kernel only reads: on the device through the read-only data cache
// (ld.global.nc), which also tells the compiler that the value does not depend on the kernel's
// own stores, so a thread's loads can be issued together ahead of its stores; on the host, load.
#if defined(__CUDA_ARCH__)
template <typename A, typename T> __device__ __forceinline__ A load_ro(const T* p, int64_t i) { return A(__ldg(p + i)); }
template <typename A> __device__ __forceinline__ A load_ro(const Half* p, int64_t i) {
  return A(half_to_float(__ldg(reinterpret_cast<const unsigned short*>(p) + i)));
}
template <typename A> __device__ __forceinline__ A load_ro(const BFloat16* p, int64_t i) {
  return A(bf16_to_float(__ldg(reinterpret_cast<const unsigned short*>(p) + i)));
}
#else
template <typename A, typename T> NS_HD A load_ro(const T* p, int64_t i) { return load<A>(p, i); }
#endif

template <typename T, typename A> NS_HD void store(T* p, int64_t i, A v) { p[i] = T(v); }
template <typename A> NS_HD void store(Half* p, int64_t i, A v) { p[i].bits = float_to_half(float(v)); }
template <typename A> NS_HD void store(BFloat16* p, int64_t i, A v) { p[i].bits = float_to_bf16(float(v)); }

// dtype codes shared with noisyseg_ext/ops/_kernels.py (DTYPE_CODES).
enum DType : int { kFloat16 = 0, kBFloat16 = 1, kFloat32 = 2, kFloat64 = 3,
                   kUInt8 = 4, kInt32 = 5, kInt64 = 6, kBool = 7 };

template <typename T> struct Tag { using type = T; };

// Calls f(Tag<T>{}) with T the C++ type of a floating dtype code.
template <typename F>
decltype(auto) dispatch_floating(int code, const char* what, F&& f) {
  switch (code) {
    case kFloat16: return f(Tag<Half>{});
    case kBFloat16: return f(Tag<BFloat16>{});
    case kFloat32: return f(Tag<float>{});
    case kFloat64: return f(Tag<double>{});
  }
  throw std::invalid_argument(std::string(what) + ": unsupported floating dtype code " + std::to_string(code));
}

// Calls f(Tag<T>{}) with T the C++ type of an integer (label) dtype code.
template <typename F>
decltype(auto) dispatch_label(int code, const char* what, F&& f) {
  switch (code) {
    case kUInt8: return f(Tag<uint8_t>{});
    case kBool: return f(Tag<uint8_t>{});
    case kInt32: return f(Tag<int32_t>{});
    case kInt64: return f(Tag<int64_t>{});
  }
  throw std::invalid_argument(std::string(what) + ": unsupported label dtype code " + std::to_string(code));
}

// Calls f(Tag<T>{}, Tag<L>{}) for a floating dtype code and a label dtype code.
template <typename F>
void dispatch_floating_label(int code, int label_code, const char* what, F&& f) {
  dispatch_floating(code, what, [&](auto tf) {
    dispatch_label(label_code, what, [&](auto tl) { f(tf, tl); });
  });
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
