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
// The distance transform runs as a list of jobs. A job owns a box U of one image and its own
// slice of a packed float32 buffer, laid out row-major over U (the whole image for
// distance_transform; the bounding box of both masks for the surface metrics). Seeds are the seed
// mask's voxels, or its surface voxels, all inside the seed box S; values are wanted inside the
// query box Q (S, Q inside U). Passes, axis 2 first:
//   along axis 2:     g(q) = squared 1D distance to the nearest seed on the line (two sweeps);
//   along axis a < 2: f'(q) = min_p f(p) + ((q - p) h_a)^2, the lower envelope of parabolas;
//   the last pass takes the square root. +inf = no seed reachable.
// Exact and minimal: the pass along axis a runs the lines whose coordinates lie in S on the axes
// not yet transformed (b < a: elsewhere every value is +inf) and in Q on the axes already
// transformed (b > a: only those values are read later); it reads its input on S_a and writes
// its output on Q_a. So with Q = S = U this is the plain separable transform of U, and a far
// outlier in one mask (which stretches U) costs little in the direction where it is a query.
// Passes run in place: the envelope pass keeps what it needs (the parabolas' vertices) in scratch.
// With a query mask (metrics), a first pass records the query mask's surface voxels in a uint8
// buffer (zeroed by the caller), and the last pass computes and writes the distances only there
// (lines without one are skipped); the other slots of the output are left unspecified.
#pragma once

#include "../common/cpu_isa.h"
#include "../common/atomics.h"
#include "../common/host_device.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN
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

// Columns of the int64 job table (absolute image coordinates; hi exclusive).
enum JobCol : int {
  kSeedWhich = 0, kSeedOffset, kSeedClass,     // seeds: source 0/1, offset of the image plane, class
  kQueryWhich, kQueryOffset, kQueryClass,      // query mask (metrics only), same meaning
  kLo0, kLo1, kLo2, kDim0, kDim1, kDim2,       // U: first voxel and sizes (0 = nothing to do)
  kOut,                                        // offset of the job's slice in the packed buffer
  kSeedLo0, kSeedLo1, kSeedLo2, kSeedHi0, kSeedHi1, kSeedHi2,        // S
  kQueryLo0, kQueryLo1, kQueryLo2, kQueryHi0, kQueryHi1, kQueryHi2,  // Q
  kJobCols
};

// The query pass (query flags along axis 2 over Q) is pass number 3 of a job's line table.
constexpr int kQueryPass = 3;

struct Job {
  int64_t lo[3], d[3], out, slo[3], shi[3], qlo[3], qhi[3];

  NS_HD explicit Job(const int64_t* job) {
    for (int a = 0; a < 3; ++a) {
      lo[a] = job[kLo0 + a]; d[a] = job[kDim0 + a];
      slo[a] = job[kSeedLo0 + a]; shi[a] = job[kSeedHi0 + a];
      qlo[a] = job[kQueryLo0 + a]; qhi[a] = job[kQueryHi0 + a];
    }
    out = job[kOut];
  }
  NS_HD int64_t stride(int a) const { return a == 0 ? d[1] * d[2] : (a == 1 ? d[2] : 1); }
  // The range of axis b for the lines of pass `pass`: S before the pass's axis, Q after it (the
  // query pass runs over Q).
  NS_HD void range(int pass, int b, int64_t& r0, int64_t& r1) const {
    const bool seeds = pass != kQueryPass && b < pass;
    r0 = seeds ? slo[b] : qlo[b];
    r1 = seeds ? shi[b] : qhi[b];
  }
  // The lines of pass `pass` run along axis a; they are laid out over the other two axes p < r,
  // with p in [p0, p1) and r in [r0, r1).
  struct Plane {
    int a, p, r;
    int64_t p0, p1, r0, r1;
  };
  NS_HD Plane plane(int pass) const {
    Plane q;
    q.a = pass == kQueryPass ? 2 : pass;
    other_axes(q.a, q.p, q.r);
    range(pass, q.p, q.p0, q.p1);
    range(pass, q.r, q.r0, q.r1);
    return q;
  }
  NS_HD int64_t lines(int pass) const {
    const Plane q = plane(pass);
    return (q.p1 > q.p0 && q.r1 > q.r0) ? (q.p1 - q.p0) * (q.r1 - q.r0) : 0;
  }
  // Line l of pass `pass`: the absolute coordinates c of its other axes (c[a] = the line's start),
  // the packed offset of its start, and its span [h0, h1) along the axis a.
  NS_HD int64_t line(int pass, int64_t l, int64_t c[3], int64_t& h0, int64_t& h1) const {
    const Plane q = plane(pass);
    const int a = q.a;
    const int64_t u = l / (q.r1 - q.r0);
    c[q.p] = q.p0 + u;
    c[q.r] = q.r0 + (l - u * (q.r1 - q.r0));
    if (pass == kQueryPass) { h0 = qlo[a]; h1 = qhi[a]; }
    else { h0 = slo[a] < qlo[a] ? slo[a] : qlo[a]; h1 = shi[a] > qhi[a] ? shi[a] : qhi[a]; }
    c[a] = h0;
    return out + (c[0] - lo[0]) * stride(0) + (c[1] - lo[1]) * stride(1) + (c[2] - lo[2]) * stride(2);
  }
};

