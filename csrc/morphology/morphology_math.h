// Binary / label morphology: the math of one output element (CUDA) and of one output line (CPU),
// shared by morphology_cpu.cpp and morphology_cuda.cu.
//
// Every pass is a stencil with border value 0 over a list of K offsets (p, dd, dh, dw) (int32, K x 4),
// p selecting one of several stacked source planes (each N*D*H*W elements, `plane` apart):
//   max pass: out[x] = max_k src_p[x + o_k]   (positions outside the volume count as 0, i.e. skipped,
//                                              since values are >= 0)
//   min pass: out[x] = min_k src_p[x + o_k]   (a position outside the volume makes out[x] = 0)
// Layout: (N, D, H, W) contiguous; 2D masks use D = 1 and offsets with dd = 0. Planes let a large
// stencil (a ball) run as 1D window passes along w, one plane per distinct window, followed by one
// pass over its rows (p, dd, dh, 0): same result, far fewer reads.
// Dilation is a max pass over the reflected structure, erosion a min pass over the structure, which
// is exactly scipy.ndimage.binary_dilation / binary_erosion with border_value=0. Named structures
// are decomposed in Python (cross radius r = r passes of the radius-1 cross; box = one 1D pass per
// axis); repeated passes are exact because every decomposition path stays inside the volume.
// The label-map rules (who wins where classes meet) are two element-wise combines at the end.
#pragma once

#include <limits>

#include "../common/cpu_isa.h"
#include "../common/host_device.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN
namespace morph {

struct Geom {
  int64_t D, H, W;
  int64_t plane;  // elements between stacked source planes
};

template <bool IsMax, typename T>
NS_HD T reduce(T a, T b) {
  if (IsMax) return a > b ? a : b;
  return a < b ? a : b;
}

// Neutral start value of a pass: 0 for max (labels are >= 0), the largest T for min.
template <bool IsMax, typename T>
NS_HD T neutral() {
  return IsMax ? T(0) : std::numeric_limits<T>::max();
}

NS_HD bool inside(int64_t v, int64_t size) { return v >= 0 && v < size; }

// One output element (n, d, h, w) of a pass.
template <bool IsMax, typename T>
NS_HD T stencil_at(const T* src, Geom g, const int32_t* off, int64_t K, int64_t n, int64_t d, int64_t h,
                   int64_t w) {
  T acc = neutral<IsMax, T>();
  for (int64_t k = 0; k < K; ++k) {
    const int32_t* o = off + 4 * k;
    const int64_t sd = d + o[1], sh = h + o[2], sw = w + o[3];
    if (!inside(sd, g.D) || !inside(sh, g.H) || !inside(sw, g.W)) {
      if (!IsMax) return T(0);  // border value 0 erodes
      continue;                 // and adds nothing to a dilation
    }
    acc = reduce<IsMax>(acc, src[o[0] * g.plane + ((n * g.D + sd) * g.H + sh) * g.W + sw]);
  }
  return acc;
}

// One output line (n, d, h, all w) of a pass, offset by offset so that the inner loop runs over
// contiguous memory (vectorised by the host compiler). Same result as stencil_at for every w.
template <bool IsMax, typename T>
inline void stencil_line(const T* src, T* dst, Geom g, const int32_t* off, int64_t K, int64_t n, int64_t d,
                         int64_t h) {
  T* out = dst + ((n * g.D + d) * g.H + h) * g.W;
  const int64_t W = g.W;
  for (int64_t w = 0; w < W; ++w) out[w] = neutral<IsMax, T>();
  for (int64_t k = 0; k < K; ++k) {
    const int32_t* o = off + 4 * k;
    const int64_t sd = d + o[1], sh = h + o[2], dw = o[3];
    if (!inside(sd, g.D) || !inside(sh, g.H)) {
      if (!IsMax) {
        for (int64_t w = 0; w < W; ++w) out[w] = T(0);
        return;
      }
      continue;
    }
    const T* in = src + o[0] * g.plane + ((n * g.D + sd) * g.H + sh) * W;
    const int64_t w0 = dw < 0 ? (-dw < W ? -dw : W) : 0;      // first w with w + dw >= 0
    const int64_t w1 = dw > 0 ? (W - dw > 0 ? W - dw : 0) : W;  // one past the last w with w + dw < W
    if (!IsMax) {
      for (int64_t w = 0; w < w0; ++w) out[w] = T(0);
      for (int64_t w = w1; w < W; ++w) out[w] = T(0);
    }
    const T* s = in + dw;
    for (int64_t w = w0; w < w1; ++w) out[w] = reduce<IsMax>(out[w], s[w]);
  }
}

// Label-map dilation: foreground keeps its label, background takes the largest label that reached it.
template <typename T>
NS_HD T keep_foreground(T original, T dilated) {
  return original != T(0) ? original : dilated;
}

// Label-map erosion: a pixel keeps class c only if every position of the (iterated) structure lies
// inside the volume and holds c, i.e. the min and the max over it agree (0 otherwise).
template <typename T>
NS_HD T agree_or_zero(T mn, T mx) {
  return mn == mx ? mn : T(0);
}

// Element-wise combine body for the generic rows x cols launchers (rows = 1, cols = numel).
template <typename T>
struct Combine {
  const T* a;  // keep: original labels   agree: min-pass result
  const T* b;  // keep: max-pass result   agree: max-pass result
  T* dst;
  int mode;    // 0 = keep_foreground, 1 = agree_or_zero
  template <typename A>
  NS_HD void operator()(int64_t, int64_t, int64_t i, A*) const {
    dst[i] = mode == 0 ? keep_foreground(a[i], b[i]) : agree_or_zero(a[i], b[i]);
  }
};

}  // namespace morph
NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
