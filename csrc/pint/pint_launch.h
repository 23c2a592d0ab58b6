// pint: dtype dispatch and body construction, written once for both devices.
#pragma once

#include <cmath>

#include "../common/pointers.h"
#include "../common/scalar_types.h"
#include "../common/strip_launchers.h"
#include "pint.h"
#include "pint_math.h"

namespace noisyseg {

// 1 / ln C when normalising (1 for C = 1, where u is 0 anyway).
template <typename A>
A entropy_scale(const PintArgs& a) {
  return (a.normalize && a.C > 1) ? A(1.0 / std::log(double(a.C))) : A(1);
}

template <typename Launch>
void pint_mc_stacked(const PintArgs& a, const Launch& launch) {
  dispatch_floating_label(a.dtype, a.label_dtype, "mc_uncertainty", [&](auto tf, auto tl) {
    using T = typename decltype(tf)::type;
    using L = typename decltype(tl)::type;
    using A = acc_t<T>;
    pint::McStacked<T, L> body{as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<A>(a.mean),
                               as_ptr<A>(a.u), as_ptr<int64_t>(a.flag), a.T, a.N, a.C, a.S,
                               a.ignore_index, entropy_scale<A>(a)};
    launch.template pass_strips<2, A>(a.N, a.S, a.parts, as_ptr<double>(a.partials), a.T + 1, body);
  });
}

template <typename Launch>
void pint_mc_accumulate(const PintArgs& a, const Launch& launch) {
  dispatch_floating(a.dtype, "UncertaintyAccumulator.add", [&](auto tf) {
    using T = typename decltype(tf)::type;
    using A = acc_t<T>;
    pint::McAccumulate<T> body{as_ptr<const T>(a.x), as_ptr<A>(a.sums), a.C, a.S, a.first};
    launch.template strips<0, A>(a.N, a.S, a.parts, nullptr, body);
  });
}

// a.dtype is the dtype of the sums (float32 or float64).
template <typename Launch>
void pint_mc_finalize(const PintArgs& a, const Launch& launch) {
  dispatch_floating_label(a.dtype, a.label_dtype, "UncertaintyAccumulator.result", [&](auto tf, auto tl) {
    using A = acc_t<typename decltype(tf)::type>;
    using L = typename decltype(tl)::type;
    pint::McFinalize<A, L> body{as_ptr<const A>(a.sums), as_ptr<const L>(a.target), as_ptr<A>(a.mean),
                                as_ptr<A>(a.u), as_ptr<int64_t>(a.flag), a.C, a.S, a.ignore_index,
                                A(a.count), entropy_scale<A>(a)};
    launch.template strips<2, A>(a.N, a.S, a.parts, as_ptr<double>(a.partials), body);
  });
}

template <typename Launch>
void pint_loss_forward(const PintArgs& a, const Launch& launch) {
  dispatch_floating_label(a.dtype, a.label_dtype, "pint_loss", [&](auto tf, auto tl) {
    using T = typename decltype(tf)::type;
    using L = typename decltype(tl)::type;
    using A = acc_t<T>;
    pint::LossForward<T, L> body{as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<const A>(a.mu),
                                 as_ptr<const A>(a.u), as_ptr<const A>(a.image_gate), as_ptr<uint8_t>(a.gate),
                                 as_ptr<T>(a.loss_map), as_ptr<A>(a.dloss), as_ptr<int64_t>(a.flag),
                                 a.C, a.S, a.ignore_index, A(a.pixel_threshold), A(a.weight),
                                 a.has_pixel_threshold};
    launch.template strips<3, A>(a.N, a.S, a.parts, as_ptr<double>(a.partials), body);
  });
}

}  // namespace noisyseg
