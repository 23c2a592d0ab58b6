#include <stdexcept>

#include "../common/cuda_check.cuh"
#include "distance_transform_launch.h"

namespace noisyseg {
namespace {

// One thread per line. Scratch (ws = 0) lives at the line's own slots of buffers as large as the
// output, so neighbouring lines (neighbouring threads) touch neighbouring addresses.
template <typename Body>
__global__ void edt_lines_kernel(edt::LineMap map, Body body, edt::Scratch s) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < map.total;
       t += int64_t(gridDim.x) * blockDim.x) {
    int64_t j, l;
    map.locate(t, j, l);
    body(j, l, s);
  }
}

struct EdtCudaLauncher : CudaLauncher {
  edt::Scratch scratch{nullptr, nullptr, nullptr, 0};
  template <typename Body>
  void lines(const edt::LineMap& map, int64_t max_len, const Body& body) const {
    if (map.total == 0) return;
    if (max_len > 0 && (!scratch.v || !scratch.fv || !scratch.z))
      throw std::invalid_argument(std::string(what) + ": the CUDA envelope pass needs scratch buffers");
    edt_lines_kernel<Body><<<blocks_for(map.total, 128), 128, 0, as_stream(stream)>>>(map, body, scratch);
    cuda_check_launch(what);
  }
};

}  // namespace

void distance_transform_cuda(const EdtArgs& a, uintptr_t stream) {
  EdtCudaLauncher launch;
  launch.stream = stream;
  launch.what = "distance_transform";
  launch.scratch = edt::Scratch{as_ptr<int32_t>(a.scratch_v), as_ptr<float>(a.scratch_f), as_ptr<double>(a.scratch_z), 0};
  distance_transform_run(a, launch);
}

void mask_boxes_cuda(const BoxArgs& a, uintptr_t stream) {
  EdtCudaLauncher launch;
  launch.stream = stream;
  launch.what = "mask_boxes";
  mask_boxes_run(a, launch);
}

void mask_surface_cuda(const SurfaceArgs& a, uintptr_t stream) {
  mask_surface_run(a, CudaLauncher{stream, "mask_surface"});
}

}  // namespace noisyseg
