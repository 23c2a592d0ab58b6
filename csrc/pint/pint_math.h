// PINT / UA-MT mean-teacher math: MC-perturbation uncertainty and the gated CE / MSE-to-pseudo-label
// loss with its derivative, side by side; shared by pint_cpu.cpp and pint_cuda.cu.
//
// Layout: scores (N, C, S) contiguous (S = product of the spatial sizes); the C scores of pixel
// (n, s) sit at x[n*C*S + c*S + s]; `row` = n, `col` = s, `i` = n*S + s indexes every (N, S) map.
// Teacher logits (T, N, C, S): pass t starts at t*N*C*S.
// Every body works on a strip of `len` <= W contiguous pixels of one row (strip_launchers.h):
// W = 1 on CUDA (2 or 4 for the two-class bodies that declare kCudaVec), a vector-friendly width
// on the CPU; the inner `for (j < len)` loops are the element-wise math, written once.
//
// Uncertainty (T passes, p_t = softmax(x_t) over C):
//   sums_c  += p_tc                                  (one pass at a time: stacked or streaming;
//                                                     two classes keep sums_1 only)
//   mu_c     = sums_c / T
//   u        = -sum_c mu_c log mu_c  (0 log 0 = 0),  times 1/ln C if normalize
//   per-image partial sums of u and of the number of non-ignored pixels -> U_i
//
// Gated loss (student scores s, label y, teacher mean mu, gate g in {0, 1}, weight w), with its
// derivative written by the same pass (LossForward's dloss):
//   lse = log sum_c exp(s_c),  p = softmax(s) = exp(s - lse)
//   loss    = g ? (lse - s_y) : w * sum_c (p_c - mu_c)^2
//   d/ds_k  = g ? (p_k - [k = y]) : 2 w p_k ((p_k - mu_k) - sum_c p_c (p_c - mu_c))
// (the blend g*CE + w*(1-g)*MSE written as a select: identical for a binary gate, and a NaN or
// inf in the term that is switched off cannot leak into the loss).
// Ignored pixels (y == ignore_index) contribute 0 to the loss, its gradient and the counts; a
// label outside [0, C) is treated as ignored and counted in the last partial sum, which the finish
// step writes out (Python raises): no flag to zero before a pass, one device operation less.
#pragma once

