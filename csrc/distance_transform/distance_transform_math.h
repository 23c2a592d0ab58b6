// Exact Euclidean distance transform (separable, Felzenszwalb & Huttenlocher 2012), the
// 1-connectivity surface of a binary mask and per-mask bounding boxes: the math of one line /
// one voxel, shared by distance_transform_cpu.cpp and distance_transform_cuda.cu.
//
// Geometry: every image is seen as 3D, (n0, n1, n2) row-major with n2 contiguous; 2D and 1D
// images get leading sizes of 1 (D = number of real spatial dims, axes 3-D .. 2).
//
// Masks are read in place from label maps or 0/1 tensors: voxel s of a mask is set when
// src[offset + s] == cls (one-hot planes use cls = 1), so per-class masks are never materialised.
//
// The distance transform runs as a list of jobs. A job transforms one box of one image (the whole
// image for distance_transform; the bounding box of both masks for the surface metrics, exact
// there because every seed lies inside) into its own slice of a packed float32 buffer, laid out
// row-major over the box. Seeds are the mask's voxels, or its surface voxels. Passes:
//   along axis 2:     g(q) = squared 1D distance to the nearest seed on the line (two sweeps);
//   along axis a < 2: f'(q) = min_p f(p) + ((q - p) h_a)^2, the lower envelope of parabolas;
//   the last pass takes the square root. +inf = no seed reachable (a job without seeds is +inf).
// Passes run in place: the envelope pass keeps what it needs (the parabolas' vertices) in scratch.
// With a query mask (metrics), the first pass records the query mask's surface voxels in a uint8
// buffer, and the last pass computes and writes the distances only at those voxels (lines without
// one are skipped); the other slots of the output are left unspecified.
#pragma once

#include "../common/atomics.h"
#include "../common/host_device.h"

namespace noisyseg {
namespace edt {

struct Grid {
  int64_t n[3];
  int D;

  NS_HD int64_t size() const { return n[0] * n[1] * n[2]; }
  NS_HD int64_t stride(int a) const { return a == 0 ? n[1] * n[2] : (a == 1 ? n[2] : 1); }
};

// The two axes other than a, in order: p < r.
NS_HD void other_axes(int a, int& p, int& r) {
  p = a == 0 ? 1 : 0;
  r = a == 2 ? 1 : 2;
}

// Columns of the int64 job table.
enum JobCol : int {
  kSeedWhich = 0, kSeedOffset, kSeedClass,     // seeds: source 0/1, offset of the image plane, class
  kQueryWhich, kQueryOffset, kQueryClass,      // query mask (metrics only), same meaning
  kLo0, kLo1, kLo2, kDim0, kDim1, kDim2,       // the box: first voxel and sizes (0 = nothing to do)
  kOut,                                        // offset of the job's slice in the packed buffer
  kJobCols
};

struct Box {
  int64_t lo[3], d[3], out;

