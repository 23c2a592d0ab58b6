// Exact Euclidean distance transform (separable, Felzenszwalb & Huttenlocher 2012) and the
// 1-connectivity surface of a binary mask: the math of one line / one voxel, shared by
// distance_transform_cpu.cpp and distance_transform_cuda.cu.
//
// Geometry: every image is seen as 3D, (n0, n1, n2) row-major with n2 contiguous; 2D and 1D
// images get leading sizes of 1 (D = number of real spatial dims). A batch is B such images.
//
// Distance transform of the seeds (nonzero mask voxels), h_a = spacing along axis a:
//   pass along axis 2:   g(q) = squared 1D distance to the nearest seed on the line (two sweeps)
//   pass along axis a<2: f'(q) = min_p f(p) + ((q - p) h_a)^2, the lower envelope of parabolas
//   the last pass takes the square root. +inf = no seed reachable (an image without seeds is all
//   +inf). Passes run in place on the float32 output: the envelope pass keeps the values it needs
//   (the parabolas' vertices) in scratch, so overwriting the line is safe.
// Optional per-image box [lo, hi) (3 coordinates each): only lines inside the box are computed,
// over the box's extent. Exact inside the box when every seed lies inside it (metrics use the
// bounding box of both masks); values outside the box are not written.
#pragma once

#include "../common/host_device.h"

namespace noisyseg {
namespace edt {

struct Grid {
  int64_t n[3];
  int D;  // real spatial dims: axes 3-D .. 2

  NS_HD int64_t size() const { return n[0] * n[1] * n[2]; }
  NS_HD int64_t stride(int a) const { return a == 0 ? n[1] * n[2] : (a == 1 ? n[2] : 1); }
  NS_HD int64_t lines(int a) const { return n[a] > 0 ? size() / n[a] : 0; }

  // Line l along axis a: the coordinates (u on axis p, w on axis r) of the two other axes
  // (p < r), and the offset of its first element.
  NS_HD int64_t line_base(int a, int64_t l, int64_t& u, int64_t& w, int& p, int& r) const {
    p = a == 0 ? 1 : 0;
    r = a == 2 ? 1 : 2;
    u = l / n[r];
    w = l - u * n[r];
    return u * stride(p) + w * stride(r);
  }
};

// The part of line l (along axis a) of image b to compute: [begin, end) along the axis and the
// offset of the line's element 0 inside the image. False when the line misses the box.
NS_HD bool line_span(const Grid& g, int a, int64_t b, int64_t l, const int64_t* box_lo,
                     const int64_t* box_hi, int64_t& base, int64_t& begin, int64_t& end) {
  int64_t u, w;
  int p, r;
  base = g.line_base(a, l, u, w, p, r);
  begin = 0;
  end = g.n[a];
  if (!box_lo) return true;
  const int64_t* lo = box_lo + 3 * b;
  const int64_t* hi = box_hi + 3 * b;
  if (u < lo[p] || u >= hi[p] || w < lo[r] || w >= hi[r]) return false;
  begin = lo[a];
  end = hi[a];
  return begin < end;
}

// First pass (along the contiguous axis): squared distance (h = spacing) from each of the n
// elements of a line to the nearest seed on the same line, +inf when the line has none; the
// distance itself when take_root (1D images). mask and out step by `stride`.
template <typename M>
NS_HD void seed_line(const M* mask, float* out, int64_t n, int64_t stride, double h, bool take_root) {
  const float inf = ns_inf<float>();
  int64_t last = -1;  // forward sweep: steps back to the last seed (exact small integers)
  for (int64_t q = 0; q < n; ++q) {
    if (mask[q * stride]) last = q;
    out[q * stride] = last < 0 ? inf : float(q - last);
  }
  int64_t next = -1;  // backward sweep: steps on to the next seed, then scale
  for (int64_t q = n - 1; q >= 0; --q) {
    if (mask[q * stride]) next = q;
    float steps = out[q * stride];
    if (next >= 0 && float(next - q) < steps) steps = float(next - q);
    if (steps < inf) {
      const double d = double(steps) * h;
      out[q * stride] = float(take_root ? d : d * d);
    }
  }
}

// Later passes: 1D squared distance transform of a sampled function, in place on the n values
// data[q * stride] (+inf = no seed): data[q] = min_p f(p) + ((q - p) h)^2, the root when take_root.
// Lower envelope of the parabolas rooted at the finite f(p): v = their positions, fv = f there,
// z[k] = where parabola k starts to be the lowest (in steps; z[0] = -inf). Scratch slots are
// `ws` apart (1 for a thread's private buffer, the number of lines for interleaved GPU scratch).
NS_HD void envelope_line(float* data, int64_t n, int64_t stride, double h, bool take_root,
                         int32_t* v, float* fv, double* z, int64_t ws) {
  const double h2 = h * h;
  int64_t k = -1;  // index of the last parabola of the envelope
  for (int64_t q = 0; q < n; ++q) {
    const float fq = data[q * stride];
    if (!(fq < ns_inf<float>())) continue;
    double s = -ns_inf<double>();
    while (k >= 0) {
      const double vk = double(v[k * ws]);
      // abscissa where the parabola at q drops below the one at v_k
      s = ((double(fq) - double(fv[k * ws])) / h2 + double(q) * double(q) - vk * vk) / (2.0 * (double(q) - vk));
      if (k == 0 || s > z[k * ws]) break;
      --k;  // parabola k is nowhere the lowest any more
    }
    ++k;
    v[k * ws] = int32_t(q);
    fv[k * ws] = fq;
    z[k * ws] = k == 0 ? -ns_inf<double>() : s;
  }
  const int64_t count = k + 1;
  if (count == 0) {
    for (int64_t q = 0; q < n; ++q) data[q * stride] = ns_inf<float>();
    return;
  }
  k = 0;
  for (int64_t q = 0; q < n; ++q) {
    while (k + 1 < count && z[(k + 1) * ws] < double(q)) ++k;
    const double dq = (double(q) - double(v[k * ws])) * h;
    const double val = dq * dq + double(fv[k * ws]);
    data[q * stride] = float(take_root ? sqrt(val) : val);
  }
}

// Per-line bodies for the launchers: body(b, l, v, fv, z, ws) handles line l of image b.
template <typename M>
struct SeedPass {
  const M* mask;
  float* out;
  const int64_t *box_lo, *box_hi;
  Grid g;
  double h;
  bool take_root;

