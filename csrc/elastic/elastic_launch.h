// elastic: dtype / order / ndim dispatch and body construction, written once for both devices.
// A launch policy provides
//   kLineBlock                        prefilter lines run in lockstep per item (CPU 32, CUDA 1),
//   for_each(n, cost, body)           body(i) for i in [0, n) (cost: rough work per item),
//   lines(n_lines, line_len, body)    body.run_line(line, begin, end) covering every voxel once.
#pragma once

#include <stdexcept>
#include <string>

#include "../common/cpu_isa.h"
#include "../common/pointers.h"
#include "../common/scalar_types.h"
#include "elastic.h"
#include "elastic_math.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

template <typename Launch>
void elastic_prefilter(const ElasticPrefilterArgs& a, const Launch& launch) {
  if (a.outer * a.len * a.inner == 0) return;
  constexpr int B = Launch::kLineBlock;
  const int64_t groups = elastic::PrefilterLines<B, float>::groups(a.outer, a.inner);
  if (a.dtype == kFloat64) {
    const elastic::PrefilterLines<B, double> body{as_ptr<double>(a.data), a.outer, a.len, a.inner};
    launch.for_each(groups, a.len * B, body);
  } else if (a.dtype == kFloat32) {
    const elastic::PrefilterLines<B, float> body{as_ptr<float>(a.data), a.outer, a.len, a.inner};
    launch.for_each(groups, a.len * B, body);
  } else {
    throw std::invalid_argument("elastic_prefilter: coefficients must be float32 or float64, got dtype code " +
                                std::to_string(a.dtype));
  }
}

template <typename Launch>
void elastic_expand(const ElasticExpandArgs& a, const Launch& launch) {
  const int64_t n = a.outer * a.len * a.inner;
  if (n == 0) return;
  const elastic::ExpandAxis body{as_ptr<const double>(a.in), as_ptr<double>(a.out), a.points, a.len, a.inner};
  launch.for_each(n, 1, body);
}

namespace elastic {

template <typename In, typename Out, int NDIM, int ORDER, typename Launch>
void run_sample(const ElasticSampleArgs& a, const Launch& launch) {
  Sample<In, Out, NDIM, ORDER> body{};
  body.x = as_ptr<const In>(a.x);
  body.out = as_ptr<Out>(a.out);
  body.field = as_ptr<const double>(a.field);
  const int64_t sizes[3] = {a.size0, a.size1, a.size2};
  int64_t lines = a.images * a.channels;
  for (int k = 0; k < NDIM; ++k) {
    body.size[k] = sizes[k];
    if (k < NDIM - 1) lines *= sizes[k];
  }
  body.points0 = a.points0;
  body.channels = a.channels;
  body.mode = a.mode;
  body.cval = a.cval;
  body.cval_label = a.cval_label;
  if (lines * sizes[NDIM - 1] == 0) return;
  launch.lines(lines, sizes[NDIM - 1], body);
}

template <typename In, typename Out, int ORDER, typename Launch>
void run_sample_ndim(const ElasticSampleArgs& a, const Launch& launch) {
  if (a.ndim == 2) return run_sample<In, Out, 2, ORDER>(a, launch);
  if (a.ndim == 3) return run_sample<In, Out, 3, ORDER>(a, launch);
  throw std::invalid_argument("elastic_sample: ndim must be 2 or 3, got " + std::to_string(a.ndim));
}

}  // namespace elastic

template <typename Launch>
void elastic_sample(const ElasticSampleArgs& a, const Launch& launch) {
  if (a.channels < 1) throw std::invalid_argument("elastic_sample: channels must be >= 1");
  if (a.dtype <= kFloat64) {
    dispatch_floating(a.dtype, "elastic_sample", [&](auto tf) {
      using T = typename decltype(tf)::type;
      using A = acc_t<T>;
      switch (a.order) {
        case 0:
          if (a.in_dtype != a.dtype) break;
          return elastic::run_sample_ndim<T, T, 0>(a, launch);
        case 1:
          if (a.in_dtype != a.dtype) break;
          return elastic::run_sample_ndim<T, T, 1>(a, launch);
        case 3:
          if (a.in_dtype != (std::is_same<A, double>::value ? int(kFloat64) : int(kFloat32))) break;
          return elastic::run_sample_ndim<A, T, 3>(a, launch);
        default:
          throw std::invalid_argument("elastic_sample: order must be 0, 1 or 3, got " + std::to_string(a.order));
      }
      throw std::invalid_argument("elastic_sample: input dtype code " + std::to_string(a.in_dtype) +
                                  " does not fit output dtype code " + std::to_string(a.dtype) +
                                  " for order " + std::to_string(a.order));
    });
    return;
  }
  if (a.order != 0)
    throw std::invalid_argument("elastic_sample: label maps need order 0, got " + std::to_string(a.order));
  if (a.in_dtype != a.dtype)
    throw std::invalid_argument("elastic_sample: label input and output dtypes differ");
  dispatch_label(a.dtype, "elastic_sample", [&](auto tl) {
    using L = typename decltype(tl)::type;
    elastic::run_sample_ndim<L, L, 0>(a, launch);
  });
}

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
