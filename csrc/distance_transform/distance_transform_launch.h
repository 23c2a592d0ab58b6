// distance_transform: the sequence of passes, dtype dispatch and body construction, written once
// for both devices. Besides the generic rows_cols (launchers.h), a launch policy provides
//   lines(map, max_len, body): body(job, line, scratch) for every flat line of `map` (a LineMap),
//     with envelope scratch for max_len values (private per thread on the CPU; on the GPU, ws = 0:
//     at the line's own slots of full-size scratch buffers).
#pragma once

#include "../common/cpu_isa.h"
#include "../common/launchers.h"
#include "../common/pointers.h"
#include "../common/scalar_types.h"
#include "distance_transform.h"
#include "distance_transform_math.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

// Mask sources: label maps or 0/1 planes of bool / uint8 / int32 / int64, or 0/1 floating planes
// (one-hot float32 / float64 tensors are read as they are).
template <typename F>
void dispatch_mask_source(int code, const char* what, F&& f) {
  switch (code) {
    case kFloat32: f(Tag<float>{}); return;
    case kFloat64: f(Tag<double>{}); return;
    default: dispatch_label(code, what, f);
  }
}

inline edt::Grid edt_grid(int64_t D, int64_t n0, int64_t n1, int64_t n2) {
  edt::Grid g;
  g.n[0] = n0; g.n[1] = n1; g.n[2] = n2;
  g.D = int(D);
  return g;
}

template <typename Launch>
void distance_transform_run(const EdtArgs& a, const Launch& launch) {
  if (a.J == 0) return;
  const edt::Grid g = edt_grid(a.D, a.n0, a.n1, a.n2);
  const double h[3] = {a.h0, a.h1, a.h2};
  const int64_t lines[4] = {a.lines0, a.lines1, a.lines2, a.lines_query};
  const int64_t* starts = as_ptr<const int64_t>(a.line_start);
  const int64_t* jobs = as_ptr<const int64_t>(a.jobs);
  float* out = as_ptr<float>(a.out);
  uint8_t* qflags = as_ptr<uint8_t>(a.qflags);
  auto map = [&](int pass) {
    return edt::LineMap{starts ? starts + pass * (a.J + 1) : nullptr, a.J, lines[pass] / a.J, lines[pass]};
  };
  const int first_axis = 3 - int(a.D);
  dispatch_mask_source(a.label_dtype, "distance_transform", [&](auto tl) {
    using L = typename decltype(tl)::type;
    const L* src[2] = {as_ptr<const L>(a.src0), as_ptr<const L>(a.src1)};
    if (qflags) {  // the query surface first: a 1D transform is also the last pass
      edt::QueryPass<L> query{{src[0], src[1]}, jobs, g, qflags};
      launch.lines(map(edt::kQueryPass), int64_t(0), query);
    }
    // Pass 1 along the contiguous axis; then one envelope pass per remaining axis, the last one
    // taking the square root (and writing only at the query voxels, if any).
    edt::SeedPass<L> seeds{{src[0], src[1]}, jobs, g, out, qflags, h[2], a.surface, a.D == 1};
    launch.lines(map(2), int64_t(0), seeds);
    for (int axis = 1; axis >= first_axis; --axis) {
      edt::EnvelopePass env{jobs, out, qflags, axis, h[axis], axis == first_axis};
      launch.lines(map(axis), g.n[axis], env);
    }
  });
}

template <typename Launch>
void mask_boxes_run(const BoxArgs& a, const Launch& launch) {
  const edt::Grid g = edt_grid(a.D, a.n0, a.n1, a.n2);
  const int64_t per_row = g.n[0] * g.n[1];
  if (a.R == 0 || g.size() == 0) return;
  dispatch_mask_source(a.label_dtype, "mask_boxes", [&](auto tl) {
    using L = typename decltype(tl)::type;
    edt::BoxScan<L> body{{as_ptr<const L>(a.src0), as_ptr<const L>(a.src1)}, as_ptr<const int64_t>(a.rows),
                         as_ptr<int32_t>(a.box), as_ptr<int64_t>(a.flag), a.num_values, g};
    launch.lines(edt::LineMap{nullptr, a.R, per_row, a.R * per_row}, int64_t(0), body);
  });
}

template <typename Launch>
void mask_surface_run(const SurfaceArgs& a, const Launch& launch) {
  const edt::Grid g = edt_grid(a.D, a.n0, a.n1, a.n2);
  edt::SurfaceBody<uint8_t> body{as_ptr<const uint8_t>(a.mask), as_ptr<uint8_t>(a.out), g};
  launch.template rows_cols<0, float>(a.B, g.size(), a.parts, nullptr, body);
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
