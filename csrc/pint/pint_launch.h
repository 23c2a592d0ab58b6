// pint: dtype dispatch and body construction, written once for both devices.
#pragma once

#include <cmath>

#include "../common/count_valid.h"
#include "../common/cpu_isa.h"
#include "../common/pointers.h"
#include "../common/scalar_types.h"
#include "../common/strip_launchers.h"
#include "pint.h"
#include "pint_math.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

// 1 / ln C when normalising (1 for C = 1, where u is 0 anyway).
template <typename A>
A entropy_scale(const PintArgs& a) {
  return (a.normalize && a.C > 1) ? A(1.0 / std::log(double(a.C))) : A(1);
}

// image (N,) and bad (N,) from the per-image parts' sums (parts aligned with images: a.parts / a.N
// each).
template <typename A, typename Launch>
void finish_image(const PintArgs& a, const Launch& launch) {
  if (a.N > 0)
    launch.template finish_rows<3>(a.N, a.parts / a.N, as_ptr<const double>(a.partials),
                                   pint::McImageFinish<A>{as_ptr<A>(a.image), as_ptr<A>(a.bad)});
}

template <typename Launch>
void pint_mc_stacked(const PintArgs& a, const Launch& launch) {
  dispatch_floating_label(a.dtype, a.label_dtype, "mc_uncertainty", [&](auto tf, auto tl) {
    using T = typename decltype(tf)::type;
    using L = typename decltype(tl)::type;
    using A = acc_t<T>;
    pint::McStacked<T, L> body{as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<A>(a.mean),
                               as_ptr<A>(a.u), a.T, a.N, a.C, a.S, a.ignore_index, entropy_scale<A>(a)};
    launch.template pass_strips<3, A>(a.N, a.S, a.parts, as_ptr<double>(a.partials), a.T + 1, body);
    finish_image<A>(a, launch);
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
                                as_ptr<A>(a.u), a.C, a.S, a.ignore_index, A(a.count), entropy_scale<A>(a)};
    launch.template strips<3, A>(a.N, a.S, a.parts, as_ptr<double>(a.partials), body);
    finish_image<A>(a, launch);
  });
}

template <typename Launch>
void pint_loss_forward(const PintArgs& a, const Launch& launch) {
  dispatch_floating_label(a.dtype, a.label_dtype, "pint_loss", [&](auto tf, auto tl) {
    using T = typename decltype(tf)::type;
    using L = typename decltype(tl)::type;
    using A = acc_t<T>;
    uint8_t* image_gate = as_ptr<uint8_t>(a.image_gate);
    A grad_scale = A(1);
    if constexpr (Launch::kHostMemory) {  // prescale: the sums are read here, on the host
      if (a.prescale) {
        const double count = count_valid_labels<A>(launch, as_ptr<const L>(a.target), a.N, a.S, a.C, a.ignore_index,
                                                   a.parts, as_ptr<double>(a.partials));
        grad_scale = A(1.0 / count);
      }
    }
    launch.each_index(a.N, pint::ImageGate<A>{as_ptr<const A>(a.image_u), image_gate, a.N, a.image_mode,
                                              A(a.image_threshold), a.keep});
    pint::LossForward<T, L> body{as_ptr<const T>(a.x), as_ptr<const L>(a.target), as_ptr<const A>(a.mu),
                                 as_ptr<const A>(a.u), a.image_mode ? image_gate : nullptr,
                                 as_ptr<uint8_t>(a.gate), as_ptr<T>(a.loss_map), as_ptr<A>(a.dloss), a.C,
                                 a.S, a.ignore_index, A(a.pixel_threshold), A(a.weight), a.has_pixel_threshold,
                                 grad_scale};
    launch.template strips<4, A>(a.N, a.S, a.parts, as_ptr<double>(a.partials), body);
    launch.template finish_rows<4>(1, a.parts, as_ptr<const double>(a.partials),
                                   pint::LossFinish<T, A>{as_ptr<T>(a.loss), as_ptr<A>(a.stats), image_gate, a.N,
                                                          a.reduction});
  });
}

template <typename Launch>
void pint_loss_backward(const PintArgs& a, const Launch& launch) {
  dispatch_floating(a.dtype, "pint_loss backward", [&](auto tf) {
    using T = typename decltype(tf)::type;
    using A = acc_t<T>;
    pint::LossBackward<T, A> body{as_ptr<const A>(a.dloss), as_ptr<const T>(a.g), as_ptr<const A>(a.stats),
                                  as_ptr<T>(a.grad), a.C, a.S, a.g_map, a.reduction == pint::kMean};
    launch.template strips<0, A>(a.N, a.S, a.parts, nullptr, body);
  });
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
