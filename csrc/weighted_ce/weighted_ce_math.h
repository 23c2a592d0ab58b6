// Pixel-weighted cross-entropy: the math of one pixel, its derivative and its second derivative,
// side by side; shared by weighted_ce_cpu.cpp and weighted_ce_cuda.cu.
//
// Layout: logits (N, C, S) contiguous (S = product of the spatial sizes), so the C scores of pixel
// (n, s) sit at x[n*C*S + c*S + s]: `row` = n, `col` = s, `i` = n*S + s indexes every (N, S) map.
//
//   CE      = lse(x) - x_t,                 lse(x) = m + log(sum_c exp(x_c - m)),  m = max_c x_c
//   forward:   loss = w * CE
//   backward:  d/dx_c = g w (p_c - [c = t]),  d/dw = g CE + gws        (p = softmax(x))
//   double backward, given upstream ggx (d/dx slot) and ggw (d/dw slot):
//     d/dg   = w * sum_c ggx_c (p_c - [c = t]) + ggw * CE
//     d/dw   = g * sum_c ggx_c (p_c - [c = t])
//     d/dx_k = g w p_k (ggx_k - sum_c ggx_c p_c) + g ggw (p_k - [k = t])
// `gws` is the gradient reaching sum_{valid} w (used by reduction="weighted_mean").
// Ignored pixels (t == ignore_index) and labels outside [0, C) contribute 0 everywhere; the forward
// counts the out-of-range ones (4th sum) so Python can raise. The backward passes recompute lse from
// x rather than read a saved copy: the op is memory-bound, and an (N, S) map written and read back
// costs more than one exp and one log a pixel. The bodies use selects, not branches,
// so that the CPU launcher vectorises them across pixels (hence `&` on bools, never `&&`: a
// short-circuit is control flow, which stops GCC's vectoriser); CC > 0 fixes C at compile time (C = 2
// is the common binary case), CC = 0 reads it at run time. Optional inputs and outputs are
// compile-time flags (kWeight, kMap, kGradW), so that no pointer test or run-time stride stays in
// the loop: GCC vectorises only branch-free loops, and a weight read as weight[i * stride] cost the
// forward 10x (measured) by defeating contiguous vector loads.
#pragma once

#include "../common/host_device.h"
#include "../common/scalar_types.h"
#include "../common/sums.h"

namespace noisyseg {
namespace wce {

// One pixel's class scores: C values `stride` apart, and its label.
template <typename T, int CC>
struct PixelScores {
  const T* x;
  int64_t C, stride;
  NS_HD int64_t classes() const { return CC > 0 ? CC : C; }
  template <typename A> NS_HD A at(int64_t c) const { return load<A>(x, c * stride); }
};

// log-sum-exp of the scores, and the score of class t (0 if t is not a class). NaN in, NaN out.
template <typename A, typename T, int CC>
NS_HD A logsumexp_and_pick(const PixelScores<T, CC>& px, int64_t t, A& x_t) {
  const int64_t C = px.classes();
  A m = -ns_inf<A>();
  x_t = A(0);
  for (int64_t c = 0; c < C; ++c) {
    const A v = px.template at<A>(c);
    m = nan_max(m, v);
    x_t = (c == t) ? v : x_t;
  }
  A sum = 0;
  for (int64_t c = 0; c < C; ++c) sum += ns_exp(px.template at<A>(c) - m);
  const bool finite_max = (m != ns_inf<A>()) & (m != -ns_inf<A>());
  const A log_sum = ns_log(sum);  // unconditionally: a conditional call is control flow
  return finite_max ? m + log_sum : m;
}

template <typename T, typename L, int CC, bool kWeight, bool kMap>
struct Forward {
  using A = acc_t<T>;
  const T* x; const L* target;
  const T* weight;                                 // (N, S), read when kWeight (else w = 1)
  T* loss_map;                                     // (N, S), written when kMap
  int64_t C, S, ignore_index;

