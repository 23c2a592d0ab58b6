// The extension module noisyseg_ext._C: collects every op's bindings and reports the build.
#include <cstdlib>
#include <string>

#include <pybind11/pybind11.h>

#include "common/cpu_isa.h"
#include "common/cpu_parallel.h"
#include "common/op_registry.h"

namespace py = pybind11;

#ifndef NOISYSEG_CUDA_ARCHS
#define NOISYSEG_CUDA_ARCHS ""
#endif

namespace {

py::list cpu_isa_names(bool (*keep)(int)) {
  py::list names;
  for (int isa = 0; isa < noisyseg::kNumCpuIsa; ++isa)
    if (keep(isa)) names.append(noisyseg::cpu_isa_name(isa));
  return names;
}

bool compiled_and_supported(int isa) { return noisyseg::cpu_isa_compiled(isa) && noisyseg::cpu_isa_supported(isa); }

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "noisyseg_ext compiled kernels (CPU with OpenMP, CUDA when built with it)";
  // The CPU variant: the best this processor runs (chosen when cpu_isa.cpp's state is first
  // read), unless NOISYSEG_CPU_ISA names a lower one.
  const std::string isa_note = noisyseg::request_cpu_isa(std::getenv("NOISYSEG_CPU_ISA"));
  if (!isa_note.empty() && PyErr_WarnEx(PyExc_RuntimeWarning, ("noisyseg_ext: " + isa_note).c_str(), 1) < 0)
    throw py::error_already_set();  // warnings turned into errors
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
    d["cpu_isa_compiled"] = cpu_isa_names(noisyseg::cpu_isa_compiled);
    d["cpu_isa_supported"] = cpu_isa_names(compiled_and_supported);
    d["cpu_isa"] = std::string(noisyseg::cpu_isa_name(noisyseg::active_cpu_isa()));
    return d;
  });
  m.def("cpu_isa", []() { return std::string(noisyseg::cpu_isa_name(noisyseg::active_cpu_isa())); },
        "The CPU kernels' active variant (as build_info()['cpu_isa'], without building the dict).");
  m.def("set_cpu_isa", [](const std::string& name) {
    for (int isa = 0; isa < noisyseg::kNumCpuIsa; ++isa)
      if (name == noisyseg::cpu_isa_name(isa)) return noisyseg::set_active_cpu_isa(isa);
    return false;
  }, py::arg("name"),
        "Run the CPU kernels' variant `name` (baseline, avx2, avx512) from now on; False, and no "
        "change, when this build lacks it or this CPU cannot run it. For tests and benchmarks.");
  for (auto fn : noisyseg::bindings_registry()) fn(m);
}
