// morphology: dtype dispatch written once; the stencil loop itself is per device (a line per
// iteration on the CPU, an element per thread on CUDA), the combine uses the generic launchers.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "../common/cpu_isa.h"
#include "../common/launchers.h"
#include "../common/pointers.h"
#include "../common/scalar_types.h"
#include "morphology.h"
#include "morphology_math.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

// Calls f(Tag<T>{}, std::bool_constant<IsMax>{}) for the mask dtype and the pass kind.
template <typename F>
void morph_dispatch(const MorphArgs& a, const char* what, F&& f) {
  dispatch_label(a.dtype, what, [&](auto tag) {
    if (a.is_max) f(tag, std::true_type{});
    else f(tag, std::false_type{});
  });
}

template <typename Launch>
void morph_combine(const MorphArgs& a, const Launch& launch) {
  dispatch_label(a.dtype, "morphology_combine", [&](auto tag) {
    using T = typename decltype(tag)::type;
    morph::Combine<T> body{as_ptr<const T>(a.src), as_ptr<const T>(a.aux), as_ptr<T>(a.dst), a.mode};
    const int64_t n = a.N * a.D * a.H * a.W;
    launch.template rows_cols<0, float>(1, n, (n + 65535) / 65536, nullptr, body);
  });
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
