// Which CPU variant runs (see cpu_isa.h): what the processor reports, chosen once at import.
// Compiled once, for the baseline, with the bindings.
#include "cpu_isa.h"

#include <atomic>
#include <cctype>
#include <string>

namespace noisyseg {

const char* cpu_isa_name(int isa) {
  switch (isa) {
    case kCpuBaseline: return "baseline";
    case kCpuAvx2: return "avx2";
    case kCpuAvx512: return "avx512";
  }
  return "unknown";
}

bool cpu_isa_compiled(int isa) {
  switch (isa) {
    case kCpuBaseline: return true;  // always built
#ifdef NOISYSEG_CPU_ISA_AVX2_COMPILED
    case kCpuAvx2: return true;
#endif
#ifdef NOISYSEG_CPU_ISA_AVX512_COMPILED
    case kCpuAvx512: return true;
#endif
  }
  return false;
}

// The variants' -march levels: x86-64-v3 (AVX, AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE) and
// x86-64-v4 (v3 + AVX-512 F/BW/CD/DQ/VL). __builtin_cpu_supports also checks that the OS saves
// the YMM / ZMM registers (XGETBV), as a CPUID bit alone does not.
bool cpu_isa_supported(int isa) {
  if (isa == kCpuBaseline) return true;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64))
  __builtin_cpu_init();
#if defined(__clang__) || __GNUC__ < 12
  // Compilers without the level names: the features the levels add that the kernels can meet.
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512cd");
#else
  const bool v3 = __builtin_cpu_supports("x86-64-v3");
  const bool v4 = __builtin_cpu_supports("x86-64-v4");
#endif
  if (isa == kCpuAvx2) return v3;
  if (isa == kCpuAvx512) return v4;
#endif
  return false;
}

namespace {

int best_cpu_isa() {
  for (int isa = kNumCpuIsa - 1; isa > kCpuBaseline; --isa)
    if (cpu_isa_compiled(isa) && cpu_isa_supported(isa)) return isa;
  return kCpuBaseline;
}

// Read on every kernel call (one relaxed load), written at import and by the tests' switch.
std::atomic<int>& active() {
  static std::atomic<int> isa{best_cpu_isa()};
  return isa;
}

}  // namespace

int active_cpu_isa() { return active().load(std::memory_order_relaxed); }

bool set_active_cpu_isa(int isa) {
  if (isa < 0 || isa >= kNumCpuIsa || !cpu_isa_compiled(isa) || !cpu_isa_supported(isa)) return false;
  active().store(isa, std::memory_order_relaxed);
  return true;
}

std::string request_cpu_isa(const char* name) {
  std::string want = name ? name : "";
  for (char& ch : want) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  if (want.empty() || want == "auto") return "";
  int isa = -1;
  for (int i = 0; i < kNumCpuIsa; ++i)
    if (want == cpu_isa_name(i)) isa = i;
  const std::string var = "NOISYSEG_CPU_ISA=" + std::string(name);
  if (isa < 0) return var + " is not one of baseline, avx2, avx512, auto; using " + cpu_isa_name(active_cpu_isa());
  if (set_active_cpu_isa(isa)) return "";
  return var + ": " + (cpu_isa_compiled(isa) ? "this CPU cannot run it" : "not compiled in this build") +
         "; using " + cpu_isa_name(active_cpu_isa());
}

}  // namespace noisyseg
