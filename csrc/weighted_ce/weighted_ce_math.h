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

#include "../common/cpu_isa.h"
#include "../common/host_device.h"
#include "../common/scalar_types.h"
#include "../common/sums.h"
#include "../common/two_class.h"
#include "../common/vec_math.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN
namespace wce {

// One pixel's class scores: C values `stride` apart, and its label.
template <typename T, int CC>
struct PixelScores {
  const T* x;
  int64_t C, stride;
  NS_HD int64_t classes() const { return CC > 0 ? CC : C; }
  template <typename A> NS_HD A at(int64_t c) const { return load<A>(x, c * stride); }
};

// The steps of log-sum-exp, shared by the per-pixel path (LseState) and the CPU tile path below
// (one array per field: an array of LseState is strided, and its loops vectorised with permutes
// whose speed depended on the -mtune: 14 classes, forward 16-17 ms with generic tuning, 12-13 with
// znver3, 11 either way as arrays; AVX2 22 / 15 / 13 ms; one thread, 8 x 256^2 pixels).
template <typename A>
struct LseState {
  A m = -ns_inf<A>(), sum = 0, x_t = 0;  // running max, sum of exp(x - m), score of the label
};
template <typename A>
NS_HD void lse_max_step(A& m, A& x_t, A v, bool is_label) {  // first pass over the classes
  // nan_max written with a bitwise `|`: in this pixel loop GCC vectorises it 1.4x faster than the
  // short-circuit form of host_device.h's nan_max (which pint's strip loops need; both measured).
  m = ((v > m) | (v != v)) ? v : m;
  x_t = is_label ? v : x_t;
}
template <typename A>
NS_HD void lse_max_step(LseState<A>& st, A v, bool is_label) { lse_max_step(st.m, st.x_t, v, is_label); }
template <typename A>
NS_HD void lse_sum_step(A& sum, A m, A v) { sum += ns_exp(v - m); }  // second pass
template <typename A>
NS_HD void lse_sum_step(LseState<A>& st, A v) { lse_sum_step(st.sum, st.m, v); }
template <typename A>
NS_HD A lse_finish(A m, A sum);
template <typename A>
NS_HD A lse_finish(const LseState<A>& st) { return lse_finish(st.m, st.sum); }
template <typename A>
NS_HD A lse_finish(A m, A sum) {
  // NaN in, NaN out. An infinite max gives m - m = NaN, as torch's log_softmax (inf - inf): CE
  // and softmax are NaN at a pixel with a +inf score (or only -inf scores) whatever the label.
  const bool finite_max = (m != ns_inf<A>()) & (m != -ns_inf<A>());
  const A log_sum = ns_log(sum);  // unconditionally: a conditional call is control flow
  return finite_max ? m + log_sum : m - m;
}

// Two-class log-sum-exp in closed form, max + log(1 + exp(-|x0 - x1|)): one exp where the general
// path takes two. NaN in, NaN out; a +inf score gives NaN (two_class_diff), as the general path
// and torch; a -inf score gives the other one. ns_exp_blend: with the plain ns_exp GCC leaves
// this exp-then-log loop scalar (vec_math.h).
template <typename A>
NS_HD A two_class_lse(A x0, A x1) {
  const A d = two_class_diff(x1, x0);  // x0 - x1
  const bool second = d < A(0);
  return vsel(second, x1, x0) + ns_log1p_unit(ns_exp_blend(vsel(second, d, -d)));
}

// Two-class softmax in closed form, for the backward: with e = exp(-|x0 - x1|) (in (0, 1]),
// softmax = {1, e} / (1 + e), the 1 going to the larger score: one exp where the general path
// takes four (two for lse, two for the probabilities). NaN in, NaN out; a +inf score gives NaN,
// as torch. pint's Softmax2 is the same softmax with vsel selects and the device's fast exp; here
// its selects cost the backward 10 % and `?:` in it left the d/dw loop scalar (8x slower), so
// each op keeps the spelling its loops vectorise with (one thread, measured).
template <typename A>
struct TwoClass {
  A e, r;       // exp(-|x0 - x1|), 1 / (1 + e)
  bool first;   // x0 >= x1
  NS_HD TwoClass(A x0, A x1) {
    const A d = two_class_diff(x1, x0);  // x0 - x1
    // -|d|; vsel, not ?:, which GCC turns into a branch here. _blend: the backward with d/dw
    // takes log(1 + e), and exp-then-log loops vectorise only with that spelling (vec_math.h).
    e = ns_exp_blend(vsel(d < A(0), d, -d));
    r = A(1) / (A(1) + e);
    first = d >= A(0);
  }
  NS_HD A p0() const { return first ? r : e * r; }
  NS_HD A p1() const { return first ? e * r : r; }
};

// log-sum-exp of one pixel's scores, and the score of class y (0 if y is not a class).
template <typename A, typename T, int CC>
NS_HD A logsumexp_and_pick(const PixelScores<T, CC>& px, int32_t y, A& x_t) {
  const int64_t C = px.classes();
  LseState<A> st;
  for (int64_t c = 0; c < C; ++c) lse_max_step(st, px.template at<A>(c), int32_t(c) == y);
  for (int64_t c = 0; c < C; ++c) lse_sum_step(st, px.template at<A>(c));
  x_t = st.x_t;
  return lse_finish(st);
}

// d(w CE)/dx_c for one class: g w (p_c - [c = t]), 0 at pixels that are not valid. (The one-hot
// comes in as a number: a bool turned into one inside an inlined call stopped GCC vectorising.)
template <typename A>
NS_HD A grad_logit(A gw, A p, A onehot, bool valid) { return valid ? gw * (p - onehot) : A(0); }

// CPU only: with C read at run time GCC does not vectorise a pixel loop around class loops, so
// bodies with CC = 0 also offer `tile`: the same steps with the class loop outside and a loop over
// up to kTile pixels of one row inside (which vectorises). The launcher uses it when kTiled.
constexpr int64_t kTile = 256;

#if !defined(__CUDACC__)
// d(w CE)/dx of a tile's C classes (x, grad_x: class c at c * S + j), given each pixel's lse, g w,
// label and validity (1 / 0: a bool array stops the vectoriser); Backward::tile and
// Forward::tile with kGradX.
template <typename T, typename A>
inline void tile_grad_logits(const T* x, T* grad_x, int64_t C, int64_t S, int64_t len, const A* lse, const A* gw,
                             const int32_t* t, const A* valid) {
  for (int64_t c = 0; c < C; ++c) {
    const int32_t c32 = int32_t(c);
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) {
      const int64_t k = c * S + j;
      store(grad_x, k, grad_logit(gw[j], ns_exp(load<A>(x, k) - lse[j]), A(c32 == t[j]), valid[j] != A(0)));
    }
  }
}
#endif

