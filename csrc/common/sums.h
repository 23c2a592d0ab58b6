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

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