#include "../common/cpu_isa.h"
#include "../common/host_device.h"
#include "../common/scalar_types.h"
#include "../common/sums.h"
#include "../common/two_class.h"
#include "../common/vec_math.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN
namespace pint {

// 1 if a == b else 0, in integer bit operations: a compare feeding float arithmetic is turned
// into a branch by GCC, which then does not vectorise the loop (see vec_math.h).
NS_HD int32_t equal_bit(int32_t a, int32_t b) {
  const uint32_t d = uint32_t(a - b);
  return int32_t(1u - ((d | (0u - d)) >> 31));
}

// Labels of a strip: valid[j] = 1 for a label to learn from, 0 for ignored / out of range;
// y[j] = the class, -1 where not valid. Returns the number of labels outside [0, C) that are not
// ignore_index. Branch-free (vectorises). target == nullptr: every pixel is valid.
template <int W, typename L>
NS_HD int strip_labels(const L* target, int64_t i, int len, int64_t C, int64_t ignore_index, int32_t* y,
                       int32_t* valid) {
  if (!target) {
    for (int j = 0; j < len; ++j) { valid[j] = 1; y[j] = -1; }
    return 0;
  }
  int bad = 0;
  for (int j = 0; j < len; ++j) {
    const L t = target[i + j];  // tested in 32-bit operations (host_device.h): vectorises on SSE2
    valid[j] = int32_t(label_valid(t, C, ignore_index));
    y[j] = valid[j] ? label_class(t) : -1;
    bad += int(label_bad(t, C, ignore_index));
  }
  return bad;
}

// Two-class softmax with one exp: with d = b - a, e = exp(-|d|) <= 1 and r = 1 / (1 + e), the
// larger score's probability is r and the smaller's e * r (exp(min - max) = e: the same values
// as the general max-shifted softmax). NaN or +inf in either score gives NaN in both, -inf gives
// 0 / 1, as torch does (two_class_diff). Written branch-free (vsel) for the CPU strip loops;
// weighted_ce's TwoClass is the same softmax spelled for its loops.
template <typename A>
struct Softmax2 {
  A d, e, pa, pb;
  NS_HD Softmax2(A a, A b) {
    d = two_class_diff(a, b);
    const bool b_big = d > A(0);
    e = vexp_blend(vsel(b_big, -d, d));  // exp(-|d|), NaN stays NaN; _blend: ce() takes its log
    const A r = A(1) / (A(1) + e), small = e * r;
    pa = vsel(b_big, small, r);
    pb = vsel(b_big, r, small);
  }
  // Cross-entropy -log p_y for y in {0, 1}: log(1 + e) + max(0, +-d), the log-sum-exp form.
  NS_HD A ce(int32_t y) const {
    const A t = vsel(y == 1, -d, d);
    return vlog1p_unit(e) + vsel(t > A(0), t, A(0));
  }
};

// The gated loss of one valid pixel, and d loss / d s_k of class k (p = softmax(s), mu the
// teacher's mean, spd = sum_c p_c (p_c - mu_c), is_y = [k = y]; see the header comment).
template <typename A>
NS_HD A gated_loss(bool trusted, A ce, A sq_dist, A weight) {
  return vsel(trusted, ce, weight * sq_dist);
}
template <typename A>
NS_HD A gated_grad(bool trusted, A p, A mu, A spd, int32_t is_y, A weight) {
  return vsel(trusted, p - A(is_y), A(2) * weight * p * ((p - mu) - spd));
}

// exp(x_c - m) of a strip (m = max_c x_c) and z = sum_c exp(x_c - m), so that
// softmax_c = exp(x_c - m) / z and lse = m + log z. On the CPU (W > 1) the exponentials are kept
// when C * W fits the buffer, one exp per score; otherwise (and on CUDA, where C != 2 runs with
// W = 1 and the buffer would live in local memory) `each` evaluates them again. Both give the
// same bits. Two classes take the Softmax2 paths instead.
// Selects are written with vsel (vec_math.h) so that the strip loops vectorise on the CPU.
template <int W, typename A>
struct StripExp {
  static constexpr int kBuf = W > 1 ? 4 * W : 1;
  A m[W], z[W], e[kBuf];
  bool buffered;

  template <typename T>
  NS_HD void init(const T* x, int64_t C, int64_t S, int len) {
    for (int j = 0; j < len; ++j) { m[j] = -ns_inf<A>(); z[j] = A(0); }
    for (int64_t c = 0; c < C; ++c)
      for (int j = 0; j < len; ++j) m[j] = nan_max(m[j], load<A>(x, c * S + j));
    buffered = W > 1 && C * W <= kBuf;
    if (buffered) {
      for (int64_t c = 0; c < C; ++c)
        for (int j = 0; j < len; ++j) {
          const A v = vexp(load<A>(x, c * S + j) - m[j]);
          e[c * W + j] = v;
          z[j] += v;
        }
    } else {
      for (int64_t c = 0; c < C; ++c)
        for (int j = 0; j < len; ++j) z[j] += vexp(load<A>(x, c * S + j) - m[j]);
    }
  }

  // Calls f(c, j, exp(x_c - m_j)) for every class c and pixel j < len.
  template <typename T, typename F>
  NS_HD void each(const T* x, int64_t C, int64_t S, int len, F&& f) const {
    if (buffered) {
      for (int64_t c = 0; c < C; ++c)
        for (int j = 0; j < len; ++j) f(c, j, e[c * W + j]);
    } else {
      for (int64_t c = 0; c < C; ++c)
        for (int j = 0; j < len; ++j) f(c, j, vexp(load<A>(x, c * S + j) - m[j]));
    }
  }

