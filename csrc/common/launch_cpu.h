// Generic CPU launchers for per-element bodies defined in an op's math header. A body is a
// struct with `NS_HD void operator()(int64_t row, int64_t col, int64_t i, A* acc) const`, where
// i = row * cols + col; it may add into acc[0..K) (partial sums, see launch_cuda.cuh for the twin).
#pragma once

#include <cstdint>

#include "cpu_parallel.h"

namespace noisyseg {

// Runs body over rows x cols elements, split into `parts` slices; when `partials` is non-null,
// writes the K per-slice sums of acc to partials[part * K + k] (as double).
template <int K, typename A, typename Body>
void cpu_rows_cols(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body) {
  const int64_t n = rows * cols;
  parallel_parts(n, parts, [&](int64_t begin, int64_t end, int64_t part) {
    A acc[K > 0 ? K : 1] = {};
    int64_t row = cols > 0 ? begin / cols : 0, col = begin - row * cols;
    for (int64_t i = begin; i < end; ++i) {
      body(row, col, i, acc);
      if (++col == cols) { col = 0; ++row; }
    }
    if (partials)
      for (int k = 0; k < K; ++k) partials[part * K + k] = double(acc[k]);
  });
}

}  // namespace noisyseg
