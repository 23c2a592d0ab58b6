// weighted_ce: dtype dispatch and body construction, written once for both devices.
#pragma once

#include "../common/launchers.h"
#include "../common/pointers.h"
#include "weighted_ce.h"
#include "weighted_ce_math.h"

namespace noisyseg {

template <typename Launch>
void wce_forward(const WceArgs& a, const Launch& launch) {
  dispatch_floating(a.dtype, "weighted_ce", [&](auto tf) {
    using T = typename decltype(tf)::type;
    using A = acc_t<T>;
    dispatch_label(a.label_dtype, "weighted_ce", [&](auto tl) {
      using L = typename decltype(tl)::type;
      wce::Forward<T, L> body{as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<const T>(a.weight),
                              as_ptr<T>(a.loss_map), as_ptr<A>(a.lse), as_ptr<int64_t>(a.flag),
                              a.C, a.S, a.ignore_index};
      launch.template rows_cols<3, A>(a.N, a.S, a.parts, as_ptr<double>(a.partials), body);
    });
  });
}

template <typename Launch>
void wce_backward(const WceArgs& a, const Launch& launch) {
  dispatch_floating(a.dtype, "weighted_ce_backward", [&](auto tf) {
    using T = typename decltype(tf)::type;
    using A = acc_t<T>;
    dispatch_label(a.label_dtype, "weighted_ce_backward", [&](auto tl) {
      using L = typename decltype(tl)::type;
      wce::Backward<T, L> body{as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<const T>(a.weight),
                               as_ptr<const A>(a.lse), as_ptr<const A>(a.g), a.g_stride, as_ptr<const A>(a.gws),
                               as_ptr<T>(a.grad_x), as_ptr<T>(a.grad_w), a.C, a.S, a.ignore_index};
      launch.template rows_cols<0, A>(a.N, a.S, a.parts, nullptr, body);
    });
  });
}

template <typename Launch>
void wce_double_backward(const WceArgs& a, const Launch& launch) {
  dispatch_floating(a.dtype, "weighted_ce_double_backward", [&](auto tf) {
    using T = typename decltype(tf)::type;
    using A = acc_t<T>;
    dispatch_label(a.label_dtype, "weighted_ce_double_backward", [&](auto tl) {
      using L = typename decltype(tl)::type;
      wce::DoubleBackward<T, L> body{as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<const T>(a.weight),
                                     as_ptr<const A>(a.lse), as_ptr<const A>(a.g), a.g_stride,
                                     as_ptr<const T>(a.ggx), as_ptr<const T>(a.ggw),
                                     as_ptr<T>(a.grad_x), as_ptr<A>(a.grad_g), as_ptr<T>(a.grad_w),
                                     a.C, a.S, a.ignore_index};
      launch.template rows_cols<0, A>(a.N, a.S, a.parts, nullptr, body);
    });
  });
}

}  // namespace noisyseg
