// CPU instruction-set variants. CMake compiles every CPU kernel source (csrc/<op>/<op>_cpu.cpp)
// once per variant (x86-64 baseline, AVX2 + FMA = x86-64-v3, AVX-512 = x86-64-v4; only the
// baseline elsewhere), each with its -march and NOISYSEG_CPU_ISA set to the variant's id; the
// module picks one variant at import (cpu_isa.cpp) and the bindings call its entry points through
// NOISYSEG_CPU_FN. The math is the same source for every variant: only the compiler flags differ.
//
// One definition rule: every inline function and template a kernel source instantiates (the
// math, the launchers, their lambdas) would have the same mangled name in each variant, and the
// linker would keep one of them for all: an AVX-512 copy running in the baseline variant
// (SIGILL on an AVX2 machine) or the baseline copy in the AVX-512 variant. Hence every kernel
// header puts its content inside NOISYSEG_CPU_NAMESPACE_BEGIN / _END: in a per-variant
// compilation an inline namespace `cpu_<variant>` (names unchanged in the source, distinct in the
// object), elsewhere (bindings, CUDA sources) nothing. The argument structs and the entry-point
// declarations (csrc/<op>/<op>.h) stay outside it: they are what the bindings share with every
// variant. Standard-library inline functions the kernels call out of line are the one thing left
// with one name; CMake links the variants' objects lowest first, so the linker keeps the copy of
// the lowest variant that has one (the linkers keep the first COMDAT copy), which every
// variant's machine can run. python_tests/test_cpu_isa.py checks the built module: no function
// outside a variant's namespace uses AVX (ymm / zmm) registers.
#pragma once

#include <cstdint>
#include <string>

#if defined(NOISYSEG_CPU_ISA) && !defined(__CUDACC__)
#define NOISYSEG_CPU_NAMESPACE_BEGIN inline namespace NOISYSEG_CPU_NAMESPACE {
#define NOISYSEG_CPU_NAMESPACE_END }
#else
#define NOISYSEG_CPU_NAMESPACE_BEGIN
#define NOISYSEG_CPU_NAMESPACE_END
#endif

namespace noisyseg {

// Variant ids, lowest first (NOISYSEG_CPU_ISA of a per-variant compilation).
enum CpuIsa : int { kCpuBaseline = 0, kCpuAvx2 = 1, kCpuAvx512 = 2 };
constexpr int kNumCpuIsa = 3;
const char* cpu_isa_name(int isa);  // "baseline", "avx2", "avx512"

// cpu_isa.cpp. compiled: this build has the variant (CMake's NOISYSEG_CPU_ISA_<NAME>_COMPILED);
// supported: this CPU (and OS) can run it; active: the variant the kernels run now, chosen at
// import as the best compiled and supported one, or a lower one named in NOISYSEG_CPU_ISA.
bool cpu_isa_compiled(int isa);
bool cpu_isa_supported(int isa);
int active_cpu_isa();
// Switches the variant (tests and benchmarks compare them in one process); false, and no change,
// when `isa` is not compiled or not supported.
bool set_active_cpu_isa(int isa);
// Applies a variant named by the user (NOISYSEG_CPU_ISA: baseline, avx2, avx512, or auto / empty
// for the best); returns why it could not be honoured (unknown name, not compiled, not supported:
// the variant then stays the best one), or an empty string.
std::string request_cpu_isa(const char* name);

// Entry points of one kernel, one per variant (nullptr where the variant was not compiled); the
// call runs the active variant's. Built by NOISYSEG_CPU_FN.
template <typename Fn>
struct CpuVariants {
  Fn fn[kNumCpuIsa];
  template <typename... Args>
  void operator()(const Args&... args) const { fn[active_cpu_isa()](args...); }
};

}  // namespace noisyseg

// The address of variant `isa` of an entry point declared `template <int kIsa> void f(...)`, or
// nullptr when the build has no such variant (so that the bindings name no missing symbol).
#ifdef NOISYSEG_CPU_ISA_BASELINE_COMPILED
#define NOISYSEG_CPU_VARIANT_0(fn) &fn<::noisyseg::kCpuBaseline>
#else
#define NOISYSEG_CPU_VARIANT_0(fn) nullptr
#endif
#ifdef NOISYSEG_CPU_ISA_AVX2_COMPILED
#define NOISYSEG_CPU_VARIANT_1(fn) &fn<::noisyseg::kCpuAvx2>
#else
#define NOISYSEG_CPU_VARIANT_1(fn) nullptr
#endif
#ifdef NOISYSEG_CPU_ISA_AVX512_COMPILED
#define NOISYSEG_CPU_VARIANT_2(fn) &fn<::noisyseg::kCpuAvx512>
#else
#define NOISYSEG_CPU_VARIANT_2(fn) nullptr
#endif

// NOISYSEG_CPU_FN(noisyseg::wce_forward_cpu): a callable running the active variant of a CPU
// entry point (the CPU argument of run_on_device, beside NOISYSEG_CUDA_FN).
#define NOISYSEG_CPU_FN(fn)                                                                       \
  ::noisyseg::CpuVariants<decltype(&fn<::noisyseg::kCpuBaseline>)> {                               \
    { NOISYSEG_CPU_VARIANT_0(fn), NOISYSEG_CPU_VARIANT_1(fn), NOISYSEG_CPU_VARIANT_2(fn) }        \
  }
