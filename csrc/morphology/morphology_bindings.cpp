#include <pybind11/pybind11.h>

#include "../common/cpu_isa.h"
#include "../common/device_dispatch.h"
#include "../common/op_registry.h"
#include "morphology.h"

namespace py = pybind11;
using noisyseg::MorphArgs;

NOISYSEG_REGISTER_BINDINGS(morphology) {
  py::class_<MorphArgs>(m, "MorphArgs", "Pointers (as integers) and sizes for the morphology kernels.")
      .def(py::init<>())
      .def_readwrite("dtype", &MorphArgs::dtype)
      .def_readwrite("src", &MorphArgs::src).def_readwrite("dst", &MorphArgs::dst)
      .def_readwrite("aux", &MorphArgs::aux).def_readwrite("offsets", &MorphArgs::offsets)
      .def_readwrite("K", &MorphArgs::K)
      .def_readwrite("N", &MorphArgs::N).def_readwrite("D", &MorphArgs::D)
      .def_readwrite("H", &MorphArgs::H).def_readwrite("W", &MorphArgs::W)
      .def_readwrite("plane", &MorphArgs::plane)
      .def_readwrite("is_max", &MorphArgs::is_max)
      .def_readwrite("per_element", &MorphArgs::per_element).def_readwrite("mode", &MorphArgs::mode);

  const auto release = py::call_guard<py::gil_scoped_release>();
  m.def("morphology_stencil", [](const MorphArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("morphology_stencil", a, device, stream, NOISYSEG_CPU_FN(noisyseg::morph_stencil_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::morph_stencil_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
  m.def("morphology_combine", [](const MorphArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("morphology_combine", a, device, stream, NOISYSEG_CPU_FN(noisyseg::morph_combine_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::morph_combine_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
}
