// Launch policies for bodies that take a *strip* of up to W contiguous elements of one row:
//   template <int W> NS_HD void strip(int64_t row, int64_t col, int64_t i, int len, A* acc) const;
// (`strips`), or, for multi-pass bodies (`pass_strips`), the same with a leading `int64_t pass`:
// on the CPU every pass sweeps a run of parts before the next (streaming each pass's data once),
// on CUDA a thread runs all passes of its element in order; the per-element order is the same.
// covering elements i .. i+len-1 (= columns col .. col+len-1 of `row`, len <= W, never crossing a
// row). The CPU calls it with W = kCpuStrip so that the body's inner `for (j < len)` loops
// vectorise; CUDA calls it with W = 1 (one element per thread) or a small W (a body's kCudaVec,
// below), so the same math serves both.
// Partial sums and the part split are those of launchers.h (parts fixed by the problem size; on
// CUDA, with groups of V elements a thread, the part boundaries are rounded down to groups).
#pragma once

#include <cstdint>
#include <type_traits>

#include "cpu_isa.h"
#include "cpu_parallel.h"
#include "host_device.h"
#if defined(__CUDACC__)
#include "launch_cuda.cuh"
#endif

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

constexpr int kCpuStrip = 64;

// The CPU launcher is not compiled in CUDA translation units (the CPU kernels' variants are
// compiled from the _cpu.cpp sources only, see cpu_isa.h).
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

// Parts [p0, p1) of `parts` slices of [0, n), sums of part p in acc[(p - p0) * KK]: for every pass
// (outermost), the strips of every part in turn, each strip inside one row. A multi-pass body thus
// streams each pass's data through the cache once, in runs of p1 - p0 parts.
template <int KK, typename A, typename Body>
inline __attribute__((always_inline)) void cpu_strips_of_parts(const Body& body, int64_t passes, int64_t cols,
                                                              int64_t n, int64_t parts, int64_t p0, int64_t p1,
                                                              A* acc) {
  for (int64_t pass = 0; pass < passes; ++pass)
    for (int64_t part = p0; part < p1; ++part) {
      const int64_t end = n * (part + 1) / parts;
      A* part_acc = acc + (part - p0) * KK;
      int64_t i = n * part / parts;
      while (i < end) {
        const int64_t row = i / cols, col = i - row * cols;
        int64_t len = end - i;
        if (len > cols - col) len = cols - col;
        if (len > kCpuStrip) len = kCpuStrip;
        body.template strip<kCpuStrip>(pass, row, col, i, int(len), part_acc);
        i += len;
      }
    }
}

// The same, with everything it calls inlined (`flatten`: the bodies' lambdas, e.g. PINT's loss2
// and StripExp::each callbacks, are otherwise left as calls, and a call inside a strip loop keeps
// it scalar: the PINT loss forward ran 35 ns a pixel instead of 2); `noinline`, or GCC inlines
// this into its caller, where flatten no longer applies.
template <int KK, typename A, typename Body>
__attribute__((flatten, noinline)) void cpu_strips_of_parts_flat(const Body& body, int64_t passes, int64_t cols,
                                                                  int64_t n, int64_t parts, int64_t p0, int64_t p1,
                                                                  A* acc) {
  cpu_strips_of_parts<KK>(body, passes, cols, n, parts, p0, p1, acc);
}

// A multi-pass body sweeps groups of consecutive parts pass by pass, about this many elements a
// group: a run long enough for the hardware prefetcher (PINT's T = 8 teacher passes over parts
// of 2048 pixels ran 25 % slower than over runs of 8192).
constexpr int64_t kPassSweep = 8192;
constexpr int64_t kMaxGroup = 8;

// Runs body.strip<W>(pass, row, col, i, len, acc) for pass in [0, passes) over every part.
template <int K, typename A, typename Body>
void cpu_pass_strips(int64_t rows, int64_t cols, int64_t parts, double* partials, int64_t passes,
                     const Body& body) {
  constexpr int KK = K > 0 ? K : 1;
  const int64_t n = rows * cols;
  if (parts < 1) parts = 1;
  int64_t group = 1;
  if (passes > 1) {
    group = kPassSweep * parts / (n > 0 ? n : 1);
    group = group < 1 ? 1 : (group > kMaxGroup ? kMaxGroup : group);
  }
  const int64_t groups = (parts + group - 1) / group;
  // Dynamic schedule (unlike parallel_parts): on a shared machine a thread that loses its core
  // does not hold back a fixed half of the work. Sums stay per part, so results do not depend on
  // which thread ran which part, nor on the grouping.
#pragma omp parallel for schedule(dynamic, 1) if (n > 4096 && groups > 1)
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t p0 = g * group, p1 = p0 + group < parts ? p0 + group : parts;
    A acc[kMaxGroup * KK] = {};
    cpu_strips_of_parts_flat<KK>(body, passes, cols, n, parts, p0, p1, acc);
    if (partials && K > 0)
      for (int64_t p = p0; p < p1; ++p)
        for (int k = 0; k < K; ++k) partials[p * K + k] = double(acc[(p - p0) * KK + k]);
  }
}

