// Elastic deformation with a coarse control grid (the elasticdeform toolkit's deform_grid): all
// the math, shared by elastic_cpu.cpp and elastic_cuda.cu.
//
// Definitions (matching elasticdeform 0.5.1, deform.c, bit for bit where the formulas allow):
// * Control grid: P_k points along spatial axis k spanning the image corners; voxel j of an axis of
//   length L sits at grid position  cp = (P - 1) * j / (L - 1)  (cp = 0 when L == 1).
// * Displacement: cubic B-spline through the (prefiltered) grid values, indices outside the grid
//   mirrored ("mirror": whole-sample symmetric, period 2P - 2).
// * Prefilter: scipy.ndimage.spline_filter1d(order=3, mode="mirror") along each axis (one pole,
//   exact mirror initialisation), applied to the grid and, for order 3, to the image.
// * Pull mapping: out[j] = in[map(j + d(j))], where map() folds a coordinate outside [0, L - 1]
//   by the mode: constant -> "outside" (the output is cval; note: any coordinate outside
//   [0, L - 1], even by less than half a voxel), nearest -> clamped, mirror -> reflected about
//   0 and L - 1. The interpolation taps themselves are always mirrored at the borders.
// * Interpolation: order 0 = value at floor(c + 0.5); order 1 = linear; order 3 = cubic B-spline
//   (on prefiltered coefficients). Weights as scipy / elasticdeform, the last one = 1 - the others.
//
// Separable evaluation (where the speed comes from): the displacement is expanded on the coarse
// grid one axis at a time, last axis first (ExpandAxis), up to axis 1; the per-voxel body (Sample)
// only contracts the 4 control planes of axis 0 (4 * ndim multiply-adds instead of 4^ndim * ndim).
// Layout of that partially expanded field: (N, ndim, P0, L1 [, L2]) float64.
#pragma once

#include <type_traits>

