#include "cuda_check.cuh"

namespace noisyseg {

// Our statically linked CUDA runtime keeps its own current device: follow torch's tensor.
void set_cuda_device(int device_index) { cuda_check(cudaSetDevice(device_index), "cudaSetDevice"); }

}  // namespace noisyseg