template <int K, typename A, typename Body>
void cpu_strips(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body) {
  cpu_pass_strips<K, A>(rows, cols, parts, partials, 1, OnePass<Body>{body});
}

// The small steps around the passes, CPU side (see the CUDA twins below).
// Sums each row's parts [row * parts_per_row, (row + 1) * parts_per_row) of partials (K values a
// part) in order, then body.finish(row, sums).
template <int K, typename Body>
void cpu_finish_rows(int64_t rows, int64_t parts_per_row, const double* partials, const Body& body) {
  for (int64_t r = 0; r < rows; ++r) {
    double sums[K] = {};
    for (int64_t p = r * parts_per_row; p < (r + 1) * parts_per_row; ++p)
      for (int k = 0; k < K; ++k) sums[k] += partials[p * K + k];
    body.finish(r, sums);
  }
}

struct CpuStripLauncher {
  static constexpr bool kHostMemory = true;  // partials and outputs readable by the caller
  template <int K, typename Body>
  void finish_rows(int64_t rows, int64_t parts_per_row, const double* partials, const Body& body) const {
    cpu_finish_rows<K>(rows, parts_per_row, partials, body);
  }
  // body(i) for i in [0, n): per-image steps (n = a batch).
  template <typename Body>
  void each_index(int64_t n, const Body& body) const {
    for (int64_t i = 0; i < n; ++i) body(i);
  }
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
// Elements a CUDA thread takes, consecutive: a body may declare `static constexpr int kCudaVec`
// (V) and `bool cuda_vec_ok() const`; when that holds and V divides the row length, the launcher
// calls body.element<V>(passes, row, col, i, acc) on groups of V elements of one row (part
// boundaries rounded down to multiples of V), else element<1> on one element a thread. V
// independent pixels a thread put V times the loads in flight: PINT's two-class uncertainty
// kernel 104 -> 69 us, its loss forward 47 -> 38 us with V = 2 (H100, 3D shape, probe
// benchmarks/cuda_probe_pint.cu); store-heavy bodies ran slower (the backward 20 -> 29 us).
template <typename Body, typename = void>
struct CudaVec { static constexpr int value = 1; };
template <typename Body>
struct CudaVec<Body, std::void_t<decltype(Body::kCudaVec)>> { static constexpr int value = Body::kCudaVec; };

// Index type I: 32-bit when the problem fits (a 64-bit division a pixel is a few dozen
// instructions), picked on the host: with both paths in one kernel, the 64-bit one set the
// register count of both (PINT's loss forward 60 -> 80 registers, 38.7 -> 43.4 us, H100).
template <int V, typename I, int K, typename A, typename Body>
__device__ __forceinline__ void strips_block(int64_t rows, int64_t cols, int64_t parts, double* partials,
                                             int64_t passes, const Body& body) {
  const int64_t n = rows * cols, part = blockIdx.x;
  A acc[K > 0 ? K : 1] = {};
  const I begin = I(n * part / parts / V * V), end = I(n * (part + 1) / parts / V * V), c = I(cols);
  for (I i = begin + I(threadIdx.x) * V; i < end; i += I(blockDim.x) * V) {
    const I row = i / c;
    body.template element<V>(passes, int64_t(row), int64_t(i - row * c), int64_t(i), acc);
  }
  block_write_partials<K>(acc, partials, part);
}

template <int V, typename I, int K, typename A, typename Body>
__global__ void strips_kernel(int64_t rows, int64_t cols, int64_t parts, double* partials, int64_t passes,
                              Body body) {
  strips_block<V, I, K, A>(rows, cols, parts, partials, passes, body);
}

// For a body that declares `static constexpr int kMinBlocks`: at least that many blocks of
// kThreads resident a multiprocessor (a register cap). The two-class uncertainty body took 71
// registers without it, three blocks, and its loads ran at 40 % of the copy rate; capped to
// four blocks (64 registers), 55 % (H100). With the cap on every strips kernel, simple bodies
// took more registers (PINT's backward 32 -> 40) and ran slower (13 -> 18 us; the streaming
// uncertainty passes 94 -> 133 us), and were back without it: hence opt-in.
template <typename Body, typename = void>
struct MinBlocks { static constexpr int value = 0; };
template <typename Body>
struct MinBlocks<Body, std::void_t<decltype(Body::kMinBlocks)>> { static constexpr int value = Body::kMinBlocks; };

template <int V, typename I, int K, typename A, typename Body>
__global__ __launch_bounds__(kThreads, MinBlocks<Body>::value) void strips_kernel_capped(
    int64_t rows, int64_t cols, int64_t parts, double* partials, int64_t passes, Body body) {
  strips_block<V, I, K, A>(rows, cols, parts, partials, passes, body);
}

// The device twin of OnePass (held by value: kernel arguments are copied to the device).
template <typename Body>
struct OnePassDevice {
  static constexpr int kCudaVec = CudaVec<Body>::value;
  static constexpr int kMinBlocks = MinBlocks<Body>::value;
  Body body;
  __host__ bool cuda_vec_ok() const { return body.cuda_vec_ok(); }
  template <int V, typename A>
  __device__ __forceinline__ void element(int64_t, int64_t row, int64_t col, int64_t i, A* acc) const {
    body.template strip<V>(row, col, i, V, acc);
  }
};

// finish_rows on the device: one block a row, a fixed summation order (deterministic).
template <int K, typename Body>
__global__ void finish_rows_kernel(int64_t parts_per_row, const double* partials, Body body) {
  const int64_t row = blockIdx.x;
  double acc[K] = {};
  for (int64_t p = row * parts_per_row + threadIdx.x; p < (row + 1) * parts_per_row; p += blockDim.x)
    for (int k = 0; k < K; ++k) acc[k] += partials[p * K + k];
  double sums[K];
  block_sum<K>(acc, sums);
  if (threadIdx.x == 0) body.finish(row, sums);
}

template <typename Body>
__global__ void each_index_kernel(int64_t n, Body body) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) body(i);
}

