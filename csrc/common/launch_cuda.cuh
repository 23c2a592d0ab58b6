// Generic CUDA launcher: the twin of launch_cpu.h. One block per part, threads stride over the
// part's contiguous slice (adjacent threads touch adjacent columns: coalesced), per-block sums of
// acc written to partials so that the reduction order is fixed.
#pragma once

#include <cstdint>

#include "cuda_check.cuh"
#include "sums.h"

namespace noisyseg {

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// Sums each of the block's K per-thread values (a warp tree, then warp 0 over the warps' sums: a
// fixed order); thread 0 gets the block's sums in out. Every thread of the block must call it.
template <int K, typename A>
__device__ __forceinline__ void block_sum(const A* acc, A* out) {
  __shared__ A shared[K > 0 ? K : 1][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    A v = warp_sum(acc[k]);
    if (lane == 0) shared[k][warp] = v;
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) out[k] = warp_sum(lane < warps ? shared[k][lane] : A(0));
  }
}

// block_sum written to partials[part * K + k] (as double).
template <int K, typename A>
__device__ __forceinline__ void block_write_partials(const A* acc, double* partials, int64_t part) {
  if (K == 0 || partials == nullptr) return;
  A sums[K > 0 ? K : 1];
  block_sum<K>(acc, sums);
  if (threadIdx.x == 0)
    for (int k = 0; k < K; ++k) partials[part * K + k] = double(sums[k]);
}

template <int K, typename A, typename Body>
__global__ __launch_bounds__(kThreads) void rows_cols_kernel(int64_t rows, int64_t cols, int64_t parts, double* partials, Body body) {
  const int64_t n = rows * cols;
  const int64_t part = blockIdx.x;
  const int64_t begin = n * part / parts, end = n * (part + 1) / parts;
  A acc[4] = {0, 0, 0, 0};
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const int64_t row = i / cols;
    const Sums4<A> r = run_body<A>(body, row, i - row * cols, i);
    acc[0] += r.s0; acc[1] += r.s1; acc[2] += r.s2; acc[3] += r.s3;
  }
  block_write_partials<K>(acc, partials, part);
}

template <int K, typename A, typename Body>
void cuda_rows_cols(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body,
                    uintptr_t stream, const char* what) {
  if (rows * cols == 0 && partials == nullptr) return;
  if (parts < 1) parts = 1;
  rows_cols_kernel<K, A, Body><<<unsigned(parts), kThreads, 0, as_stream(stream)>>>(rows, cols, parts, partials, body);
  cuda_check_launch(what);
}

}  // namespace noisyseg
