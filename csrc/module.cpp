// The extension module noisyseg_ext._C: collects every op's bindings and reports the build.
#include <pybind11/pybind11.h>

#include "common/cpu_parallel.h"
#include "common/op_registry.h"

namespace py = pybind11;

#ifndef NOISYSEG_CUDA_ARCHS
#define NOISYSEG_CUDA_ARCHS ""
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "noisyseg_ext compiled kernels (CPU with OpenMP, CUDA when built with it)";
  m.def("build_info", []() {
    py::dict d;
#ifdef NOISYSEG_WITH_CUDA
    d["cuda"] = true;
#else
    d["cuda"] = false;
#endif
    d["cuda_architectures"] = std::string(NOISYSEG_CUDA_ARCHS);
#ifdef _OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    d["omp_threads"] = noisyseg::omp_threads();
    return d;
  });
  for (auto fn : noisyseg::bindings_registry()) fn(m);
}
