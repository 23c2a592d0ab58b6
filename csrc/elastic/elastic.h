// elastic: arguments and launchers (CPU always, CUDA when compiled with it).
#pragma once

#include <cstdint>

namespace noisyseg {

// In-place cubic B-spline prefilter of a contiguous (outer, len, inner) block along its middle axis.
struct ElasticPrefilterArgs {
  int dtype = 3;  // DType code of data: float32 or float64
  uintptr_t data = 0;
  int64_t outer = 0, len = 0, inner = 0;
};

// Expansion of the control grid along one axis: (outer, points, inner) -> (outer, len, inner), float64.
struct ElasticExpandArgs {
  uintptr_t in = 0, out = 0;
  int64_t outer = 0, points = 0, len = 0, inner = 0;
};

// Sampling: out[img, j] = x[img, map(j + d(j))], x and out (N * channels, *spatial) contiguous.
struct ElasticSampleArgs {
  int dtype = 2;        // DType code of out (and of x, except for order 3)
  int in_dtype = 2;     // DType code of x as read: float32/float64 coefficients for order 3
  int ndim = 2, order = 0, mode = 0;
  uintptr_t x = 0, field = 0, out = 0;
  int64_t images = 0, channels = 1, size0 = 0, size1 = 0, size2 = 1, points0 = 0;
  double cval = 0.0;
  int64_t cval_label = 0;
};

// CPU entry points, one per compiled instruction-set variant kIsa (common/cpu_isa.h); the
// bindings call the active one through NOISYSEG_CPU_FN.
template <int kIsa> void elastic_prefilter_cpu(const ElasticPrefilterArgs& a);
template <int kIsa> void elastic_expand_cpu(const ElasticExpandArgs& a);
template <int kIsa> void elastic_sample_cpu(const ElasticSampleArgs& a);
#ifdef NOISYSEG_WITH_CUDA
void elastic_prefilter_cuda(const ElasticPrefilterArgs& a, uintptr_t stream);
void elastic_expand_cuda(const ElasticExpandArgs& a, uintptr_t stream);
void elastic_sample_cuda(const ElasticSampleArgs& a, uintptr_t stream);
#endif

}  // namespace noisyseg
