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
// Ignored pixels (t == ignore_index) contribute 0 everywhere; a label outside [0, C) is recorded
// in `flag` and treated as ignored, so no out-of-bounds access happens.
#pragma once

#include "../common/host_device.h"
#include "../common/scalar_types.h"

namespace noisyseg {
namespace wce {

// log-sum-exp of the C scores x[0], x[stride], ...; NaN in, NaN out (as torch).
template <typename A, typename T>
NS_HD A logsumexp(const T* x, int64_t C, int64_t stride) {
  A m = -ns_inf<A>();
  for (int64_t c = 0; c < C; ++c) m = nan_max(m, load<A>(x, c * stride));
  if (m == ns_inf<A>() || m == -ns_inf<A>()) return m;
  A sum = 0;
  for (int64_t c = 0; c < C; ++c) sum += ns_exp(load<A>(x, c * stride) - m);
  return m + ns_log(sum);
}

// 1 = a label to learn from, 0 = ignored (or out of range, then recorded in flag).
template <typename L>
NS_HD bool valid_label(L raw, int64_t C, int64_t ignore_index, int64_t* flag, int64_t& t) {
  t = int64_t(raw);
  if (t == ignore_index) return false;
  if (t < 0 || t >= C) { record_bad_value(flag, t); return false; }
  return true;
}

template <typename T, typename L>
struct Forward {
  using A = acc_t<T>;
  const T* x; const L* target; const T* weight;  // weight may be null (= 1)
  T* loss_map;                                     // (N, S) or null
  A* lse_out;                                      // (N, S), saved for backward
  int64_t* flag;
  int64_t C, S, ignore_index;

  // acc: [sum of w*CE, number of valid pixels, sum of w over valid pixels]
  NS_HD void operator()(int64_t n, int64_t s, int64_t i, A* acc) const {
    const T* xp = x + n * C * S + s;
    int64_t t;
    if (!valid_label(target[i], C, ignore_index, flag, t)) {
      if (loss_map) store(loss_map, i, A(0));
      lse_out[i] = A(0);
      return;
    }
    const A lse = logsumexp<A>(xp, C, S);
    const A w = weight ? load<A>(weight, i) : A(1);
    const A v = w * (lse - load<A>(xp, t * S));
    if (loss_map) store(loss_map, i, v);
    lse_out[i] = lse;
    acc[0] += v;
    acc[1] += A(1);
    acc[2] += w;
  }
};

template <typename T, typename L>
struct Backward {
  using A = acc_t<T>;
  const T* x; const L* target; const T* weight; const A* lse;
  const A* g; int64_t g_stride;  // per-pixel upstream gradient, or one scalar (stride 0)
  const A* gws;                  // scalar gradient of sum_valid w, or null
  T* grad_x;                     // (N, C, S)
  T* grad_w;                     // (N, S) or null
  int64_t C, S, ignore_index;

  NS_HD void operator()(int64_t n, int64_t s, int64_t i, A*) const {
    const int64_t base = n * C * S + s;
    int64_t t;
    if (!valid_label(target[i], C, ignore_index, nullptr, t)) {
      for (int64_t c = 0; c < C; ++c) store(grad_x, base + c * S, A(0));
      if (grad_w) store(grad_w, i, A(0));
      return;
    }
    const A l = lse[i], gp = g[i * g_stride];
    const A w = weight ? load<A>(weight, i) : A(1);
    const A gw = gp * w;
    for (int64_t c = 0; c < C; ++c) {
      const A p = ns_exp(load<A>(x, base + c * S) - l);
      store(grad_x, base + c * S, gw * (p - A(c == t)));
    }
    if (grad_w) store(grad_w, i, gp * (l - load<A>(x, base + t * S)) + (gws ? *gws : A(0)));
  }
};

template <typename T, typename L>
struct DoubleBackward {
  using A = acc_t<T>;
  const T* x; const L* target; const T* weight; const A* lse;
  const A* g; int64_t g_stride;
  const T* ggx;  // (N, C, S) or null (= 0)
  const T* ggw;  // (N, S) or null (= 0)
  T* d_x;        // (N, C, S)
  A* d_g;        // (N, S): Python sums it when g was a scalar
  T* d_w;        // (N, S) or null
  int64_t C, S, ignore_index;

  NS_HD void operator()(int64_t n, int64_t s, int64_t i, A*) const {
    const int64_t base = n * C * S + s;
    int64_t t;
    if (!valid_label(target[i], C, ignore_index, nullptr, t)) {
      for (int64_t c = 0; c < C; ++c) store(d_x, base + c * S, A(0));
      d_g[i] = A(0);
      if (d_w) store(d_w, i, A(0));
      return;
    }
    const A l = lse[i], gp = g[i * g_stride];
    const A w = weight ? load<A>(weight, i) : A(1);
    const A gg_w = ggw ? load<A>(ggw, i) : A(0);
    A s_ggx_p = 0;  // sum_c ggx_c p_c
    if (ggx)
      for (int64_t c = 0; c < C; ++c)
        s_ggx_p += load<A>(ggx, base + c * S) * ns_exp(load<A>(x, base + c * S) - l);
    const A ggx_t = ggx ? load<A>(ggx, base + t * S) : A(0);
    const A s1 = s_ggx_p - ggx_t;  // sum_c ggx_c (p_c - [c = t])
    const A ce = l - load<A>(x, base + t * S);
    d_g[i] = w * s1 + gg_w * ce;
    if (d_w) store(d_w, i, gp * s1);
    for (int64_t c = 0; c < C; ++c) {
      const A p = ns_exp(load<A>(x, base + c * S) - l);
      const A ggx_c = ggx ? load<A>(ggx, base + c * S) : A(0);
      store(d_x, base + c * S, gp * w * p * (ggx_c - s_ggx_p) + gp * gg_w * (p - A(c == t)));
    }
  }
};

}  // namespace wce
}  // namespace noisyseg