  // Sums: [w*CE, valid pixels, w over valid pixels, labels out of range]
  NS_HD Sums4<A> operator()(int64_t n, int64_t s, int64_t i) const {
    const int64_t Cn = CC > 0 ? CC : C;
    const PixelScores<T, CC> px{x + n * Cn * S + s, Cn, S};
    const int64_t t = int64_t(target[i]);
    const bool ignored = t == ignore_index;
    const bool valid = !ignored & (t >= 0) & (t < Cn);
    A x_t;
    const A lse = logsumexp_and_pick<A>(px, t, x_t);
    const A w = kWeight ? load<A>(weight, i) : A(1);
    const A v = valid ? w * (lse - x_t) : A(0);
    if (kMap) store(loss_map, i, v);
    return Sums4<A>{v, valid ? A(1) : A(0), valid ? w : A(0), (!ignored & !valid) ? A(1) : A(0)};
  }
};

template <typename T, typename L, int CC, bool kWeight, bool kGradW>
struct Backward {
  using A = acc_t<T>;
  const T* x; const L* target;
  const T* weight;               // (N, S), read when kWeight (else w = 1)
  const A* g; int64_t g_stride;  // per-pixel upstream gradient, or one scalar (stride 0)
  const A* gws;                  // scalar gradient of sum_valid w
  T* grad_x;                     // (N, C, S)
  T* grad_w;                     // (N, S), written when kGradW
  int64_t C, S, ignore_index;

  NS_HD Sums4<A> operator()(int64_t n, int64_t s, int64_t i) const {
    const int64_t Cn = CC > 0 ? CC : C;
    const int64_t base = n * Cn * S + s;
    const int64_t t = int64_t(target[i]);
    const bool valid = (t != ignore_index) & (t >= 0) & (t < Cn);
    A x_t;
    const A l = logsumexp_and_pick<A>(PixelScores<T, CC>{x + base, Cn, S}, t, x_t);
    const A gp = g[i * g_stride];
    const A w = kWeight ? load<A>(weight, i) : A(1);
    const A gw = gp * w;
    for (int64_t c = 0; c < Cn; ++c) {
      const A p = ns_exp(load<A>(x, base + c * S) - l);
      store(grad_x, base + c * S, valid ? gw * (p - A(c == t)) : A(0));
    }
    if (kGradW) store(grad_w, i, valid ? gp * (l - x_t) + *gws : A(0));
    return {};
  }
};

template <typename T, typename L, int CC>
struct DoubleBackward {
  using A = acc_t<T>;
  const T* x; const L* target;
  const T* weight;  // (N, S) or null (= 1)
  const A* g; int64_t g_stride;
  const T* ggx;  // (N, C, S) or null (= 0)
  const T* ggw;  // (N, S) or null (= 0)
  T* d_x;        // (N, C, S)
  A* d_g;        // (N, S): Python sums it when g was a scalar
  T* d_w;        // (N, S) or null
  int64_t C, S, ignore_index;

  NS_HD Sums4<A> operator()(int64_t n, int64_t s, int64_t i) const {
    const int64_t Cn = CC > 0 ? CC : C;
    const int64_t base = n * Cn * S + s;
    const int64_t t = int64_t(target[i]);
    const bool valid = (t != ignore_index) & (t >= 0) & (t < Cn);
    A x_t;
    const A l = logsumexp_and_pick<A>(PixelScores<T, CC>{x + base, Cn, S}, t, x_t);
    const A gp = g[i * g_stride];
    const A w = weight ? load<A>(weight, i) : A(1);
    const A gg_w = ggw ? load<A>(ggw, i) : A(0);
    A s_ggx_p = 0, ggx_t = 0;  // sum_c ggx_c p_c, ggx at the label
    for (int64_t c = 0; c < Cn; ++c) {
      const A ggx_c = ggx ? load<A>(ggx, base + c * S) : A(0);
      s_ggx_p += ggx_c * ns_exp(load<A>(x, base + c * S) - l);
      ggx_t = (c == t) ? ggx_c : ggx_t;
    }
    const A s1 = s_ggx_p - ggx_t;  // sum_c ggx_c (p_c - [c = t])
    d_g[i] = valid ? w * s1 + gg_w * (l - x_t) : A(0);
    if (d_w) store(d_w, i, valid ? gp * s1 : A(0));
    for (int64_t c = 0; c < Cn; ++c) {
      const A p = ns_exp(load<A>(x, base + c * S) - l);
      const A ggx_c = ggx ? load<A>(ggx, base + c * S) : A(0);
      store(d_x, base + c * S, valid ? gp * w * p * (ggx_c - s_ggx_p) + gp * gg_w * (p - A(c == t)) : A(0));
    }
    return {};
  }
};

}  // namespace wce
}  // namespace noisyseg