  NS_HD explicit Box(const int64_t* job) {
    for (int a = 0; a < 3; ++a) { lo[a] = job[kLo0 + a]; d[a] = job[kDim0 + a]; }
    out = job[kOut];
  }
  NS_HD int64_t stride(int a) const { return a == 0 ? d[1] * d[2] : (a == 1 ? d[2] : 1); }
  NS_HD int64_t lines(int a) const { return d[a] > 0 ? d[0] * d[1] * d[2] / d[a] : 0; }
  // Line l along axis a: the box coordinates (u, w) of the other axes and the packed offset of
  // the line's first element.
  NS_HD int64_t line(int a, int64_t l, int64_t& u, int64_t& w) const {
    int p, r;
    other_axes(a, p, r);
    u = l / d[r];
    w = l - u * d[r];
    return out + u * stride(p) + w * stride(r);
  }
};

template <typename L>
struct MaskView {
  const L* p;  // the image plane
  int64_t cls;
  NS_HD bool operator[](int64_t s) const { return int64_t(p[s]) == cls; }
};

template <typename L>
NS_HD MaskView<L> job_mask(const L* const src[2], const int64_t* job, int col) {
  return MaskView<L>{src[job[col]] + job[col + 1], job[col + 2]};
}

// Surface voxel: set, and a face neighbour along a real axis unset or outside [lo, hi) (the
// image, or a box holding every set voxel): mask XOR erode(mask) with the 1-connectivity cross,
// outside = background (scipy.ndimage.binary_erosion's default border_value=0, as medpy / MONAI).
// c = the voxel's coordinates, s = its flat index in the image.
template <typename Mask>
NS_HD bool surface_at(const Mask& m, const Grid& g, const int64_t lo[3], const int64_t hi[3],
                      const int64_t c[3], int64_t s) {
  if (!m[s]) return false;
  for (int a = 3 - g.D; a < 3; ++a) {
    const int64_t st = g.stride(a);
    if (c[a] == lo[a] || !m[s - st]) return true;
    if (c[a] == hi[a] - 1 || !m[s + st]) return true;
  }
  return false;
}

// The seed flag of voxel x of a line along axis 2 (the job's mask or its surface).
template <typename L>
struct SeedOnLine {
  MaskView<L> m;
  const Grid* g;
  int64_t lo[3], hi[3], c0, c1, row;  // row = flat index of the line's voxel x = 0
  bool surface;

  NS_HD bool operator()(int64_t x) const {
    if (!surface) return m[row + x];
    const int64_t c[3] = {c0, c1, lo[2] + x};
    return surface_at(m, *g, lo, hi, c, row + x);
  }
};

// First pass (along the contiguous axis): squared distance (h = spacing) from each of the n
// elements of a line to the nearest seed on the same line, +inf when the line has none; the
// distance itself when take_root (1D images). keep (or null): the final values matter only where
// keep[q] != 0 (elsewhere the buffer keeps the forward sweep's step counts).
template <typename Seed>
NS_HD void seed_line(const Seed& seed, float* out, int64_t n, double h, bool take_root, const uint8_t* keep) {
  const float inf = ns_inf<float>();
  int64_t last = -1;  // forward sweep: steps back to the last seed (exact small integers)
  for (int64_t q = 0; q < n; ++q) {
    if (seed(q)) last = q;
    out[q] = last < 0 ? inf : float(q - last);
  }
  int64_t next = -1;  // backward sweep: steps on to the next seed, then scale
  for (int64_t q = n - 1; q >= 0; --q) {
    if (out[q] == 0.0f) next = q;  // seeds are exactly the zeros of the forward sweep
    float steps = out[q];
    if (next >= 0 && float(next - q) < steps) steps = float(next - q);
    float value = steps;
    if (steps < inf) {
      const double d = double(steps) * h;
      value = float(take_root ? d : d * d);
    }
    if (!keep || keep[q]) out[q] = value;
  }
}

// Scratch of one line's lower envelope, slots `ws` apart: positions v, f at them fv, and where
// parabola k starts to be the lowest, as the fraction zn[k] / zd[k] (in steps; zd > 0), so that
// building the envelope needs no division (a division on the loop-carried path made it
// latency-bound).
struct Scratch {
  int32_t* v;
  float* fv;
  double* zn;
  int32_t* zd;
  int64_t ws;
};

// Later passes: 1D squared distance transform of a sampled function, in place on the n values
// data[q * stride] (+inf = no seed): data[q] = min_p f(p) + ((q - p) h)^2, the root when take_root.
// keep (or null, slots `stride` apart like data): write only where keep[q] != 0, and skip a line
// without such a slot (the metrics need the distances at the query voxels only).
NS_HD void envelope_line(float* data, int64_t n, int64_t stride, double h, bool take_root, const uint8_t* keep,
                         const Scratch& s) {
  if (keep) {
    bool any = false;
    for (int64_t q = 0; q < n && !any; ++q) any = keep[q * stride] != 0;
    if (!any) return;
  }
  const double inv_h2 = 1.0 / (h * h);
  const int64_t ws = s.ws;
  int64_t k = -1;  // index of the last parabola of the envelope
  double num = 0.0;
  int32_t den = 1;
  for (int64_t q = 0; q < n; ++q) {
    const float fq = data[q * stride];
    if (!(fq < ns_inf<float>())) continue;
    const double base = double(fq) * inv_h2 + double(q) * double(q);
    while (k >= 0) {
      const int32_t vk = s.v[k * ws];
      // the parabola at q drops below the one at v_k from num / den on (den = 2 (q - v_k) > 0)
      num = base - (double(s.fv[k * ws]) * inv_h2 + double(vk) * double(vk));
      den = 2 * (int32_t(q) - vk);
      if (k == 0 || num * double(s.zd[k * ws]) > s.zn[k * ws] * double(den)) break;
      --k;  // parabola k is nowhere the lowest any more
    }
    ++k;
    s.v[k * ws] = int32_t(q);
    s.fv[k * ws] = fq;
    s.zn[k * ws] = k == 0 ? -ns_inf<double>() : num;
    s.zd[k * ws] = k == 0 ? 1 : den;
  }
  const int64_t count = k + 1;
  k = 0;
  for (int64_t q = 0; q < n; ++q) {
    while (k + 1 < count && s.zn[(k + 1) * ws] < double(q) * double(s.zd[(k + 1) * ws])) ++k;
    if (keep && !keep[q * stride]) continue;
    float value = ns_inf<float>();
    if (count > 0) {
      const double dq = (double(q) - double(s.v[k * ws])) * h;
      const double val = dq * dq + double(s.fv[k * ws]);
      value = float(take_root ? sqrt(val) : val);
    }
    data[q * stride] = value;
  }
}

// ---------------------------------------------------------------------------------------------
// Per-line bodies: body(job, line, scratch). Scratch with ws == 0 means "at the data's own slots"
// (GPU: each line's scratch is the line's positions in full-size scratch buffers, stride apart).

template <typename L>
struct SeedPass {
  const L* src[2];
  const int64_t* jobs;
  Grid g;
  float* out;
  uint8_t* qflags;  // null without a query mask
  double h;
  bool surface, take_root;