  // lse = m + log z. A +inf (or all -inf) score gives NaN, as torch's log_softmax (the max-shifted
  // score inf - inf is NaN, so is z): the cross-entropy is NaN whatever the label, as in torch.
  NS_HD A lse(int j) const { return m[j] + vlog(z[j]); }
};

// Two classes: p_1 = softmax(a, b)_1 = 1 / (1 + exp(a - b)), one exp and one divide (see
// add_softmax); NaN for a +inf score, as torch.
template <typename A>
NS_HD A two_class_p1(A a, A b) {
  // exp(a - b), not exp(-two_class_diff): the +inf test on the result, off the exp's path.
  const A p = A(1) / (A(1) + vexp(a - b));
  return vsel(has_pos_inf(a, b), std::numeric_limits<A>::quiet_NaN(), p);
}

// sums_c += softmax(x)_c for a strip (first: sums_c = softmax(x)_c, so that a stacked pass and a
// streaming pass add in the same order and give the same bits). x, sums: class c at c*S + j.
template <int W, typename A, typename T>
NS_HD void add_softmax(const T* x, A* sums, int64_t C, int64_t S, int len, bool first) {
  if (C == 2) {  // one fused loop, one exp per pixel
    // Two classes: only sums_1 is kept (mean_entropy takes mu_0 = 1 - mu_1; sums_0 is scratch),
    // p_1 = 1 / (1 + exp(x_0 - x_1)): one exp, one divide and one running sum a pixel, where
    // Softmax2's two sums and selects cost 25 % more in this, the one kernel that reads T
    // passes. Small p_1 keep their relative precision (exp(-d) grows huge; cephes clamps it, so
    // p_1 < 1e-38 comes out as about 6e-39 instead of 0).
    if (first)
      for (int j = 0; j < len; ++j) sums[S + j] = A(0);
    for (int j = 0; j < len; ++j) sums[S + j] += two_class_p1(load<A>(x, j), load<A>(x, S + j));
    return;
  }
  StripExp<W, A> se;
  se.init(x, C, S, len);
  A r[W];
  for (int j = 0; j < len; ++j) r[j] = A(1) / se.z[j];
  if (first)  // 0 + p == p: the same bits as an overwrite, and one loop body below
    for (int64_t c = 0; c < C; ++c)
      for (int j = 0; j < len; ++j) sums[c * S + j] = A(0);
  se.each(x, C, S, len, [&](int64_t c, int j, A v) { sums[c * S + j] += v * r[j]; });
}

// -m log m, 0 at m = 0.
template <typename A>
NS_HD A neg_xlogx(A m) {
  return vsel(m == A(0), A(0), -m * vlog(m));
}

// Two classes from the running sum s1 of p_1: mu_1 = s1 / count, mu_0 = 1 - mu_1, u.
template <typename A>
NS_HD void two_class_mean_entropy(A s1, A inv_count, A scale, A* mu0, A* mu1, A* u) {
  const A m1 = s1 * inv_count, m0 = A(1) - m1;
  *mu0 = m0;
  *mu1 = m1;
  *u = (neg_xlogx(m0) + neg_xlogx(m1)) * scale;
}

// mu_c = sums_c / count (mean may alias sums) and u = scale * (-sum_c mu_c log mu_c) of a strip.
// Two classes: mu_0 = 1 - mu_1 (sums_0 is not kept, see add_softmax; within 6e-8 of the sum).
template <int W, typename A>
NS_HD void mean_entropy(const A* sums, A* mean, A* u, int64_t C, int64_t S, int len, A count, A scale) {
  const A inv_count = A(1) / count;  // a multiply a score instead of a divide (within 1 ulp)
  if (C == 2) {
    for (int j = 0; j < len; ++j) two_class_mean_entropy(sums[S + j], inv_count, scale, mean + j, mean + S + j, u + j);
    return;
  }
  A h[W];
  for (int j = 0; j < len; ++j) h[j] = A(0);
  for (int64_t c = 0; c < C; ++c)
    for (int j = 0; j < len; ++j) {
      const A m = sums[c * S + j] * inv_count;
      mean[c * S + j] = m;
      h[j] += neg_xlogx(m);
    }
  for (int j = 0; j < len; ++j) u[j] = h[j] * scale;
}

// Adds the strip's sum of u over valid pixels and their number to acc[0], acc[1].
template <int W, typename A>
NS_HD void add_image_sums(const A* u, const int32_t* valid, int len, A* acc) {
  A su[W], sn[W];
  for (int j = 0; j < len; ++j) {
    su[j] = vsel(valid[j] != 0, u[j], A(0));
    sn[j] = A(valid[j]);
  }
  acc[0] += strip_sum<W>(su, len);
  acc[1] += strip_sum<W>(sn, len);
}

// ---------------------------------------------------------------------------------------------
// bodies

// Pixels a CUDA thread takes in the two-class uncertainty kernels (stacked and streaming result:
// one value, so that both sum the image uncertainty in one order).
constexpr int kUncertaintyVec = 4;

// Stacked uncertainty, a multi-pass body: passes 0..T-1 add softmax(x_t) into mean (N, C, S)
// (the running sums), pass T turns them into the mean, u (N, S) and acc = [sum of u over valid
// pixels, number of valid pixels, labels out of range] (parts aligned with images).
// The per-pixel order of the adds is that of McAccumulate + McFinalize: the same bits.
template <typename T, typename L>
struct McStacked {
  using A = acc_t<T>;
  // CUDA register cap (strip_launchers.h MinBlocks); none for double, which it made spill.
  static constexpr int kMinBlocks = sizeof(T) <= 4 ? 4 : 0;
  const T* x; const L* target; A* mean; A* u;
  int64_t T_, N, C, S, ignore_index; A scale;

