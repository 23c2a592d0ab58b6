// What a per-element body returns to the generic launchers: up to 4 values to sum per part.
#pragma once

#include <type_traits>

#include "cpu_isa.h"
#include "host_device.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

template <typename A>
struct Sums4 {
  A s0 = 0, s1 = 0, s2 = 0, s3 = 0;
};

// Runs one element of a body. Bodies return Sums4 (`body(row, col, i)`): returning by value keeps
// the per-element work free of memory side effects, which GCC needs to vectorise across elements.
// Bodies of the older form `void body(row, col, i, A* acc)` still work (not vectorised on the CPU).
template <typename A, typename Body>
NS_HD Sums4<A> run_body(const Body& body, int64_t row, int64_t col, int64_t i) {
  if constexpr (std::is_invocable_v<const Body&, int64_t, int64_t, int64_t>) {
    return body(row, col, i);
  } else {
    A acc[4] = {0, 0, 0, 0};
    body(row, col, i, acc);
    return Sums4<A>{acc[0], acc[1], acc[2], acc[3]};
  }
}

// Sum of v[0..len) by a pairwise tree over the zero-padded strip (v is overwritten): each level
// is an element-wise add, so it vectorises, and the order is fixed by the strip layout. The
// levels are unrolled at compile time (strip_fold): with a run-time level width GCC left loops
// with epilogues and a scalar tail (PINT's loss forward 4 % slower, three sums a strip). Used by PINT's strips and weighted_ce's tiles.
template <int w, typename A>
NS_HD void strip_fold(A* v) {
  if constexpr (w > 0) {
    for (int j = 0; j < w; ++j) v[j] += v[j + w];
    strip_fold<w / 2>(v);
  }
}
template <int W, typename A>
NS_HD A strip_sum(A* v, int len) {
  static_assert((W & (W - 1)) == 0, "strip width must be a power of two");
  for (int j = len; j < W; ++j) v[j] = A(0);
  strip_fold<W / 2>(v);
  return v[0];
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
