// Number of labels to learn from (in [0, C), not ignore_index): the count that a "mean" forward
// divides its fused gradient by before the pass that writes it (pint's LossForward, weighted_ce's
// Forward with kGradX), so that loss.backward() has no pass left to make.
#pragma once

#include <cstdint>

#include "cpu_isa.h"
#include "host_device.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

// A strips body (strip_launchers.h): the count of a strip in acc[0].
template <typename L>
struct CountValid {
  const L* target; int64_t C, ignore_index;
  // An integer count a strip (exact in A: a part holds about 2048 pixels): the float tree of
  // strip_labels + strip_sum took a sixth of pint's loss pass's time.
  template <int W, typename A>
  NS_HD void strip(int64_t, int64_t, int64_t i, int len, A* acc) const {
    const int64_t C = this->C, ignore = ignore_index;
    int32_t n = 0;
    for (int j = 0; j < len; ++j) n += int32_t(label_valid(target[i + j], C, ignore));
    acc[0] += A(n);
  }
};

// The count over rows x cols labels, on the host (CPU launchers only: the sums are read here).
// partials: at least `parts` doubles of scratch.
template <typename A, typename L, typename Launch>
double count_valid_labels(const Launch& launch, const L* target, int64_t rows, int64_t cols, int64_t C,
                          int64_t ignore_index, int64_t parts, double* partials) {
  launch.template strips<1, A>(rows, cols, parts, partials, CountValid<L>{target, C, ignore_index});
  double count = 0;
  for (int64_t p = 0; p < parts; ++p) count += partials[p];  // K = 1 a part
  return count;
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
