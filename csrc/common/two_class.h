// The difference of two class scores, for the two-class closed forms of softmax and cross-entropy
// (weighted_ce_math.h TwoClass, pint_math.h Softmax2): with d = b - a and e = exp(-|d|) in
// (0, 1], softmax(a, b) = {1, e} / (1 + e), the 1 going to the larger score, one exp a pixel where
// the general max-shifted path takes two to four. Special values as torch: NaN in gives NaN, a +inf
// score gives NaN everywhere (torch: exp(inf - inf)), a -inf score gives probabilities 0 / 1.
#pragma once

#include "cpu_isa.h"
#include "host_device.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

// True where a or b is +inf. The larger of the two, not a sum: +inf beside -inf counts too.
template <typename A>
NS_HD bool has_pos_inf(A a, A b) {
  return (a > b ? a : b) == ns_inf<A>();
}

// d = b - a, NaN when a score is +inf (or both are -inf, where b - a is NaN already): m - m is 0
// for a finite max m and NaN for an infinite one. One max and two adds, no select: spelled
// vsel(has_pos_inf(a, b), NaN, b - a) it made the two-class weighted_ce forward 11 % slower, this
// form 2 % (one thread, 2 x 112 x 112 x 80; benchmarks/RESULTS.md, seventh session).
// -ffast-math would fold m - m to 0; the build does not use it.
template <typename A>
NS_HD A two_class_diff(A a, A b) {
  const A m = a > b ? a : b;
  return (b - a) + (m - m);
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
