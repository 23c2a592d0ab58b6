// distance_transform: the sequence of passes and the body construction, written once for both
// devices. A launch policy provides
//   lines(B, L, max_len, body): body(b, l, v, fv, z, ws) for every line l < L of every image b < B,
//     with scratch for max_len values (private per thread on the CPU, interleaved on the GPU);
//   rows_cols<K, A>(...): the generic per-element launcher (launchers.h).
#pragma once

#include "../common/launchers.h"
#include "../common/pointers.h"
#include "distance_transform.h"
#include "distance_transform_math.h"

namespace noisyseg {

inline edt::Grid edt_grid(int64_t D, int64_t n0, int64_t n1, int64_t n2) {
  edt::Grid g;
  g.n[0] = n0; g.n[1] = n1; g.n[2] = n2;
  g.D = int(D);
  return g;
}

template <typename Launch>
void distance_transform_run(const EdtArgs& a, const Launch& launch) {
  const edt::Grid g = edt_grid(a.D, a.n0, a.n1, a.n2);
  if (a.B == 0 || g.size() == 0) return;
  const double h[3] = {a.h0, a.h1, a.h2};
  const int64_t* lo = as_ptr<const int64_t>(a.box_lo);
  const int64_t* hi = as_ptr<const int64_t>(a.box_hi);
  float* out = as_ptr<float>(a.out);
  const int first_axis = 3 - int(a.D);
  // Pass 1 along the contiguous axis; then one envelope pass per remaining axis, the last one
  // taking the square root.
  edt::SeedPass<uint8_t> seeds{as_ptr<const uint8_t>(a.mask), out, lo, hi, g, h[2], a.D == 1};
  launch.lines(a.B, g.lines(2), int64_t(0), seeds);
  for (int axis = 1; axis >= first_axis; --axis) {
    edt::EnvelopePass env{out, lo, hi, g, axis, h[axis], axis == first_axis};
    launch.lines(a.B, g.lines(axis), g.n[axis], env);
  }
}

template <typename Launch>
void mask_surface_run(const SurfaceArgs& a, const Launch& launch) {
  const edt::Grid g = edt_grid(a.D, a.n0, a.n1, a.n2);
  edt::SurfaceBody<uint8_t> body{as_ptr<const uint8_t>(a.mask), as_ptr<uint8_t>(a.out), g};
  launch.template rows_cols<0, float>(a.B, g.size(), a.parts, nullptr, body);
}

}  // namespace noisyseg