  NS_HD void operator()(int64_t b, int64_t l, int32_t*, float*, double*, int64_t) const {
    int64_t base, begin, end;
    if (!line_span(g, 2, b, l, box_lo, box_hi, base, begin, end)) return;
    const int64_t off = b * g.size() + base + begin;
    seed_line(mask + off, out + off, end - begin, int64_t(1), h, take_root);
  }
};

struct EnvelopePass {
  float* data;
  const int64_t *box_lo, *box_hi;
  Grid g;
  int axis;
  double h;
  bool take_root;

  NS_HD void operator()(int64_t b, int64_t l, int32_t* v, float* fv, double* z, int64_t ws) const {
    int64_t base, begin, end;
    if (!line_span(g, axis, b, l, box_lo, box_hi, base, begin, end)) return;
    const int64_t stride = g.stride(axis);
    envelope_line(data + b * g.size() + base + begin * stride, end - begin, stride, h, take_root, v, fv, z, ws);
  }
};

// ---------------------------------------------------------------------------------------------
// Surface: mask XOR erode(mask) with the 1-connectivity cross, outside the image = background
// (scipy.ndimage.binary_erosion's default border_value=0, as medpy and MONAI use): a voxel is on
// the surface when it is set and one of its 2D face neighbours is unset or outside the image.
template <typename M>
NS_HD bool is_surface(const M* m, int64_t s, const Grid& g) {
  if (!m[s]) return false;
  const int64_t i2 = s % g.n[2], i1 = (s / g.n[2]) % g.n[1], i0 = s / (g.n[1] * g.n[2]);
  const int64_t c[3] = {i0, i1, i2};
  for (int a = 3 - g.D; a < 3; ++a) {
    const int64_t st = g.stride(a);
    if (c[a] == 0 || !m[s - st]) return true;
    if (c[a] == g.n[a] - 1 || !m[s + st]) return true;
  }
  return false;
}

// Per-element body for the generic rows x cols launchers: row = image, col = voxel.
template <typename M>
struct SurfaceBody {
  const M* mask;
  uint8_t* out;
  Grid g;

  NS_HD void operator()(int64_t b, int64_t s, int64_t i, float*) const {
    out[i] = uint8_t(is_surface(mask + b * g.size(), s, g));
  }
};

}  // namespace edt
}  // namespace noisyseg