  template <int W>
  NS_HD void strip(int64_t pass, int64_t n, int64_t s, int64_t i, int len, A* acc) const {
    const int64_t off = n * C * S + s;
    if (pass < T_) {
      add_softmax<W>(x + pass * N * C * S + off, mean + off, C, S, len, pass == 0);
      return;
    }
    mean_entropy<W>(mean + off, mean + off, u + i, C, S, len, A(T_), scale);
    int32_t y[W], valid[W];  // int32, not bool: same width as float keeps the loops vectorised
    const int bad = strip_labels<W>(target, i, len, C, ignore_index, y, valid);
    add_image_sums<W>(u + i, valid, len, acc);
    acc[2] += A(bad);
  }

  // CUDA: V consecutive pixels a thread for two classes (strip_launchers.h CudaVec; V = 1 for
  // double: twice the registers). McFinalize takes the same V, so that
  // both forms sum the image uncertainty in one order (add_image_sums<V>): the same bits.
  static constexpr int kCudaVec = sizeof(T) <= 4 ? kUncertaintyVec : 1;
  bool cuda_vec_ok() const { return C == 2; }

  // Every pass of V pixels (the CUDA launcher's form, one thread a group). Two classes keep the
  // running sums in registers: the T * V loads of a thread are independent (no store to `mean`
  // between them that the compiler must assume aliases x), so they are all in flight at once;
  // the adds are those of strip (0 + p_0 + p_1 + ...): the same bits. Other C: pixel by pixel,
  // pass by pass (V = 1 there: cuda_vec_ok).
  template <int V>
  NS_HD void element(int64_t passes, int64_t n, int64_t s, int64_t i, A* acc) const {
    if (C != 2) {
      for (int v = 0; v < V; ++v)
        for (int64_t pass = 0; pass < passes; ++pass) strip<1>(pass, n, s + v, i + v, 1, acc);
      return;
    }
    const int64_t off = n * C * S + s, stride = N * C * S;
    const T* xp = x + off;
    A s1[V], m0[V], m1[V], uu[V];
    for (int v = 0; v < V; ++v) s1[v] = A(0);
    NS_UNROLL(8)
    for (int64_t t = 0; t < T_; ++t, xp += stride)
      for (int v = 0; v < V; ++v) s1[v] += two_class_p1(load_ro<A>(xp, v), load_ro<A>(xp, S + v));
    for (int v = 0; v < V; ++v) {
      two_class_mean_entropy(s1[v], A(1) / A(T_), scale, m0 + v, m1 + v, uu + v);
      mean[off + v] = m0[v];
      mean[off + S + v] = m1[v];
      u[i + v] = uu[v];
    }
    int32_t y[V], valid[V];
    const int bad = strip_labels<V>(target, i, V, C, ignore_index, y, valid);
    add_image_sums<V>(uu, valid, V, acc);
    acc[2] += A(bad);
  }
};

// Streaming pass: sums (N, C, S) += softmax(x (N, C, S)); first overwrites.
template <typename T>
struct McAccumulate {
  using A = acc_t<T>;
  const T* x; A* sums; int64_t C, S; bool first;