// kGradX (CPU only): the forward also writes d loss / d x of the summed loss times grad_scale
// (1, or 1 / the number of valid labels for "mean"), the values Backward writes for a scalar
// upstream gradient g = grad_scale, from the same exp: loss.backward() then has no pass to make.
template <typename T, typename L, int CC, bool kWeight, bool kMap, bool kGradX = false>
struct Forward {
  using A = acc_t<T>;
  static constexpr bool kTiled = CC == 0;
  static constexpr int64_t kTileSize = kTile;
  const T* x; const L* target;
  const T* weight;                                 // (N, S), read when kWeight (else w = 1)
  T* loss_map;                                     // (N, S), written when kMap
  int64_t C, S, ignore_index;
  T* grad_x = nullptr;                             // (N, C, S), written when kGradX
  A grad_scale = A(1);

  NS_HD A w_at(int64_t i) const { return kWeight ? load<A>(weight, i) : A(1); }

  // Sums: [w*CE, valid pixels, w over valid pixels, labels out of range]
  NS_HD Sums4<A> finish(int64_t i, bool valid, bool bad, A lse, A x_t) const {
    const A w = w_at(i);
    const A v = valid ? w * (lse - x_t) : A(0);
    if (kMap) store(loss_map, i, v);
    return Sums4<A>{v, valid ? A(1) : A(0), valid ? w : A(0), bad ? A(1) : A(0)};
  }
  NS_HD Sums4<A> finish(int64_t i, A lse, A x_t) const {
    const int64_t Cn = CC > 0 ? CC : C;
    const L t = target[i];
    return finish(i, label_valid(t, Cn, ignore_index), label_bad(t, Cn, ignore_index), lse, x_t);
  }

