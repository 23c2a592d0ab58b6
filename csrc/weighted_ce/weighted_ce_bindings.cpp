#include <pybind11/pybind11.h>

#include "../common/cpu_isa.h"
#include "../common/device_dispatch.h"
#include "../common/op_registry.h"
#include "weighted_ce.h"

namespace py = pybind11;
using noisyseg::WceArgs;

NOISYSEG_REGISTER_BINDINGS(weighted_ce) {
  py::class_<WceArgs>(m, "WceArgs", "Pointers (as integers) and sizes for the weighted_ce kernels.")
      .def(py::init<>())
      .def_readwrite("dtype", &WceArgs::dtype).def_readwrite("label_dtype", &WceArgs::label_dtype)
      .def_readwrite("x", &WceArgs::x).def_readwrite("target", &WceArgs::target)
      .def_readwrite("weight", &WceArgs::weight)
      .def_readwrite("N", &WceArgs::N).def_readwrite("C", &WceArgs::C).def_readwrite("S", &WceArgs::S)
      .def_readwrite("ignore_index", &WceArgs::ignore_index).def_readwrite("parts", &WceArgs::parts)
      .def_readwrite("loss_map", &WceArgs::loss_map).def_readwrite("partials", &WceArgs::partials)
      .def_readwrite("g", &WceArgs::g).def_readwrite("gws", &WceArgs::gws)
      .def_readwrite("ggx", &WceArgs::ggx).def_readwrite("ggw", &WceArgs::ggw)
      .def_readwrite("g_stride", &WceArgs::g_stride)
      .def_readwrite("grad_x", &WceArgs::grad_x).def_readwrite("grad_w", &WceArgs::grad_w)
      .def_readwrite("grad_g", &WceArgs::grad_g).def_readwrite("grad_mean", &WceArgs::grad_mean);

  const auto release = py::call_guard<py::gil_scoped_release>();
  m.def("weighted_ce_forward", [](const WceArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("weighted_ce_forward", a, device, stream, NOISYSEG_CPU_FN(noisyseg::wce_forward_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::wce_forward_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
  m.def("weighted_ce_backward", [](const WceArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("weighted_ce_backward", a, device, stream, NOISYSEG_CPU_FN(noisyseg::wce_backward_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::wce_backward_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
  m.def("weighted_ce_double_backward", [](const WceArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("weighted_ce_double_backward", a, device, stream, NOISYSEG_CPU_FN(noisyseg::wce_double_backward_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::wce_double_backward_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
}