#include "../common/cpu_isa.h"
#include "../common/host_device.h"
#include "../common/scalar_types.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN
namespace elastic {

// Border modes; codes shared with noisyseg_ext/ops/elastic.py (MODE_CODES).
enum Mode : int { kConstant = 0, kNearest = 1, kMirror = 2 };

// ---------------------------------------------------------------------------------------------
// coordinates

// Mirrors an integer tap index into [0, n) (whole-sample symmetric, as elasticdeform's taps).
NS_HD int64_t mirror_index(int64_t idx, int64_t n) {
  if (n <= 1) return 0;
  const int64_t s2 = 2 * n - 2;
  if (idx < 0) {
    idx = s2 * (-idx / s2) + idx;
    idx = idx <= 1 - n ? idx + s2 : -idx;
  } else if (idx >= n) {
    idx -= s2 * (idx / s2);
    if (idx >= n) idx = s2 - idx;
  }
  return idx;
}

// elasticdeform's map_coordinate for our three modes: returns -1 for "outside" (constant mode),
// otherwise the folded coordinate. As there, a mirror-mode coordinate in (n - 1, n) stays put:
// its taps are mirrored instead. elasticdeform's  sz2 * (intp)(-in / sz2) + in  is written with
// fmod (the same value, without the undefined cast of huge values). NaN (from a non-finite
// displacement) falls through every test and is treated as outside by the caller.
NS_HD double map_coordinate(double in, int64_t len, int mode) {
  if (in < 0) {
    if (mode == kMirror) {
      if (len <= 1) return 0;
      const double sz2 = double(2 * len - 2);
      in = -fmod(-in, sz2);
      return in <= double(1 - len) ? in + sz2 : -in;
    }
    return mode == kNearest ? 0.0 : -1.0;
  }
  if (in > double(len - 1)) {
    if (mode == kMirror) {
      if (len <= 1) return 0;
      const double sz2 = double(2 * len - 2);
      in = fmod(in, sz2);
      return in >= double(len) ? sz2 - in : in;
    }
    return mode == kNearest ? double(len - 1) : -1.0;
  }
  return in;
}

// floor() for the finite, in-range coordinates used here (|x| < 2^62): without SSE4.1 code
// generation the host compiler calls libm's floor, several of which per voxel cost more than the
// rest of the sampling; a truncating conversion does the same job.
NS_HD double fast_floor(double x) {
#if defined(__CUDA_ARCH__)
  return floor(x);
#else
  const double t = double(int64_t(x));
  return t > x ? t - 1.0 : t;
#endif
}

// Position of voxel j (of an axis of length len) on a control grid of `points` points.
NS_HD double grid_position(int64_t j, int64_t len, int64_t points) {
  return len > 1 ? double(points - 1) * double(j) / double(len - 1) : 0.0;
}

// First tap of a spline of order ORDER at coordinate x.
template <int ORDER>
NS_HD int64_t spline_start(double x) {
  return (ORDER & 1) ? int64_t(fast_floor(x)) - ORDER / 2 : int64_t(fast_floor(x + 0.5)) - ORDER / 2;
}

// The ORDER + 1 B-spline weights at x (scipy's get_spline_interpolation_weights, orders 0, 1, 3).
template <int ORDER>
NS_HD void spline_weights(double x, double* w) {
  x -= fast_floor((ORDER & 1) ? x : x + 0.5);
  if (ORDER == 1) {
    w[0] = 1.0 - x;
  } else if (ORDER == 3) {
    const double y = x, z = 1.0 - x;
    w[1] = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
    w[2] = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
    w[0] = z * z * z / 6.0;
  }
  w[ORDER] = 1.0;
  for (int i = 0; i < ORDER; ++i) w[ORDER] -= w[i];
}

// ---------------------------------------------------------------------------------------------
// cubic B-spline prefilter (scipy.ndimage.spline_filter1d, order 3, mode "mirror"): in place,
// computed in double, stored as A. BLOCK lines that are adjacent in memory run in lockstep (the
// CPU uses 32: a prefilter along a non-last axis then streams through cache instead of jumping
// one line at a time; CUDA uses 1: one thread per line, adjacent threads on adjacent lines).

// Lines b = 0 .. count - 1 (count <= BLOCK): element i of line b at c[i * stride + b * step].
template <int BLOCK, typename A>
NS_HD void prefilter_lines(A* c, int64_t len, int64_t stride, int64_t step, int64_t count) {
  if (len < 2) return;  // scipy leaves lines of length 1 unchanged
  const double z = -0.2679491924311227;  // sqrt(3) - 2, the pole of the cubic B-spline
  const double gain = (1.0 - z) * (1.0 - 1.0 / z);
  const int64_t last = (len - 1) * stride;
  double cur[BLOCK], before[BLOCK];
  // causal initialisation, exact for the mirror extension (on gained values)
  const double z_n_1 = pow(z, double(len - 1));
  for (int64_t b = 0; b < count; ++b) cur[b] = gain * double(c[b * step]) + z_n_1 * gain * double(c[last + b * step]);
  double z_i = z;
  // (the terms fall as |z|^i: past |z_i| < 1e-20 they no longer change a double, so stop there)
  for (int64_t i = 1; i < len - 1 && fabs(z_i) > 1e-20; ++i) {
    const A* fwd = c + i * stride;
    const A* bwd = c + (len - 1 - i) * stride;
    for (int64_t b = 0; b < count; ++b)
      cur[b] += z_i * (gain * double(fwd[b * step]) + z_n_1 * gain * double(bwd[b * step]));
    z_i *= z;
  }
  for (int64_t b = 0; b < count; ++b) {
    cur[b] /= 1.0 - z_n_1 * z_n_1;
    c[b * step] = A(cur[b]);
    before[b] = cur[b];
  }
  // causal recursion
  for (int64_t i = 1; i < len; ++i) {
    A* row = c + i * stride;
    for (int64_t b = 0; b < count; ++b) {
      before[b] = cur[b];
      cur[b] = gain * double(row[b * step]) + z * cur[b];
      row[b * step] = A(cur[b]);
    }
  }
  // anticausal initialisation (mirror) and recursion
  for (int64_t b = 0; b < count; ++b) {
    cur[b] = (z * before[b] + cur[b]) * z / (z * z - 1.0);
    c[last + b * step] = A(cur[b]);
  }
  for (int64_t i = len - 2; i >= 0; --i) {
    A* row = c + i * stride;
    for (int64_t b = 0; b < count; ++b) {
      cur[b] = z * (cur[b] - double(row[b * step]));
      row[b * step] = A(cur[b]);
    }
  }
}

// Prefilters a contiguous (outer, len, inner) block along its middle axis; item = one group of
// up to BLOCK lines: adjacent lines (o, k0 .. k0 + BLOCK - 1), or for the last axis (inner == 1)
// consecutive lines (o0 .. o0 + BLOCK - 1, 0), which gives the serial recursions parallel work.
template <int BLOCK, typename A>
struct PrefilterLines {
  A* data;
  int64_t outer, len, inner;
  NS_HD static int64_t groups(int64_t outer, int64_t inner) {
    return inner == 1 ? (outer + BLOCK - 1) / BLOCK : outer * ((inner + BLOCK - 1) / BLOCK);
  }
  NS_HD void operator()(int64_t group) const {
    if (inner == 1) {
      const int64_t o0 = group * BLOCK;
      const int64_t count = outer - o0 < BLOCK ? outer - o0 : BLOCK;
      prefilter_lines<BLOCK>(data + o0 * len, len, 1, len, count);
      return;
    }
    const int64_t per_outer = (inner + BLOCK - 1) / BLOCK;
    const int64_t o = group / per_outer, k0 = (group - o * per_outer) * BLOCK;
    const int64_t count = inner - k0 < BLOCK ? inner - k0 : BLOCK;
    prefilter_lines<BLOCK>(data + o * len * inner + k0, len, inner, 1, count);
  }
};

// ---------------------------------------------------------------------------------------------
// separable expansion of the control grid along one axis: (outer, points, inner) float64 ->
// (outer, len, inner) float64, out[o, l, k] = sum_t w_t(cp(l)) in[o, mirror(start + t), k].

struct ExpandAxis {
  const double* in;
  double* out;
  int64_t points, len, inner;
  NS_HD void operator()(int64_t i) const {
    const int64_t k = i % inner, ol = i / inner;
    const int64_t l = ol % len, o = ol / len;
    const double cp = grid_position(l, len, points);
    double w[4];
    spline_weights<3>(cp, w);
    const int64_t s = spline_start<3>(cp);
    const double* src = in + o * points * inner + k;
    double v = 0.0;
    for (int t = 0; t < 4; ++t) v += w[t] * src[mirror_index(s + t, points) * inner];
    out[i] = v;
  }
};

// ---------------------------------------------------------------------------------------------
// the per-voxel body: displacement from the 4 control planes of axis 0, then sampling.

// Stores the constant-mode value: labels get the integer Python already rounded as elasticdeform.
template <typename O>
NS_HD void store_constant(O* p, int64_t i, double cval, int64_t cval_label) {
  if constexpr (std::is_integral<O>::value) p[i] = O(cval_label);
  else store(p, i, cval);
}

// In: element type read (the image, or its prefiltered float/double coefficients for order 3);
// Out: element type written. Lines run along the last spatial axis: line = (img * L0 [+ i0]) * L1
// ... with img = n * channels + channel, and the line's length is the last spatial size.
template <typename In, typename Out, int NDIM, int ORDER>
struct Sample {
  using A = acc_t<Out>;  // accumulation type for orders 1 and 3 (unused for order 0)
  const In* x;
  Out* out;
  const double* field;     // (N, NDIM, P0, L1 [, L2])
  int64_t size[NDIM];      // spatial sizes
  int64_t points0;         // control points along axis 0
  int64_t channels;        // images per deformation (x is (N, channels, *spatial) or (N, *spatial))
  int mode;
  double cval;
  int64_t cval_label;

