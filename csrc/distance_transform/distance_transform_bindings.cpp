#include <pybind11/pybind11.h>

#include "../common/cpu_isa.h"
#include "../common/device_dispatch.h"
#include "../common/op_registry.h"
#include "distance_transform.h"

namespace py = pybind11;
using noisyseg::BoxArgs;
using noisyseg::EdtArgs;
using noisyseg::SurfaceArgs;

NOISYSEG_REGISTER_BINDINGS(distance_transform) {
  py::class_<EdtArgs>(m, "EdtArgs", "Pointers (as integers) and sizes for the distance transform jobs.")
      .def(py::init<>())
      .def_readwrite("src0", &EdtArgs::src0).def_readwrite("src1", &EdtArgs::src1)
      .def_readwrite("label_dtype", &EdtArgs::label_dtype)
      .def_readwrite("jobs", &EdtArgs::jobs).def_readwrite("line_start", &EdtArgs::line_start)
      .def_readwrite("J", &EdtArgs::J).def_readwrite("lines0", &EdtArgs::lines0)
      .def_readwrite("lines1", &EdtArgs::lines1).def_readwrite("lines2", &EdtArgs::lines2)
      .def_readwrite("lines_query", &EdtArgs::lines_query)
      .def_readwrite("D", &EdtArgs::D)
      .def_readwrite("n0", &EdtArgs::n0).def_readwrite("n1", &EdtArgs::n1).def_readwrite("n2", &EdtArgs::n2)
      .def_readwrite("h0", &EdtArgs::h0).def_readwrite("h1", &EdtArgs::h1).def_readwrite("h2", &EdtArgs::h2)
      .def_readwrite("surface", &EdtArgs::surface)
      .def_readwrite("out", &EdtArgs::out).def_readwrite("qflags", &EdtArgs::qflags)
      .def_readwrite("scratch_v", &EdtArgs::scratch_v).def_readwrite("scratch_f", &EdtArgs::scratch_f)
      .def_readwrite("scratch_z", &EdtArgs::scratch_z);
  py::class_<BoxArgs>(m, "BoxArgs", "Pointers (as integers) and sizes for the mask bounding boxes.")
      .def(py::init<>())
      .def_readwrite("src0", &BoxArgs::src0).def_readwrite("src1", &BoxArgs::src1)
      .def_readwrite("label_dtype", &BoxArgs::label_dtype)
      .def_readwrite("rows", &BoxArgs::rows).def_readwrite("box", &BoxArgs::box)
      .def_readwrite("flag", &BoxArgs::flag).def_readwrite("num_values", &BoxArgs::num_values)
      .def_readwrite("R", &BoxArgs::R).def_readwrite("D", &BoxArgs::D)
      .def_readwrite("n0", &BoxArgs::n0).def_readwrite("n1", &BoxArgs::n1).def_readwrite("n2", &BoxArgs::n2);
  py::class_<SurfaceArgs>(m, "SurfaceArgs", "Pointers (as integers) and sizes for the mask surface kernel.")
      .def(py::init<>())
      .def_readwrite("mask", &SurfaceArgs::mask).def_readwrite("out", &SurfaceArgs::out)
      .def_readwrite("B", &SurfaceArgs::B).def_readwrite("D", &SurfaceArgs::D)
      .def_readwrite("n0", &SurfaceArgs::n0).def_readwrite("n1", &SurfaceArgs::n1)
      .def_readwrite("n2", &SurfaceArgs::n2).def_readwrite("parts", &SurfaceArgs::parts);

  const auto release = py::call_guard<py::gil_scoped_release>();
  m.def("distance_transform", [](const EdtArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("distance_transform", a, device, stream, NOISYSEG_CPU_FN(noisyseg::distance_transform_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::distance_transform_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
  m.def("mask_boxes", [](const BoxArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("mask_boxes", a, device, stream, NOISYSEG_CPU_FN(noisyseg::mask_boxes_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::mask_boxes_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
  m.def("mask_surface", [](const SurfaceArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("mask_surface", a, device, stream, NOISYSEG_CPU_FN(noisyseg::mask_surface_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::mask_surface_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
}
