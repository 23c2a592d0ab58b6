// Runs an op's CPU or CUDA launcher: device_index < 0 means CPU, otherwise the CUDA device whose
// stream (cudaStream_t as an integer, from torch.cuda.current_stream().cuda_stream) is given.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace noisyseg {

#ifdef NOISYSEG_WITH_CUDA
void set_cuda_device(int device_index);  // cuda_device.cu
#endif

template <typename Args, typename CpuFn, typename CudaFn>
void run_on_device(const char* op, const Args& a, int device_index, uintptr_t stream, CpuFn cpu, CudaFn cuda) {
  if (device_index < 0) {
    cpu(a);
    return;
  }
#ifdef NOISYSEG_WITH_CUDA
  set_cuda_device(device_index);
  cuda(a, stream);
#else
  (void)cuda; (void)stream;
  throw std::runtime_error(std::string(op) + ": noisyseg_ext was built without CUDA kernels");
#endif
}

}  // namespace noisyseg

#ifdef NOISYSEG_WITH_CUDA
#define NOISYSEG_CUDA_FN(fn) fn
#else
#define NOISYSEG_CUDA_FN(fn) nullptr
#endif
