// Launch policies: an op writes its dtype dispatch once, templated on the policy, and its
// _cpu.cpp / _cuda.cu files only instantiate it with CpuLauncher / CudaLauncher.
#pragma once

#include <cstdint>

#include "cpu_isa.h"
#include "launch_cpu.h"
#include "strip_launchers.h"
#if defined(__CUDACC__)
#include "launch_cuda.cuh"
#endif

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

#if !defined(__CUDACC__)
// rows x cols bodies, and the strips bodies of strip_launchers.h (e.g. count_valid.h's label count)
struct CpuLauncher : CpuStripLauncher {
  template <int K, typename A, typename Body>
  void rows_cols(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body) const {
    cpu_rows_cols<K, A>(rows, cols, parts, partials, body);
  }
};
#endif

#if defined(__CUDACC__)
struct CudaLauncher {
  static constexpr bool kHostMemory = false;
  uintptr_t stream;
  const char* what;
  template <int K, typename A, typename Body>
  void rows_cols(int64_t rows, int64_t cols, int64_t parts, double* partials, const Body& body) const {
    cuda_rows_cols<K, A>(rows, cols, parts, partials, body, stream, what);
  }
};
#endif

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
