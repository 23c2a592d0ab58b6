#include "../common/cuda_check.cuh"
#include "distance_transform_launch.h"

namespace noisyseg {
namespace {

// One thread per line; thread t's scratch slots are t, t + total, t + 2 total, ... (coalesced).
template <typename Body>
__global__ void edt_lines_kernel(int64_t B, int64_t L, Body body, int32_t* v, float* fv, double* z) {
  const int64_t total = B * L;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = t / L;
    body(b, t - b * L, v + t, fv + t, z + t, total);
  }
}

// CUDA policy: scratch comes from Python (B*S slots each, enough for every line of every image).
struct EdtCudaLauncher : CudaLauncher {
  int32_t* v;
  float* fv;
  double* z;
  template <typename Body>
  void lines(int64_t B, int64_t L, int64_t, const Body& body) const {
    const int64_t total = B * L;
    if (total == 0) return;
    edt_lines_kernel<Body><<<blocks_for(total, 128), 128, 0, as_stream(stream)>>>(B, L, body, v, fv, z);
    cuda_check_launch(what);
  }
};

}  // namespace

void distance_transform_cuda(const EdtArgs& a, uintptr_t stream) {
  EdtCudaLauncher launch;
  launch.stream = stream;
  launch.what = "distance_transform";
  launch.v = as_ptr<int32_t>(a.scratch_v);
  launch.fv = as_ptr<float>(a.scratch_f);
  launch.z = as_ptr<double>(a.scratch_z);
  if (a.D > 1 && (!launch.v || !launch.fv || !launch.z))
    throw std::invalid_argument("distance_transform: CUDA launch needs scratch buffers");
  distance_transform_run(a, launch);
}

void mask_surface_cuda(const SurfaceArgs& a, uintptr_t stream) {
  mask_surface_run(a, CudaLauncher{stream, "mask_surface"});
}

}  // namespace noisyseg
