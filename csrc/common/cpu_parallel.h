// CPU work split: the caller fixes the number of parts (from the problem size only, never from
// the thread count) so that per-part partial sums, and hence results, do not depend on OMP threads.
#pragma once

#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_isa.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

// Runs f(begin, end, part) over `parts` contiguous slices of [0, n).
template <typename F>
void parallel_parts(int64_t n, int64_t parts, F&& f) {
  if (parts < 1) parts = 1;
#pragma omp parallel for schedule(static) if (n > 4096)
  for (int64_t part = 0; part < parts; ++part) {
    const int64_t begin = n * part / parts, end = n * (part + 1) / parts;
    f(begin, end, part);
  }
}

// Plain parallel loop over [0, n) in chunks (no reductions).
template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  const int64_t chunks = (n + grain - 1) / grain;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * grain, end = (begin + grain < n) ? begin + grain : n;
    f(begin, end);
  }
}

inline int omp_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
