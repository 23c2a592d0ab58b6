#include <pybind11/pybind11.h>

#include "../common/cpu_isa.h"
#include "../common/device_dispatch.h"
#include "../common/op_registry.h"
#include "elastic.h"

namespace py = pybind11;
using noisyseg::ElasticExpandArgs;
using noisyseg::ElasticPrefilterArgs;
using noisyseg::ElasticSampleArgs;

NOISYSEG_REGISTER_BINDINGS(elastic) {
  py::class_<ElasticPrefilterArgs>(m, "ElasticPrefilterArgs", "In-place cubic B-spline prefilter along one axis.")
      .def(py::init<>())
      .def_readwrite("dtype", &ElasticPrefilterArgs::dtype).def_readwrite("data", &ElasticPrefilterArgs::data)
      .def_readwrite("outer", &ElasticPrefilterArgs::outer).def_readwrite("len", &ElasticPrefilterArgs::len)
      .def_readwrite("inner", &ElasticPrefilterArgs::inner);
  py::class_<ElasticExpandArgs>(m, "ElasticExpandArgs", "Control-grid expansion along one axis (float64).")
      .def(py::init<>())
      .def_readwrite("in_", &ElasticExpandArgs::in).def_readwrite("out", &ElasticExpandArgs::out)
      .def_readwrite("outer", &ElasticExpandArgs::outer).def_readwrite("points", &ElasticExpandArgs::points)
      .def_readwrite("len", &ElasticExpandArgs::len).def_readwrite("inner", &ElasticExpandArgs::inner);
  py::class_<ElasticSampleArgs>(m, "ElasticSampleArgs", "Pointers (as integers) and sizes for elastic sampling.")
      .def(py::init<>())
      .def_readwrite("dtype", &ElasticSampleArgs::dtype).def_readwrite("in_dtype", &ElasticSampleArgs::in_dtype)
      .def_readwrite("ndim", &ElasticSampleArgs::ndim).def_readwrite("order", &ElasticSampleArgs::order)
      .def_readwrite("mode", &ElasticSampleArgs::mode)
      .def_readwrite("x", &ElasticSampleArgs::x).def_readwrite("field", &ElasticSampleArgs::field)
      .def_readwrite("out", &ElasticSampleArgs::out)
      .def_readwrite("images", &ElasticSampleArgs::images).def_readwrite("channels", &ElasticSampleArgs::channels)
      .def_readwrite("size0", &ElasticSampleArgs::size0).def_readwrite("size1", &ElasticSampleArgs::size1)
      .def_readwrite("size2", &ElasticSampleArgs::size2).def_readwrite("points0", &ElasticSampleArgs::points0)
      .def_readwrite("cval", &ElasticSampleArgs::cval).def_readwrite("cval_label", &ElasticSampleArgs::cval_label);

  const auto release = py::call_guard<py::gil_scoped_release>();
  m.def("elastic_prefilter", [](const ElasticPrefilterArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("elastic_prefilter", a, device, stream, NOISYSEG_CPU_FN(noisyseg::elastic_prefilter_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::elastic_prefilter_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
  m.def("elastic_expand", [](const ElasticExpandArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("elastic_expand", a, device, stream, NOISYSEG_CPU_FN(noisyseg::elastic_expand_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::elastic_expand_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
  m.def("elastic_sample", [](const ElasticSampleArgs& a, int device, uintptr_t stream) {
    noisyseg::run_on_device("elastic_sample", a, device, stream, NOISYSEG_CPU_FN(noisyseg::elastic_sample_cpu),
                            NOISYSEG_CUDA_FN(noisyseg::elastic_sample_cuda));
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release);
}