  template <int W>
  NS_HD void strip(int64_t n, int64_t s, int64_t, int len, A*) const {
    const int64_t off = n * C * S + s;
    add_softmax<W>(x + off, sums + off, C, S, len, first);
  }
};

// Streaming result: mean = sums / count, u, image sums as McStacked (and its CUDA grouping).
template <typename A, typename L>
struct McFinalize {
  static constexpr int kCudaVec = sizeof(A) <= 4 ? kUncertaintyVec : 1;
  bool cuda_vec_ok() const { return C == 2; }
  const A* sums; const L* target; A* mean; A* u;
  int64_t C, S, ignore_index; A count, scale;

  template <int W>
  NS_HD void strip(int64_t n, int64_t s, int64_t i, int len, A* acc) const {
    const int64_t off = n * C * S + s;
    mean_entropy<W>(sums + off, mean + off, u + i, C, S, len, count, scale);
    int32_t y[W], valid[W];  // int32, not bool: same width as float keeps the loops vectorised
    const int bad = strip_labels<W>(target, i, len, C, ignore_index, y, valid);
    add_image_sums<W>(u + i, valid, len, acc);
    acc[2] += A(bad);
  }
};

// Gated loss forward. Gate g = image_gate[n] * [u < pixel_threshold] (the pixel factor is 1 when
// has_pixel_threshold is 0; image_gate (N,) 0/1 bytes from ImageGate, or null for all 1). Writes
// gate (N, S) as 0/1 bytes and, when non-null, the loss map and dloss (N, C, S) = d loss / d s of
// each pixel (0 at ignored pixels): the backward is then one multiply by the upstream gradient,
// instead of a second pass that recomputes the softmax; acc = [sum of loss, number of valid
// pixels, sum of g over them, labels out of range].
template <typename T, typename L>
struct LossForward {
  using A = acc_t<T>;
  // CUDA: two pixels a thread for two classes (strip_launchers.h CudaVec; with four, registers
  // spilled and the kernel ran slower: benchmarks/cuda_probe_pint.cu).
  static constexpr int kCudaVec = sizeof(T) <= 4 ? 2 : 1;
  // 64 registers, four blocks a multiprocessor (68 without: three); none for double (spills).
  static constexpr int kMinBlocks = sizeof(T) <= 4 ? 4 : 0;
  bool cuda_vec_ok() const { return C == 2; }
  const T* x; const L* target; const A* mu; const A* u; const uint8_t* image_gate;
  uint8_t* gate; T* loss_map; A* dloss;
  int64_t C, S, ignore_index; A pixel_threshold, weight; bool has_pixel_threshold;
  A grad_scale;  // dloss times this: 1, or 1 / (number of valid pixels) for a prescaled "mean"

