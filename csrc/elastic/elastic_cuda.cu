// elastic on CUDA: one thread per prefilter line, per grid element, per output voxel
// (grid-stride loops; adjacent threads touch adjacent voxels).
#include "../common/cuda_check.cuh"
#include "elastic_launch.h"

namespace noisyseg {
namespace {

template <typename Body>
__global__ void elastic_for_each_kernel(int64_t n, Body body) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    body(i);
}

template <typename Body>
__global__ void elastic_lines_kernel(int64_t n, int64_t line_len, Body body) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t line = i / line_len, j = i - line * line_len;
    body.run_line(line, j, j + 1);
  }
}

struct ElasticCudaLauncher {
  static constexpr int kLineBlock = 1;  // one prefilter line per thread (coalesced across threads)
  uintptr_t stream;
  const char* what;
  template <typename Body>
  void for_each(int64_t n, int64_t /*cost*/, const Body& body) const {
    elastic_for_each_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(n, body);
    cuda_check_launch(what);
  }
  template <typename Body>
  void lines(int64_t n_lines, int64_t line_len, const Body& body) const {
    const int64_t n = n_lines * line_len;
    elastic_lines_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(n, line_len, body);
    cuda_check_launch(what);
  }
};

}  // namespace

void elastic_prefilter_cuda(const ElasticPrefilterArgs& a, uintptr_t stream) {
  elastic_prefilter(a, ElasticCudaLauncher{stream, "elastic_prefilter"});
}
void elastic_expand_cuda(const ElasticExpandArgs& a, uintptr_t stream) {
  elastic_expand(a, ElasticCudaLauncher{stream, "elastic_expand"});
}
void elastic_sample_cuda(const ElasticSampleArgs& a, uintptr_t stream) {
  elastic_sample(a, ElasticCudaLauncher{stream, "elastic_sample"});
}

}  // namespace noisyseg