template <typename L>
struct MaskView {
  const L* p;  // the image plane
  int64_t cls;
  NS_HD bool operator[](int64_t s) const { return p[s] == L(cls); }
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

// Marks the n voxels (c0, c1, x0 .. x0 + n - 1) of a row along axis 2: out[i] = on where the voxel
// is set (surface = false) or on the mask's surface (surface = true, as surface_at with the box
// [lo, hi) holding every set voxel), off elsewhere. Written as one branch-free loop over the row and
// its 4 neighbouring rows so that the compiler vectorises it; the box edges along axis 2 are fixed
// up after it (no read outside the box).
constexpr int64_t kMarkChunk = 16;

template <typename L, typename T>
NS_HD void mark_row(const MaskView<L>& m, const Grid& g, const int64_t lo[3], const int64_t hi[3], int64_t c0,
                    int64_t c1, int64_t x0, int64_t n, bool surface, T on, T off, T* out) {
  const L cls = L(m.cls);
  const L* row = m.p + c0 * g.stride(0) + c1 * g.stride(1);
  if (!surface) {
    for (int64_t i = 0; i < n; ++i) out[i] = row[x0 + i] == cls ? on : off;
    return;
  }
  // Neighbouring rows along axes 0 and 1: a real axis' row outside the box is background
  // (use = 1, ok = 0: never interior); a padding axis has no neighbours (use = 0: ignored).
  const L* nb[4];
  bool use[4], ok[4];
  const int64_t c[2] = {c0, c1};
  for (int k = 0; k < 4; ++k) {
    const int a = k / 2;
    const int64_t step = (k % 2) ? 1 : -1;
    use[k] = a >= 3 - g.D;
    ok[k] = use[k] && c[a] + step >= lo[a] && c[a] + step < hi[a];
    nb[k] = ok[k] ? row + step * g.stride(a) : row;  // row: a safe dummy when not ok
  }
  const bool need0 = use[0] && !ok[0], need1 = use[1] && !ok[1], need2 = use[2] && !ok[2], need3 = use[3] && !ok[3];
  const bool blocked = need0 || need1 || need2 || need3;  // a neighbour row is background: no interior
  const int64_t in0 = x0 > lo[2] ? x0 : lo[2] + 1;                 // voxels with both x neighbours
  const int64_t in1 = x0 + n < hi[2] - 1 ? x0 + n : hi[2] - 1;     // inside the box
  // (bitwise & and |, not && and ||: no branches, so the loop vectorises)
  auto mark = [&](int64_t x) {
    const bool set = row[x] == cls;
    const bool inner = !blocked & (row[x - 1] == cls) & (row[x + 1] == cls) &
                       (!use[0] | (nb[0][x] == cls)) & (!use[1] | (nb[1][x] == cls)) &
                       (!use[2] | (nb[2][x] == cls)) & (!use[3] | (nb[3][x] == cls));
    out[x - x0] = (set & !inner) ? on : off;
  };
  // Rows are short (tens of voxels): a plain loop would run mostly in the scalar remainder of a
  // 64-byte vector loop. Fixed chunks of kMarkChunk instead, the last one overlapping its
  // predecessor (it rewrites the same values).
  if (in1 - in0 >= kMarkChunk) {
    for (int64_t x = in0;; x += kMarkChunk) {
      x = x < in1 - kMarkChunk ? x : in1 - kMarkChunk;
      for (int64_t i = 0; i < kMarkChunk; ++i) mark(x + i);
      if (x == in1 - kMarkChunk) break;
    }
  } else {
    for (int64_t x = in0; x < in1; ++x) mark(x);
  }
  // the box edges along axis 2 (neighbour outside = background: set means surface)
  for (int64_t x = x0; x < x0 + n && x < in0; ++x) out[x - x0] = row[x] == cls ? on : off;
  for (int64_t x = in1 > x0 ? in1 : x0; x < x0 + n; ++x) out[x - x0] = row[x] == cls ? on : off;
}

constexpr int64_t kFewSeeds = 8;

// First pass (along the contiguous axis): squared distance (h = spacing) from each of the n
// elements of a line to the nearest seed on the same line, +inf when the line has none; the
// distance itself when take_root (1D images). On entry out[q] = 0 at the seeds (mark_row), +inf
// elsewhere. keep (or null): the final values matter only where keep[q] != 0 (elsewhere the buffer
// keeps the forward sweep's step counts).
NS_HD void seed_line(float* out, int64_t n, double h, bool take_root, const uint8_t* keep) {
  // Most lines cross a surface a few times or not at all: count the seeds (a vectorised
  // reduction); none: +inf already everywhere; a few: the distance to each of them in turn,
  // vectorised passes over the line, instead of the two sequential sweeps below.
  int64_t seeds = 0;
  for (int64_t q = 0; q < n; ++q) seeds += out[q] == 0.0f;
  if (seeds == 0) return;
  if (seeds <= kFewSeeds) {
    int64_t at[kFewSeeds];
    int64_t k = 0;
    for (int64_t q = 0; q < n && k < seeds; ++q)
      if (out[q] == 0.0f) at[k++] = q;
    for (int64_t q = 0; q < n; ++q) out[q] = float(q > at[0] ? q - at[0] : at[0] - q);
    for (int64_t i = 1; i < k; ++i) {
      const int64_t a = at[i];
      for (int64_t q = 0; q < n; ++q) {
        const float d = float(q > a ? q - a : a - q);
        out[q] = d < out[q] ? d : out[q];
      }
    }
    for (int64_t q = 0; q < n; ++q) {
      const double d = double(out[q]) * h;
      out[q] = float(take_root ? d : d * d);
    }
    return;
  }
  // Branch-free sweeps (selects): positions before the first / after the last seed get a step
  // count >= kFar, i.e. no seed on the line.
  constexpr int64_t kFar = int64_t(1) << 40;
  int64_t last = -2 * kFar;  // forward sweep: steps back to the last seed (exact small integers)
  for (int64_t q = 0; q < n; ++q) {
    last = out[q] == 0.0f ? q : last;
    out[q] = float(q - last);
  }
  int64_t next = 2 * kFar + n;  // backward sweep: steps on to the next seed, then scale
  for (int64_t q = n - 1; q >= 0; --q) {
    const float back = out[q];
    next = back == 0.0f ? q : next;  // seeds are exactly the zeros of the forward sweep
    const float ahead = float(next - q);
    const float steps = ahead < back ? ahead : back;
    const double d = double(steps) * h;
    const float value = steps >= float(kFar) ? ns_inf<float>() : float(take_root ? d : d * d);
    out[q] = (!keep || keep[q]) ? value : back;
  }
}

// Scratch of one line's lower envelope, slots `ws` apart: positions v, f at them fv, and z[k] =
// where parabola k starts to be the lowest (in steps).
struct Scratch {
  int32_t* v;
  float* fv;
  double* z;
  int64_t ws;
};

// Slot k of the scratch: k on the CPU (private, contiguous), k * ws on the GPU (interleaved).
struct UnitSlots {
  NS_HD int64_t operator()(int64_t k) const { return k; }
};
struct StridedSlots {
  int64_t ws;
  NS_HD int64_t operator()(int64_t k) const { return k * ws; }
};

// With a query mask, the last pass needs the values at a few voxels of a line only (a surface
// crosses a line a few times): there the lower envelope costs more than the direct minimum
// min_p f(p) + ((q - p) h)^2 at each of those voxels, a contiguous, vectorisable loop over a
// gathered copy of f. Same arithmetic as the envelope's value, so the same result.
constexpr int64_t kDirectMaxQueries = 24;
constexpr int kDirectLanes = 8;

// min over p in [0, n) of double(f[slot(p)]) + ((q - p) h)^2, q relative to f's first slot;
// kDirectLanes independent minima so that the compiler vectorises it without -ffast-math.
template <typename Slot>
NS_HD double direct_min(const float* f, int64_t n, int64_t q, double h, Slot slot) {
  double acc[kDirectLanes];
  for (int j = 0; j < kDirectLanes; ++j) acc[j] = ns_inf<double>();
  int64_t p = 0;
  for (; p + kDirectLanes <= n; p += kDirectLanes) {
    for (int j = 0; j < kDirectLanes; ++j) {
      const double dq = double(q - (p + j)) * h;
      const double val = dq * dq + double(f[slot(p + j)]);
      acc[j] = val < acc[j] ? val : acc[j];
    }
  }
  for (; p < n; ++p) {
    const double dq = double(q - p) * h;
    const double val = dq * dq + double(f[slot(p)]);
    acc[0] = val < acc[0] ? val : acc[0];
  }
  double best = acc[0];
  for (int j = 1; j < kDirectLanes; ++j) best = acc[j] < best ? acc[j] : best;
  return best;
}

// Later passes: 1D squared distance transform of a sampled function, in place on the n values
// data[q * stride] (+inf = no seed): data[q] = min_p f(p) + ((q - p) h)^2, the root when take_root.
// keep (or null, slots `stride` apart like data): write only where keep[q] != 0, and skip a line
// without such a slot (the metrics need the distances at the query voxels only); with at most
// kDirectMaxQueries such slots, the direct minimum instead of the envelope.
// Reads f on [in0, in1) only (+inf elsewhere) and writes on [out0, out1) only.
// The envelope is built without divisions: with b(p) = f(p) / h^2 + p^2, parabolas p < r cross at
// (b(r) - b(p)) / (2 (r - p)), and the comparisons of crossings are cross-multiplied (exact for
// unit spacing, where every b is an integer). Scratch: v = vertices, fv = f there, z = b there.
template <typename Slot>
NS_HD void envelope_line(float* data, int64_t stride, double h, bool take_root, const uint8_t* keep,
                         int64_t in0, int64_t in1, int64_t out0, int64_t out1,
                         int32_t* v, float* fv, double* z, Slot slot, int64_t queries = -1) {
  if (keep) {
    if (queries < 0) {  // (else counted by the caller)
      queries = 0;
      for (int64_t q = out0; q < out1; ++q) queries += keep[q * stride] != 0;
    }
    if (queries == 0) return;
    if (queries <= kDirectMaxQueries) {
      const int64_t n = in1 > in0 ? in1 - in0 : 0;
      for (int64_t p = 0; p < n; ++p) fv[slot(p)] = data[(in0 + p) * stride];
      for (int64_t q = out0; q < out1; ++q) {
        if (!keep[q * stride]) continue;
        const double best = direct_min(fv, n, q - in0, h, slot);
        data[q * stride] = best < ns_inf<double>() ? float(take_root ? sqrt(best) : best) : ns_inf<float>();
      }
      return;
    }
  }
  const double inv_h2 = 1.0 / (h * h);
  int64_t k = -1;  // index of the last parabola of the envelope
  for (int64_t q = in0; q < in1; ++q) {
    const float fq = data[q * stride];
    if (!(fq < ns_inf<float>())) continue;
    const double bq = double(fq) * inv_h2 + double(q) * double(q);
    // pop parabola k while the new one is lowest from where k starts being lowest:
    // cross(k, q) <= cross(k - 1, k)
    while (k >= 1) {
      const double vk = double(v[slot(k)]), vp = double(v[slot(k - 1)]), bk = z[slot(k)];
      if ((bq - bk) * (vk - vp) > (bk - z[slot(k - 1)]) * (double(q) - vk)) break;
      --k;
    }
    ++k;
    v[slot(k)] = int32_t(q);
    fv[slot(k)] = fq;
    z[slot(k)] = bq;
  }
  const int64_t count = k + 1;
  k = 0;
  for (int64_t q = out0; q < out1; ++q) {
    // move on while parabola k + 1 starts before q: cross(k, k + 1) < q
    while (k + 1 < count &&
           z[slot(k + 1)] - z[slot(k)] < 2.0 * double(q) * (double(v[slot(k + 1)]) - double(v[slot(k)])))
      ++k;
    if (keep && !keep[q * stride]) continue;
    float value = ns_inf<float>();
    if (count > 0) {
      const double dq = (double(q) - double(v[slot(k)])) * h;
      const double val = dq * dq + double(fv[slot(k)]);
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
  const uint8_t* qflags;  // null without a query mask
  double h;
  bool surface, take_root;

  NS_HD void operator()(int64_t j, int64_t l, const Scratch&) const {
    const int64_t* job = jobs + j * kJobCols;
    const Job b(job);
    int64_t c[3], h0, h1;
    const int64_t base = b.line(2, l, c, h0, h1);
    int64_t lo[3], hi[3];
    for (int a = 0; a < 3; ++a) { lo[a] = b.lo[a]; hi[a] = b.lo[a] + b.d[a]; }
    mark_row(job_mask(src, job, kSeedWhich), g, lo, hi, c[0], c[1], h0, h1 - h0, surface, 0.0f,
             ns_inf<float>(), out + base);
    seed_line(out + base, h1 - h0, h, take_root, (take_root && qflags) ? qflags + base : nullptr);
  }
};

// The query mask's surface voxels, line by line over Q along axis 2, as uint8 flags.
template <typename L>
struct QueryPass {
  const L* src[2];
  const int64_t* jobs;
  Grid g;
  uint8_t* qflags;

  NS_HD void operator()(int64_t j, int64_t l, const Scratch&) const {
    const int64_t* job = jobs + j * kJobCols;
    const Job b(job);
    int64_t c[3], h0, h1;
    const int64_t base = b.line(kQueryPass, l, c, h0, h1);
    int64_t lo[3], hi[3];
    for (int a = 0; a < 3; ++a) { lo[a] = b.lo[a]; hi[a] = b.lo[a] + b.d[a]; }
    mark_row(job_mask(src, job, kQueryWhich), g, lo, hi, c[0], c[1], h0, h1 - h0, true, uint8_t(1), uint8_t(0),
             qflags + base);
  }
};

struct EnvelopePass {
  const int64_t* jobs;
  float* out;
  const uint8_t* qflags;  // null without a query mask
  int axis;
  double h;
  bool take_root;

  NS_HD void operator()(int64_t j, int64_t l, Scratch s, int64_t queries = -1) const {
    const Job b(jobs + j * kJobCols);
    int64_t c[3], h0, h1;
    const int64_t base = b.line(axis, l, c, h0, h1);
    const int64_t stride = b.stride(axis);
    float* data = out + base;
    const uint8_t* keep = (take_root && qflags) ? qflags + base : nullptr;
    const int64_t in0 = b.slo[axis] - h0, in1 = b.shi[axis] - h0, out0 = b.qlo[axis] - h0, out1 = b.qhi[axis] - h0;
    if (s.ws == 0)  // GPU: scratch at the line's own slots
      envelope_line(data, stride, h, take_root, keep, in0, in1, out0, out1, s.v + base, s.fv + base, s.z + base,
                    StridedSlots{stride}, queries);
    else
      envelope_line(data, stride, h, take_root, keep, in0, in1, out0, out1, s.v, s.fv, s.z, UnitSlots{}, queries);
  }

  // CPU, last pass with a query mask: the lines are strided, and counting each line's query voxels
  // one line at a time reads a new cache line (and page) per voxel. Lines l .. l + m - 1 of job j
  // (m <= kBlockLines) that lie side by side (consecutive along axis 2) are counted together, a
  // row of m adjacent flags at a time; lines without a query voxel are then skipped.
  static constexpr bool kBlocks = true;
  static constexpr int64_t kBlockLines = 32;

  NS_HD int64_t adjacent_lines(int64_t j, int64_t l) const {
    if (!(take_root && qflags)) return 1;
    const Job::Plane q = Job(jobs + j * kJobCols).plane(axis);
    const int64_t run = (q.r1 - q.r0) - l % (q.r1 - q.r0);
    return run < kBlockLines ? run : kBlockLines;
  }

  NS_HD void block(int64_t j, int64_t l, int64_t m, Scratch s) const {
    if (m == 1) { (*this)(j, l, s); return; }
    const Job b(jobs + j * kJobCols);
    int64_t c[3], h0, h1;
    const int64_t base = b.line(axis, l, c, h0, h1);
    const int64_t stride = b.stride(axis);
    const uint8_t* keep = qflags + base;
    const int64_t out0 = b.qlo[axis] - h0, out1 = b.qhi[axis] - h0;
    int32_t count[kBlockLines];
    for (int64_t w = 0; w < kBlockLines; ++w) count[w] = 0;
    for (int64_t q = out0; q < out1; ++q)
      for (int64_t w = 0; w < m; ++w) count[w] += keep[q * stride + w] != 0;
    for (int64_t w = 0; w < m; ++w)
      if (count[w] > 0) (*this)(j, l + w, s, count[w]);
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
// -1) with atomic min / max. A value outside the integers [0, num_values) is recorded in flag.
constexpr int kBoxClasses = 32;
constexpr int kBoxRowCols = 5;

constexpr int kFastBoxClasses = 8;

template <typename L>
struct BoxScan {
  static constexpr bool kIntegral = (L(0.5) == L(0)) | (L(2) == L(1));  // label maps / integer or bool planes
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
    if (fast_row(p, first_class, n_cls, first, last)) {
      merge(row, c0, c1, n_cls, first, last);
      return;
    }
    for (int64_t x = 0; x < g.n[2]; ++x) {
      const L raw = p[x];
      const int64_t v = raw == raw ? int64_t(raw) : int64_t(-1);  // (NaN: never converted)
      // (raw != L(v): a fractional or NaN value of a floating source; recorded as -1)
      if (raw != L(v) || v < 0 || v >= num_values) { record_bad_value(flag, raw != L(v) ? -1 : v); continue; }
      const int64_t k = v - first_class;
      if (k >= 0 && k < n_cls) {
        if (first[k] < 0) first[k] = int32_t(x);
        last[k] = int32_t(x);
      }
    }
    merge(row, c0, c1, n_cls, first, last);
  }

  // Few classes: integer labels whose min and max lie in range, or floating 0/1 planes holding
  // only 0 and 1 (no bad value either way); then per class the first and last position as
  // branch-free min / max reductions, which vectorise (the general loop above does not). false:
  // not taken (many classes, or a bad value, which the general loop records).
  NS_HD bool fast_row(const L* p, int64_t first_class, int n_cls, int32_t* first, int32_t* last) const {
    if (n_cls > kFastBoxClasses || (!kIntegral && num_values != 2)) return false;
    const int32_t n = int32_t(g.n[2]);
    L mn = p[0], mx = p[0];
    if (kIntegral) {
      for (int32_t x = 0; x < n; ++x) {
        mn = p[x] < mn ? p[x] : mn;
        mx = p[x] > mx ? p[x] : mx;
      }
      if (int64_t(mn) < 0 || int64_t(mx) >= num_values) return false;
    } else {  // floating 0/1 planes: every value exactly 0 or 1 (a NaN is neither)
      int32_t bad = 0;
      for (int32_t x = 0; x < n; ++x) bad += !((p[x] == L(0)) | (p[x] == L(1)));
      if (bad) return false;
      mn = L(0);
      mx = L(1);
    }
    for (int k = 0; k < n_cls; ++k) {
      const int64_t v = first_class + k;
      if (v > int64_t(mx) || v < int64_t(mn)) continue;  // absent (and maybe not representable in L)
      const L cls = L(v);
      int32_t f = n, l = -1;
      for (int32_t x = 0; x < n; ++x) {
        const bool eq = p[x] == cls;
        const int32_t at = eq ? x : n, at_last = eq ? x : -1;
        f = at < f ? at : f;
        l = at_last > l ? at_last : l;
      }
      first[k] = f < n ? f : -1;
      last[k] = l;
    }
    return true;
  }

  NS_HD void merge(const int64_t* row, int64_t c0, int64_t c1, int n_cls, const int32_t* first,
                   const int32_t* last) const {
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
NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
