// Launch policies for bodies that take a *strip* of up to W contiguous elements of one row:
//   template <int W> NS_HD void strip(int64_t row, int64_t col, int64_t i, int len, A* acc) const;
// (`strips`), or, for multi-pass bodies (`pass_strips`), the same with a leading `int64_t pass`:
// on the CPU every pass sweeps a whole part before the next (streaming each pass's data once),
// on CUDA a thread runs all passes of its element in order; the per-element order is the same.
// covering elements i .. i+len-1 (= columns col .. col+len-1 of `row`, len <= W, never crossing a
// row). The CPU calls it with W = kCpuStrip so that the body's inner `for (j < len)` loops
// vectorise; CUDA calls it with W = 1 (one element per thread), so the same math serves both.
// Partial sums and the part split are those of launchers.h (parts fixed by the problem size).
#pragma once

#include <cstdint>

#include "cpu_parallel.h"
#include "host_device.h"
#if defined(__CUDACC__)
#include "launch_cuda.cuh"
#endif

namespace noisyseg {

constexpr int kCpuStrip = 64;

// The CPU launcher is not compiled in CUDA translation units: the AVX2 dispatch below must have
// one definition in the whole module (its switch is a function-local static).
#if !defined(__CUDACC__)

// Adapts a one-pass body (strip without a pass index) to the multi-pass loop below.
template <typename Body>
struct OnePass {
  const Body& body;
  template <int W, typename A>
  NS_HD void strip(int64_t, int64_t row, int64_t col, int64_t i, int len, A* acc) const {
    body.template strip<W>(row, col, i, len, acc);
  }
};

// The strips of one part [begin, end), every strip inside one row; `passes` sweeps over the part
// (pass outermost), so a multi-pass body streams each pass's data through the cache once.
template <typename A, typename Body>
inline __attribute__((always_inline)) void cpu_strips_of_part(const Body& body, int64_t passes, int64_t cols,
                                                             int64_t begin, int64_t end, A* acc) {
  for (int64_t pass = 0; pass < passes; ++pass) {
    int64_t i = begin;
    while (i < end) {
      const int64_t row = i / cols, col = i - row * cols;
      int64_t len = end - i;
      if (len > cols - col) len = cols - col;
      if (len > kCpuStrip) len = kCpuStrip;
      body.template strip<kCpuStrip>(pass, row, col, i, int(len), acc);
      i += len;
    }
  }
}

// x86-64: the build targets the baseline (SSE2); the strip loops are also compiled for AVX2 + FMA
// (everything they call inlined: `flatten`) and picked at run time when the CPU has both. The
// choice can be switched off (cpu_avx2_enabled() = false) to test the baseline path; results of
// the two paths may differ in the last bits (FMA contraction), never between calls.
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define NOISYSEG_CPU_AVX2_DISPATCH 1
template <typename A, typename Body>
__attribute__((target("avx2,fma"), flatten)) void cpu_strips_of_part_avx2(const Body& body, int64_t passes,
                                                                          int64_t cols, int64_t begin,
                                                                          int64_t end, A* acc) {
  cpu_strips_of_part(body, passes, cols, begin, end, acc);
}
inline bool& cpu_avx2_enabled() {
  static bool enabled = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return enabled;
}
inline bool cpu_avx2_available() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
inline bool& cpu_avx2_enabled() {
  static bool enabled = false;
  return enabled;
}
inline bool cpu_avx2_available() { return false; }
#endif

// Runs body.strip<W>(pass, row, col, i, len, acc) for pass in [0, passes) over every part.
template <int K, typename A, typename Body>
void cpu_pass_strips(int64_t rows, int64_t cols, int64_t parts, double* partials, int64_t passes,
                     const Body& body) {
  const int64_t n = rows * cols;
#ifdef NOISYSEG_CPU_AVX2_DISPATCH
  const bool avx2 = cpu_avx2_enabled();
#endif
  if (parts < 1) parts = 1;
  // Dynamic schedule (unlike parallel_parts): on a shared machine a thread that loses its core
  // does not hold back a fixed half of the work. Sums stay per part, so results do not depend on
  // which thread ran which part.
#pragma omp parallel for schedule(dynamic, 1) if (n > 4096 && parts > 1)
  for (int64_t part = 0; part < parts; ++part) {
    const int64_t begin = n * part / parts, end = n * (part + 1) / parts;
    A acc[K > 0 ? K : 1] = {};
#ifdef NOISYSEG_CPU_AVX2_DISPATCH
    if (avx2)
      cpu_strips_of_part_avx2(body, passes, cols, begin, end, acc);
    else
#endif
      cpu_strips_of_part(body, passes, cols, begin, end, acc);
    if (partials)
      for (int k = 0; k < K; ++k) partials[part * K + k] = double(acc[k]);
  }
}

template <int K, typename A, typename Body>
void cpu_strips(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body) {
  cpu_pass_strips<K, A>(rows, cols, parts, partials, 1, OnePass<Body>{body});
}

struct CpuStripLauncher {
  template <int K, typename A, typename Body>
  void strips(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body) const {
    cpu_strips<K, A>(rows, cols, parts, partials, body);
  }
  template <int K, typename A, typename Body>
  void pass_strips(int64_t rows, int64_t cols, int64_t parts, double* partials, int64_t passes,
                   const Body& body) const {
    cpu_pass_strips<K, A>(rows, cols, parts, partials, passes, body);
  }
};
#endif  // !defined(__CUDACC__)

#if defined(__CUDACC__)
// One thread per element, every pass of that element in order (passes = 1: a one-pass body).
template <int K, typename A, typename Body>
__global__ void strips_kernel(int64_t rows, int64_t cols, int64_t parts, double* partials, int64_t passes,
                              Body body) {
  const int64_t n = rows * cols;
  const int64_t part = blockIdx.x;
  const int64_t begin = n * part / parts, end = n * (part + 1) / parts;
  A acc[K > 0 ? K : 1] = {};
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const int64_t row = i / cols;
    for (int64_t pass = 0; pass < passes; ++pass)
      body.template strip<1>(pass, row, i - row * cols, i, 1, acc);
  }
  block_write_partials<K>(acc, partials, part);
}

// The device twin of OnePass (held by value: kernel arguments are copied to the device).
template <typename Body>
struct OnePassDevice {
  Body body;
  template <int W, typename A>
  __device__ __forceinline__ void strip(int64_t, int64_t row, int64_t col, int64_t i, int len, A* acc) const {
    body.template strip<W>(row, col, i, len, acc);
  }
};

struct CudaStripLauncher {
  uintptr_t stream;
  const char* what;
  template <int K, typename A, typename Body>
  void pass_strips(int64_t rows, int64_t cols, int64_t parts, double* partials, int64_t passes,
                   const Body& body) const {
    if (rows * cols == 0 && partials == nullptr) return;
    if (parts < 1) parts = 1;
    strips_kernel<K, A, Body><<<unsigned(parts), kThreads, 0, as_stream(stream)>>>(rows, cols, parts, partials,
                                                                                  passes, body);
    cuda_check_launch(what);
  }
  template <int K, typename A, typename Body>
  void strips(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body) const {
    pass_strips<K, A>(rows, cols, parts, partials, 1, OnePassDevice<Body>{body});
  }
};
#endif

}  // namespace noisyseg
