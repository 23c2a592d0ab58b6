// Generic CPU launcher for per-element bodies defined in an op's math header. A body is a struct
// with `NS_HD Sums4<A> operator()(int64_t row, int64_t col, int64_t i) const`, where
// i = row * cols + col, returning up to K <= 4 values to sum per part (see sums.h; launch_cuda.cuh
// is the CUDA twin). Bodies written without branches (selects only, every call unconditional)
// vectorise across columns here.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cpu_isa.h"
#include "cpu_parallel.h"
#include "sums.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

// One row segment, vectorised across columns: body(row, col0 + j, i0 + j) for j < len.
template <typename A, typename Body>
inline void cpu_row_segment(const Body& body_ref, int64_t row, int64_t col0, int64_t i0, int64_t len, A* sums) {
  // A local copy: through a reference, the body's pointers could change with every store the loop
  // makes, so GCC would reload them and fall back to gathers instead of contiguous vector loads.
  const Body body = body_ref;
  A s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (int64_t j = 0; j < len; ++j) {
    const Sums4<A> r = run_body<A>(body, row, col0 + j, i0 + j);
    s0 += r.s0; s1 += r.s1; s2 += r.s2; s3 += r.s3;
  }
  sums[0] += s0; sums[1] += s1; sums[2] += s2; sums[3] += s3;
}

// Bodies may offer `Sums4<A> tile(row, col0, i0, len)` (len <= kTile) for a loop order of their
// own (see weighted_ce's run-time class count); they say so with `static constexpr bool kTiled`.
template <typename Body, typename = void>
struct is_tiled : std::false_type {};
template <typename Body>
struct is_tiled<Body, std::void_t<decltype(Body::kTiled)>> : std::bool_constant<Body::kTiled> {};

template <typename A, typename Body>
inline void cpu_row_tiles(const Body& body, int64_t row, int64_t col0, int64_t i0, int64_t len, A* sums) {
  constexpr int64_t tile = Body::kTileSize;
  for (int64_t j = 0; j < len; j += tile) {
    const Sums4<A> r = body.tile(row, col0 + j, i0 + j, len - j < tile ? len - j : tile);
    sums[0] += r.s0; sums[1] += r.s1; sums[2] += r.s2; sums[3] += r.s3;
  }
}

// Runs body over rows x cols elements, split into `parts` slices; when `partials` is non-null,
// writes the K per-slice sums of acc to partials[part * K + k] (as double).
template <int K, typename A, typename Body>
void cpu_rows_cols(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body) {
  static_assert(K >= 0 && K <= 4, "at most 4 partial sums");
  const int64_t n = rows * cols;
  parallel_parts(n, parts, [&](int64_t begin, int64_t end, int64_t part) {
    A sums[4] = {0, 0, 0, 0};
    for (int64_t i0 = begin; i0 < end;) {
      const int64_t row = i0 / cols, col0 = i0 - row * cols;
      const int64_t len = (end - i0 < cols - col0) ? end - i0 : cols - col0;  // rest of this row
      if constexpr (is_tiled<Body>::value) cpu_row_tiles<A>(body, row, col0, i0, len, sums);
      else cpu_row_segment<A>(body, row, col0, i0, len, sums);
      i0 += len;
    }
    if (partials)
      for (int k = 0; k < K; ++k) partials[part * K + k] = double(sums[k]);
  });
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