  NS_HD void operator()(int64_t j, int64_t l, const Scratch&) const {
    const int64_t* job = jobs + j * kJobCols;
    const Box b(job);
    int64_t u, w;
    const int64_t base = b.line(2, l, u, w);
    SeedOnLine<L> seed;
    seed.m = job_mask(src, job, kSeedWhich);
    seed.g = &g;
    for (int a = 0; a < 3; ++a) { seed.lo[a] = b.lo[a]; seed.hi[a] = b.lo[a] + b.d[a]; }
    seed.c0 = b.lo[0] + u;
    seed.c1 = b.lo[1] + w;
    seed.row = seed.c0 * g.stride(0) + seed.c1 * g.stride(1) + b.lo[2];
    seed.surface = surface;
    uint8_t* keep = nullptr;
    if (qflags) {  // the query mask's surface voxels on this line
      SeedOnLine<L> query = seed;
      query.m = job_mask(src, job, kQueryWhich);
      query.surface = true;
      keep = qflags + base;
      for (int64_t x = 0; x < b.d[2]; ++x) keep[x] = uint8_t(query(x));
    }
    seed_line(seed, out + base, b.d[2], h, take_root, take_root ? keep : nullptr);
  }
};

struct EnvelopePass {
  const int64_t* jobs;
  float* out;
  const uint8_t* qflags;  // null without a query mask
  int axis;
  double h;
  bool take_root;

