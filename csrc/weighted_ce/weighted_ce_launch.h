// weighted_ce: dtype dispatch and body construction, written once for both devices.
#pragma once

#include <stdexcept>
#include <type_traits>

#include "../common/count_valid.h"
#include "../common/cpu_isa.h"
#include "../common/launchers.h"
#include "../common/pointers.h"
#include "weighted_ce.h"
#include "weighted_ce_math.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

// Calls f(std::integral_constant<int, CC>) with CC = 2 for binary segmentation (loops unrolled and
// vectorised) and CC = 0 (class count read at run time) otherwise.
template <typename F>
void dispatch_classes(int64_t C, F&& f) {
  if (C == 2) f(std::integral_constant<int, 2>{});
  else f(std::integral_constant<int, 0>{});
}

template <typename F>
void dispatch_bool(bool b, F&& f) {
  if (b) f(std::true_type{});
  else f(std::false_type{});
}

// Calls f(Tag<T>, Tag<L>, integral_constant<CC>) for the argument struct's dtypes and class count.
template <typename F>
void wce_dispatch(const WceArgs& a, const char* what, F&& f) {
  dispatch_floating_label(a.dtype, a.label_dtype, what, [&](auto tf, auto tl) {
    dispatch_classes(a.C, [&](auto cc) { f(tf, tl, cc); });
  });
}

template <typename Launch>
void wce_forward(const WceArgs& a, const Launch& launch) {
  wce_dispatch(a, "weighted_ce", [&](auto tf, auto tl, auto cc) {
    using T = typename decltype(tf)::type;
    using L = typename decltype(tl)::type;
    using A = acc_t<T>;
    constexpr int CC = decltype(cc)::value;
    // The fused gradient (grad_x) only on the host: its "mean" scale is a count read back here
    // before the pass, which on CUDA would synchronise (Python asks for it on the CPU only).
    A grad_scale = A(1);
    if constexpr (Launch::kHostMemory) {
      if (a.grad_x != 0 && a.grad_mean)
        grad_scale = A(1.0 / count_valid_labels<A>(launch, as_ptr<const L>(a.target), a.N, a.S, a.C, a.ignore_index,
                                                   a.parts, as_ptr<double>(a.partials)));
    } else if (a.grad_x != 0) {
      throw std::invalid_argument("weighted_ce: the forward's fused gradient is CPU only");
    }
    dispatch_bool(a.weight != 0, [&](auto weighted) {
      dispatch_bool(a.loss_map != 0, [&](auto map) {
        auto run = [&](auto grad) {
          wce::Forward<T, L, CC, decltype(weighted)::value, decltype(map)::value, decltype(grad)::value> body{
              as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<const T>(a.weight),
              as_ptr<T>(a.loss_map), a.C, a.S, a.ignore_index, as_ptr<T>(a.grad_x), grad_scale};
          launch.template rows_cols<4, A>(a.N, a.S, a.parts, as_ptr<double>(a.partials), body);
        };
        // kGradX only for the CPU and without a loss map (the fused gradient is of a sum / mean)
        if constexpr (Launch::kHostMemory && !decltype(map)::value) {
          if (a.grad_x != 0) return run(std::true_type{});
        }
        run(std::false_type{});
      });
    });
  });
}

template <typename Launch>
void wce_backward(const WceArgs& a, const Launch& launch) {
  wce_dispatch(a, "weighted_ce_backward", [&](auto tf, auto tl, auto cc) {
    using T = typename decltype(tf)::type;
    using L = typename decltype(tl)::type;
    using A = acc_t<T>;
    dispatch_bool(a.weight != 0, [&](auto weighted) {
      dispatch_bool(a.grad_w != 0, [&](auto grad_w) {
        wce::Backward<T, L, decltype(cc)::value, decltype(weighted)::value, decltype(grad_w)::value> body{
            as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<const T>(a.weight),
            as_ptr<const A>(a.g), a.g_stride, as_ptr<const A>(a.gws),
            as_ptr<T>(a.grad_x), as_ptr<T>(a.grad_w), a.C, a.S, a.ignore_index};
        launch.template rows_cols<0, A>(a.N, a.S, a.parts, nullptr, body);
      });
    });
  });
}

template <typename Launch>
void wce_double_backward(const WceArgs& a, const Launch& launch) {
  wce_dispatch(a, "weighted_ce_double_backward", [&](auto tf, auto tl, auto cc) {
    using T = typename decltype(tf)::type;
    using L = typename decltype(tl)::type;
    using A = acc_t<T>;
    wce::DoubleBackward<T, L, decltype(cc)::value> body{
        as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<const T>(a.weight),
        as_ptr<const A>(a.g), a.g_stride, as_ptr<const T>(a.ggx), as_ptr<const T>(a.ggw),
        as_ptr<T>(a.grad_x), as_ptr<A>(a.grad_g), as_ptr<T>(a.grad_w), a.C, a.S, a.ignore_index};
    launch.template rows_cols<0, A>(a.N, a.S, a.parts, nullptr, body);
  });
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