  // Runs voxels [begin, end) of one line (the CPU passes a whole line, CUDA one voxel).
  NS_HD void run_line(int64_t line, int64_t begin, int64_t end) const {
    const int64_t last = size[NDIM - 1];
    int64_t lead[NDIM];  // coordinates of the line (lead[NDIM - 1] unused)
    int64_t r = line;
    for (int k = NDIM - 2; k >= 0; --k) {
      lead[k] = r % size[k];
      r /= size[k];
    }
    const int64_t img = r, n = img / channels;
    int64_t rest = 1;  // voxels in one slice of axis 0 (= row length of the field's planes)
    for (int k = 1; k < NDIM; ++k) rest *= size[k];
    const int64_t rest_base = (NDIM == 3) ? lead[1] * size[2] : 0;
    // axis 0: the 4 control planes and their weights, the same for the whole line
    const double cp0 = grid_position(lead[0], size[0], points0);
    double w0[4];
    spline_weights<3>(cp0, w0);
    const int64_t s0 = spline_start<3>(cp0);
    int64_t plane[4];
    for (int t = 0; t < 4; ++t) plane[t] = mirror_index(s0 + t, points0) * rest + rest_base;
    const double* f_n = field + n * NDIM * points0 * rest;
    const int64_t vol = rest * size[0];
    const In* x_img = x + img * vol;

    for (int64_t j = begin; j < end; ++j) {
      double coord[NDIM];
      bool outside = false;
      for (int k = 0; k < NDIM; ++k) {
        const double* f = f_n + k * points0 * rest + j;
        const double d = w0[0] * f[plane[0]] + w0[1] * f[plane[1]] + w0[2] * f[plane[2]] + w0[3] * f[plane[3]];
        const double pos = (k == NDIM - 1) ? double(j) : double(lead[k]);
        coord[k] = map_coordinate(pos + d, size[k], mode);
        outside = outside || !(coord[k] > -1.0);
      }
      const int64_t o = line * last + j;
      if (outside) {
        store_constant(out, o, cval, cval_label);
        continue;
      }
      interpolate(x_img, coord, o);
    }
  }