  NS_HD Sums4<A> operator()(int64_t n, int64_t s, int64_t i) const {
    const int64_t Cn = CC > 0 ? CC : C;
    const int32_t y = label_class(target[i]);
    if constexpr (CC == 2) {
      const int64_t base = n * 2 * S + s;
      const A x0 = load<A>(x, base), x1 = load<A>(x, base + S);
      // x_t only counts where the label is valid, i.e. y is 0 or 1
      if constexpr (kGradX) {
        // lse from the softmax's exp (two_class_lse's value: the larger score + log(1 + e))
        const TwoClass<A> two(x0, x1);
        const bool valid = label_valid(target[i], Cn, ignore_index);
        const A gw = grad_scale * w_at(i);
        store(grad_x, base, grad_logit(gw, two.p0(), A(y == 0), valid));
        store(grad_x, base + S, grad_logit(gw, two.p1(), A(y == 1), valid));
        return finish(i, (two.first ? x0 : x1) + ns_log1p_unit(two.e), y == 1 ? x1 : x0);
      }
      return finish(i, two_class_lse(x0, x1), y == 1 ? x1 : x0);
    }
    A x_t;
    const int64_t base = n * Cn * S + s;
    const A lse = logsumexp_and_pick<A>(PixelScores<T, CC>{x + base, Cn, S}, y, x_t);
    static_assert(!kGradX || CC == 2, "kGradX with a run-time class count: the CPU launcher calls tile()");
    return finish(i, lse, x_t);
  }

#if !defined(__CUDACC__)
  Sums4<A> tile(int64_t n, int64_t s0, int64_t i0, int64_t len) const {
    // The labels decoded first, into 32-bit arrays (int32, not bool: a bool array stops the
    // vectoriser): with the int64 tests in the last loop GCC's generic tuning left it scalar.
    int32_t y[kTile], ok[kTile], bad[kTile];
    A m[kTile], sum[kTile], x_t[kTile];  // the LseState of each pixel, one array a field
    const T* xb = x + n * C * S + s0;
    for (int64_t j = 0; j < len; ++j) {
      const L t = target[i0 + j];
      y[j] = label_class(t);
      ok[j] = int32_t(label_valid(t, C, ignore_index));
      bad[j] = int32_t(label_bad(t, C, ignore_index));
      m[j] = -ns_inf<A>();
      sum[j] = x_t[j] = A(0);
    }
    for (int64_t c = 0; c < C; ++c) {
      const int32_t c32 = int32_t(c);
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) lse_max_step(m[j], x_t[j], load<A>(xb + c * S, j), c32 == y[j]);
    }
    for (int64_t c = 0; c < C; ++c) {
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) lse_sum_step(sum[j], m[j], load<A>(xb + c * S, j));
    }
    // Per-pixel values, then fixed-order tree sums (sums.h strip_sum): with an `omp simd
    // reduction` GCC's generic tuning left this loop scalar for AVX-512 ("no vectype"), and the
    // forward took 10 ms instead of 5 (14 classes, 8 x 256^2, one thread).
    A v0[kTile], v1[kTile], v2[kTile], v3[kTile];
    for (int64_t j = 0; j < len; ++j) {
      m[j] = lse_finish(m[j], sum[j]);  // m holds lse from here on
      const Sums4<A> r = finish(i0 + j, ok[j] != 0, bad[j] != 0, m[j], x_t[j]);
      v0[j] = r.s0; v1[j] = r.s1; v2[j] = r.s2; v3[j] = r.s3;
    }
    if constexpr (kGradX) {  // as Backward::tile, with g = grad_scale
      A gw[kTile], valid[kTile];
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) {
        valid[j] = ok[j] != 0 ? A(1) : A(0);
        gw[j] = grad_scale * w_at(i0 + j);
      }
      tile_grad_logits(xb, grad_x + n * C * S + s0, C, S, len, m, gw, y, valid);
    }
    return Sums4<A>{strip_sum<kTile>(v0, int(len)), strip_sum<kTile>(v1, int(len)), strip_sum<kTile>(v2, int(len)),
                    strip_sum<kTile>(v3, int(len))};
  }
#endif
};

template <typename T, typename L, int CC, bool kWeight, bool kGradW>
struct Backward {
  using A = acc_t<T>;
  static constexpr bool kTiled = CC == 0;
  static constexpr int64_t kTileSize = kTile;
  const T* x; const L* target;
  const T* weight;               // (N, S), read when kWeight (else w = 1)
  const A* g; int64_t g_stride;  // per-pixel upstream gradient, or one scalar (stride 0)
  const A* gws;                  // scalar gradient of sum_valid w
  T* grad_x;                     // (N, C, S)
  T* grad_w;                     // (N, S), written when kGradW
  int64_t C, S, ignore_index;

  // g * w at a pixel, and d/dw = g CE + gws written there.
  NS_HD A weight_grad_and_scale(int64_t i, A ce, bool valid) const {
    const A gp = g[i * g_stride];
    if (kGradW) store(grad_w, i, vsel(valid, gp * ce + *gws, A(0)));
    return gp * (kWeight ? load<A>(weight, i) : A(1));
  }