struct CudaStripLauncher {
  static constexpr bool kHostMemory = false;
  uintptr_t stream;
  const char* what;
  template <int K, typename Body>
  void finish_rows(int64_t rows, int64_t parts_per_row, const double* partials, const Body& body) const {
    if (rows < 1) return;
    finish_rows_kernel<K, Body><<<unsigned(rows), 128, 0, as_stream(stream)>>>(parts_per_row, partials, body);
    cuda_check_launch(what);
  }
  template <typename Body>
  void each_index(int64_t n, const Body& body) const {
    if (n < 1) return;
    each_index_kernel<Body><<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(n, body);
    cuda_check_launch(what);
  }
  template <int V, typename I, int K, typename A, typename Body>
  void launch_strips(int64_t rows, int64_t cols, int64_t parts, double* partials, int64_t passes,
                     const Body& body) const {
    if constexpr (MinBlocks<Body>::value > 0)
      strips_kernel_capped<V, I, K, A, Body><<<unsigned(parts), kThreads, 0, as_stream(stream)>>>(
          rows, cols, parts, partials, passes, body);
    else
      strips_kernel<V, I, K, A, Body><<<unsigned(parts), kThreads, 0, as_stream(stream)>>>(rows, cols, parts,
                                                                                          partials, passes, body);
    cuda_check_launch(what);
  }
  // Three kernels a body at most: groups of V (32-bit indices), one element a thread with 32-bit
  // indices, and with 64-bit ones (over 4 G elements, where groups would not pay for the code).
  template <int K, typename A, typename Body>
  void pass_strips(int64_t rows, int64_t cols, int64_t parts, double* partials, int64_t passes,
                   const Body& body) const {
    if (rows * cols == 0 && partials == nullptr) return;
    if (parts < 1) parts = 1;
    constexpr int V = CudaVec<Body>::value;
    if (rows * cols > int64_t(UINT32_MAX) - 2 * kThreads * V)
      return launch_strips<1, int64_t, K, A>(rows, cols, parts, partials, passes, body);
    if constexpr (V > 1) {
      if (cols % V == 0 && body.cuda_vec_ok())
        return launch_strips<V, uint32_t, K, A>(rows, cols, parts, partials, passes, body);
    }
    launch_strips<1, uint32_t, K, A>(rows, cols, parts, partials, passes, body);
  }
  template <int K, typename A, typename Body>
  void strips(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body) const {
    pass_strips<K, A>(rows, cols, parts, partials, 1, OnePassDevice<Body>{body});
  }
};
#endif

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