  template <int W>
  NS_HD void strip(int64_t n, int64_t s, int64_t i, int len, A* acc) const {
    // Members copied to locals: the byte stores to `gate` may alias *this, which would make the
    // compiler reload every member in the loops and give up vectorising them.
    const int64_t C = this->C, S = this->S, off = n * C * S + s;
    const T* xp = x + off;
    const A* mp = mu + off;
    const A* up = u + i;
    uint8_t* gate_out = gate + i;
    T* map_out = loss_map ? loss_map + i : nullptr;
    A* grad_out = dloss ? dloss + off : nullptr;
    const A w = weight, thr = pixel_threshold, k = grad_scale;
    const bool has_thr = has_pixel_threshold;
    int32_t y[W], valid[W];  // int32, not bool: same width as float keeps the loops vectorised
    const int bad = strip_labels<W>(target, i, len, C, ignore_index, y, valid);
    A g[W], l[W];
    const A gi = (!image_gate || image_gate[n]) ? A(1) : A(0);
    for (int j = 0; j < len; ++j) {
      const bool pix = (!has_thr) | (load_ro<A>(up, j) < thr);
      g[j] = vsel(pix, gi, A(0));
    }
    if (C == 2) {  // one fused loop, one exp and one log per pixel
      const auto loss2 = [&](int j, const Softmax2<A>& sm, A m0, A m1) {
        const A da = sm.pa - m0, db = sm.pb - m1;
        return vsel(valid[j] != 0, gated_loss(g[j] != A(0), sm.ce(y[j]), da * da + db * db, w), A(0));
      };
      if (grad_out) {
        for (int j = 0; j < len; ++j) {
          const A m0 = load_ro<A>(mp, j), m1 = load_ro<A>(mp, S + j);
          const Softmax2<A> sm(load_ro<A>(xp, j), load_ro<A>(xp, S + j));
          l[j] = loss2(j, sm, m0, m1);
          const A spd = sm.pa * (sm.pa - m0) + sm.pb * (sm.pb - m1);
          const bool trusted = g[j] != A(0), ok = valid[j] != 0;
          grad_out[j] = vsel(ok, gated_grad(trusted, sm.pa, m0, spd, equal_bit(0, y[j]), w), A(0)) * k;
          grad_out[S + j] = vsel(ok, gated_grad(trusted, sm.pb, m1, spd, equal_bit(1, y[j]), w), A(0)) * k;
        }
      } else {
        for (int j = 0; j < len; ++j)
          l[j] = loss2(j, Softmax2<A>(load_ro<A>(xp, j), load_ro<A>(xp, S + j)), load_ro<A>(mp, j),
                       load_ro<A>(mp, S + j));
      }
    } else {
      StripExp<W, A> se;
      se.init(xp, C, S, len);
      A lse[W], r[W], xy[W], q[W];
      for (int j = 0; j < len; ++j) {
        lse[j] = se.lse(j);
        r[j] = A(1) / se.z[j];
        xy[j] = A(0);
        q[j] = A(0);
      }
      for (int64_t c = 0; c < C; ++c)
        for (int j = 0; j < len; ++j)
          xy[j] = vsel(equal_bit(int32_t(c), y[j]) != 0, load<A>(xp, c * S + j), xy[j]);
      se.each(xp, C, S, len, [&](int64_t c, int j, A v) {
        const A d = v * r[j] - mp[c * S + j];
        q[j] += d * d;
      });
      for (int j = 0; j < len; ++j)
        l[j] = vsel(valid[j] != 0, gated_loss(g[j] != A(0), lse[j] - xy[j], q[j], w), A(0));
      if (grad_out) {
        A spd[W];  // sum_c p_c (p_c - mu_c)
        for (int j = 0; j < len; ++j) spd[j] = A(0);
        se.each(xp, C, S, len, [&](int64_t c, int j, A v) {
          const A p = v * r[j];
          spd[j] += p * (p - mp[c * S + j]);
        });
        se.each(xp, C, S, len, [&](int64_t c, int j, A v) {
          const A d = gated_grad(g[j] != A(0), v * r[j], mp[c * S + j], spd[j], equal_bit(int32_t(c), y[j]), w);
          grad_out[c * S + j] = vsel(valid[j] != 0, d, A(0)) * k;
        });
      }
    }
    for (int j = 0; j < len; ++j) gate_out[j] = uint8_t(g[j] != A(0));
    if (map_out)
      for (int j = 0; j < len; ++j) store(map_out, j, l[j]);
    A sn[W], sg[W];
    for (int j = 0; j < len; ++j) {
      sn[j] = A(valid[j]);
      sg[j] = vsel(valid[j] != 0, g[j], A(0));
    }
    acc[0] += strip_sum<W>(l, len);
    acc[1] += strip_sum<W>(sn, len);
    acc[2] += strip_sum<W>(sg, len);
    acc[3] += A(bad);
  }
};

// ---------------------------------------------------------------------------------------------
// small steps around the passes (per image or per op, not per pixel)

// Image uncertainty of image `row` from its parts' sums [sum of u, number of valid pixels, labels
// out of range] (NaN for an image without valid pixels), and the image's count of labels out of
// range in bad (N,) when non-null (a target was given).
template <typename A>
struct McImageFinish {
  A* image; A* bad;
  NS_HD void finish(int64_t row, const double* sums) const {
    image[row] = A(sums[0] / sums[1]);
    if (bad) bad[row] = A(sums[2]);
  }
};

// Image gate a_i (bytes) of image i: mode 0 all 1; mode 1 U_i < threshold; mode 2 the `keep`
// images with the lowest U (ties: lower index first, NaN last: torch.argsort(stable=True)'s
// order), by counting the images ranked before i (O(N) for each of N images: N is a batch).
template <typename A>
struct ImageGate {
  const A* image_u; uint8_t* gate; int64_t N; int mode; A threshold; int64_t keep;
  NS_HD void operator()(int64_t i) const {
    if (mode == 0) { gate[i] = 1; return; }
    const A ui = image_u[i];
    if (mode == 1) { gate[i] = uint8_t(ui < threshold); return; }
    const bool nan_i = ui != ui;
    int64_t before = 0;
    for (int64_t j = 0; j < N; ++j) {
      const A uj = image_u[j];
      const bool nan_j = uj != uj;
      const bool earlier = nan_i ? (!nan_j || j < i) : (!nan_j && (uj < ui || (uj == ui && j < i)));
      before += int64_t(earlier);
    }
    gate[i] = uint8_t(before < keep);
  }
};

// Reductions of the loss: enum shared with pint_loss.py (REDUCTIONS' order).
enum Reduction : int { kNone = 0, kMean = 1, kSum = 2 };

// From the loss pass's sums [loss, valid pixels, trusted valid pixels, labels out of range]: the
// reduced loss (in the student's dtype; not written for "none", whose map the pass wrote) and
// stats = [number of valid pixels, trusted fraction of them, fraction of images with a_i = 1,
// labels out of range] (accumulation dtype).
template <typename T, typename A>
struct LossFinish {
  T* loss; A* stats; const uint8_t* image_gate; int64_t N; int reduction;
  NS_HD void finish(int64_t, const double* sums) const {
    if (reduction != kNone) store(loss, 0, reduction == kMean ? sums[0] / sums[1] : sums[0]);
    double kept = 0;
    for (int64_t n = 0; n < N; ++n) kept += double(image_gate[n]);
    stats[0] = A(sums[1]);
    stats[1] = A(sums[2] / sums[1]);
    stats[2] = A(kept / double(N));
    stats[3] = A(sums[3]);
  }
};

// Backward: grad (N, C, S) = dloss * g / (count for "mean"), g the upstream gradient: one value
// (0-dim) or a map (N, S) for "none"; count = stats[0] from LossFinish.
template <typename T, typename A>
struct LossBackward {
  const A* dloss; const T* g; const A* stats; T* grad;
  int64_t C, S; bool g_map, mean;

  template <int W>
  NS_HD void strip(int64_t n, int64_t s, int64_t i, int len, A*) const {
    const int64_t C = this->C, S = this->S, off = n * C * S + s;
    const A* dp = dloss + off;
    T* gp = grad + off;
    A k[W];
    if (g_map) {  // the test outside the loops: a load under ?: keeps a loop scalar (vec_math.h)
      for (int j = 0; j < len; ++j) k[j] = load<A>(g, i + j);
    } else {
      const A k0 = load<A>(g, 0) * (mean ? A(1) / stats[0] : A(1));
      for (int j = 0; j < len; ++j) k[j] = k0;
    }
    for (int64_t c = 0; c < C; ++c)
      for (int j = 0; j < len; ++j) store(gp, c * S + j, dp[c * S + j] * k[j]);
  }
};

}  // namespace pint
NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
