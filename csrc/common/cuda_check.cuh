// CUDA error handling for launchers: every failure becomes a C++ exception, which pybind11
// turns into a Python RuntimeError.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include <cuda_runtime.h>

namespace noisyseg {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("noisyseg_ext CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

// After a kernel launch: reports launch-configuration errors (not asynchronous faults).
inline void cuda_check_launch(const char* what) { cuda_check(cudaGetLastError(), what); }

inline cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n, int threads = kThreads, int64_t max_blocks = 65535LL * 32) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > max_blocks) b = max_blocks;
  return unsigned(b);
}

}  // namespace noisyseg