  NS_HD void operator()(int64_t j, int64_t l, Scratch s) const {
    const Box b(jobs + j * kJobCols);
    int64_t u, w;
    const int64_t base = b.line(axis, l, u, w);
    const int64_t stride = b.stride(axis);
    if (s.ws == 0) {
      s.v += base; s.fv += base; s.zn += base; s.zd += base;
      s.ws = stride;
    }
    envelope_line(out + base, b.d[axis], stride, h, take_root, (take_root && qflags) ? qflags + base : nullptr, s);
  }
};

// Which job owns flat line t of a pass: line_start (J + 1 prefix sums) by binary search, or
// `per_job` lines each when line_start is null.
struct LineMap {
  const int64_t* start;
  int64_t J, per_job, total;

  NS_HD void locate(int64_t t, int64_t& j, int64_t& l) const {
    if (!start) { j = t / per_job; l = t - j * per_job; return; }
    int64_t lo = 0, hi = J;  // start[lo] <= t < start[hi]
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      if (start[mid] <= t) lo = mid; else hi = mid;
    }
    j = lo;
    l = t - start[lo];
  }
};

// ---------------------------------------------------------------------------------------------
// Bounding boxes of several classes of one image plane in one scan. Row r of the table is
// (source 0/1, offset of the plane, first class, number of classes <= kBoxClasses, first box):
// line l along axis 2 merges, for each class k present on it, (c0, c1, first x) and (c0, c1, last x)
// into box[first box + k] = (lo0, lo1, lo2, hi0, hi1, hi2) (inclusive, initialised to INT32_MAX /
// -1) with atomic min / max. A value outside [0, num_values) is recorded in flag.
constexpr int kBoxClasses = 32;
constexpr int kBoxRowCols = 5;

template <typename L>
struct BoxScan {
  const L* src[2];
  const int64_t* rows;  // (R, kBoxRowCols)
  int32_t* box;         // (boxes, 6)
  int64_t* flag;        // int64[2]
  int64_t num_values;
  Grid g;

  NS_HD void operator()(int64_t r, int64_t l, const Scratch&) const {
    const int64_t* row = rows + kBoxRowCols * r;
    const int64_t c0 = l / g.n[1], c1 = l - c0 * g.n[1];
    const L* p = src[row[0]] + row[1] + c0 * g.stride(0) + c1 * g.stride(1);
    const int64_t first_class = row[2];
    const int n_cls = int(row[3] < kBoxClasses ? row[3] : kBoxClasses);
    int32_t first[kBoxClasses], last[kBoxClasses];
    for (int k = 0; k < n_cls; ++k) first[k] = last[k] = -1;
    for (int64_t x = 0; x < g.n[2]; ++x) {
      const int64_t v = int64_t(p[x]);
      if (v < 0 || v >= num_values) { record_bad_value(flag, v); continue; }
      const int64_t k = v - first_class;
      if (k >= 0 && k < n_cls) {
        if (first[k] < 0) first[k] = int32_t(x);
        last[k] = int32_t(x);
      }
    }
    for (int k = 0; k < n_cls; ++k) {
      if (first[k] < 0) continue;
      int32_t* b = box + 6 * (row[4] + k);
      atomic_min_i32(b + 0, int32_t(c0)); atomic_max_i32(b + 3, int32_t(c0));
      atomic_min_i32(b + 1, int32_t(c1)); atomic_max_i32(b + 4, int32_t(c1));
      atomic_min_i32(b + 2, first[k]); atomic_max_i32(b + 5, last[k]);
    }
  }
};

// Per-element body for the generic rows x cols launcher: row = image, col = voxel; out = surface.
template <typename M>
struct SurfaceBody {
  const M* mask;
  uint8_t* out;
  Grid g;

  NS_HD void operator()(int64_t b, int64_t s, int64_t i, float*) const {
    const int64_t c[3] = {s / (g.n[1] * g.n[2]), (s / g.n[2]) % g.n[1], s % g.n[2]};
    const int64_t lo[3] = {0, 0, 0};
    const MaskView<M> m{mask + b * g.size(), 1};
    out[i] = uint8_t(surface_at(m, g, lo, g.n, c, s));
  }
};

}  // namespace edt
}  // namespace noisyseg