  NS_HD void interpolate(const In* x_img, const double* coord, int64_t o) const {
    int64_t stride[NDIM];
    stride[NDIM - 1] = 1;
    for (int k = NDIM - 2; k >= 0; --k) stride[k] = stride[k + 1] * size[k + 1];
    if constexpr (ORDER == 0) {
      int64_t at = 0;
      for (int k = 0; k < NDIM; ++k) at += mirror_index(spline_start<0>(coord[k]), size[k]) * stride[k];
      out[o] = Out(x_img[at]);  // In == Out: an exact copy (labels stay labels)
    } else {
      constexpr int W = ORDER + 1;
      A w[NDIM][W];
      int64_t off[NDIM][W];
      for (int k = 0; k < NDIM; ++k) {
        double wd[W];
        spline_weights<ORDER>(coord[k], wd);
        const int64_t s = spline_start<ORDER>(coord[k]);
        for (int t = 0; t < W; ++t) {
          w[k][t] = A(wd[t]);
          off[k][t] = mirror_index(s + t, size[k]) * stride[k];
        }
      }
      A acc = 0;
      if constexpr (NDIM == 2) {
        for (int a = 0; a < W; ++a) {
          A s1 = 0;
          for (int b = 0; b < W; ++b) s1 += w[1][b] * load<A>(x_img, off[0][a] + off[1][b]);
          acc += w[0][a] * s1;
        }
      } else {
        for (int a = 0; a < W; ++a) {
          A s1 = 0;
          for (int b = 0; b < W; ++b) {
            A s2 = 0;
            const int64_t ab = off[0][a] + off[1][b];
            for (int c = 0; c < W; ++c) s2 += w[2][c] * load<A>(x_img, ab + off[2][c]);
            s1 += w[1][b] * s2;
          }
          acc += w[0][a] * s1;
        }
      }
      store(out, o, acc);
    }
  }
};

}  // namespace elastic
NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