  NS_HD Sums4<A> operator()(int64_t n, int64_t s, int64_t i) const {
    const int64_t Cn = CC > 0 ? CC : C;
    const int64_t base = n * Cn * S + s;
    const int32_t t = label_class(target[i]);
    const bool valid = label_valid(target[i], Cn, ignore_index);
    if constexpr (CC == 2) {
      const A x0 = load<A>(x, base), x1 = load<A>(x, base + S);
      const TwoClass<A> two(x0, x1);
      // Only d/dw needs CE: for t in {0, 1}, log(1 + e) + max(0, x_other - x_t), from the
      // softmax's own exp. Not lse - x_t with x_t picked by the label: that pick kept the loop
      // scalar (d/dw backward 37 ms instead of 1.9 for 4 x 64^3 pixels, one thread).
      const A dt = (x1 - x0) * (A(1) - A(2) * A(t == 1));
      const A ce = kGradW ? ns_log1p_unit(two.e) + vsel(dt > A(0), dt, A(0)) : A(0);
      const A gw = weight_grad_and_scale(i, ce, valid);
      store(grad_x, base, grad_logit(gw, two.p0(), A(t == 0), valid));
      store(grad_x, base + S, grad_logit(gw, two.p1(), A(t == 1), valid));
      return {};
    }
    A x_t;
    const A l = logsumexp_and_pick<A>(PixelScores<T, CC>{x + base, Cn, S}, t, x_t);
    const A gw = weight_grad_and_scale(i, l - x_t, valid);
    for (int64_t c = 0; c < Cn; ++c)
      store(grad_x, base + c * S, grad_logit(gw, ns_exp(load<A>(x, base + c * S) - l), A(int32_t(c) == t), valid));
    return {};
  }

#if !defined(__CUDACC__)
  Sums4<A> tile(int64_t n, int64_t s0, int64_t i0, int64_t len) const {
    int32_t t[kTile], ok[kTile];  // labels decoded first, as in Forward::tile
    A m[kTile], sum[kTile], x_t[kTile];  // the LseState of each pixel, one array a field
    A lse[kTile], gw[kTile], valid[kTile];  // valid as 1 / 0: a bool array stops the vectoriser
    const int64_t base = n * C * S + s0;
    for (int64_t j = 0; j < len; ++j) {
      const L tj = target[i0 + j];
      t[j] = label_class(tj);
      ok[j] = int32_t(label_valid(tj, C, ignore_index));
      m[j] = -ns_inf<A>();
      sum[j] = x_t[j] = A(0);
    }
    for (int64_t c = 0; c < C; ++c) {
      const int32_t c32 = int32_t(c);
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) lse_max_step(m[j], x_t[j], load<A>(x, base + c * S + j), c32 == t[j]);
    }
    for (int64_t c = 0; c < C; ++c) {
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) lse_sum_step(sum[j], m[j], load<A>(x, base + c * S + j));
    }
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) {
      lse[j] = lse_finish(m[j], sum[j]);
      valid[j] = ok[j] != 0 ? A(1) : A(0);
      gw[j] = weight_grad_and_scale(i0 + j, lse[j] - x_t[j], ok[j] != 0);
    }
    tile_grad_logits(x + base, grad_x + base, C, S, len, lse, gw, t, valid);
    return {};
  }
#endif
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
    const int32_t t = label_class(target[i]);
    const bool valid = label_valid(target[i], Cn, ignore_index);
    A x_t;
    const A l = logsumexp_and_pick<A>(PixelScores<T, CC>{x + base, Cn, S}, t, x_t);
    const A gp = g[i * g_stride];
    const A w = weight ? load<A>(weight, i) : A(1);
    const A gg_w = ggw ? load<A>(ggw, i) : A(0);
    A s_ggx_p = 0, ggx_t = 0;  // sum_c ggx_c p_c, ggx at the label
    for (int64_t c = 0; c < Cn; ++c) {
      const A ggx_c = ggx ? load<A>(ggx, base + c * S) : A(0);
      s_ggx_p += ggx_c * ns_exp(load<A>(x, base + c * S) - l);
      ggx_t = (int32_t(c) == t) ? ggx_c : ggx_t;
    }
    const A s1 = s_ggx_p - ggx_t;  // sum_c ggx_c (p_c - [c = t])
    d_g[i] = valid ? w * s1 + gg_w * (l - x_t) : A(0);
    if (d_w) store(d_w, i, valid ? gp * s1 : A(0));
    for (int64_t c = 0; c < Cn; ++c) {
      const A p = ns_exp(load<A>(x, base + c * S) - l);
      const A ggx_c = ggx ? load<A>(ggx, base + c * S) : A(0);
      store(d_x, base + c * S, valid ? gp * w * p * (ggx_c - s_ggx_p) + gp * gg_w * (p - A(int32_t(c) == t)) : A(0));
    }
    return {};
  }
};

}  // namespace wce
NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
