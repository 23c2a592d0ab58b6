#include <pybind11/pybind11.h>

#include "../common/cpu_isa.h"
#include "../common/device_dispatch.h"
#include "../common/op_registry.h"
#include "pint.h"

namespace py = pybind11;
using noisyseg::PintArgs;

#define PINT_FIELD(name) .def_readwrite(#name, &PintArgs::name)

NOISYSEG_REGISTER_BINDINGS(pint) {
  py::class_<PintArgs>(m, "PintArgs", "Pointers (as integers) and sizes for the pint kernels.")
      .def(py::init<>())
      PINT_FIELD(dtype) PINT_FIELD(label_dtype) PINT_FIELD(x) PINT_FIELD(target) PINT_FIELD(bad)
      PINT_FIELD(partials) PINT_FIELD(T) PINT_FIELD(N) PINT_FIELD(C) PINT_FIELD(S)
      PINT_FIELD(ignore_index) PINT_FIELD(parts) PINT_FIELD(sums) PINT_FIELD(mean) PINT_FIELD(u)
      PINT_FIELD(first) PINT_FIELD(normalize) PINT_FIELD(count) PINT_FIELD(mu) PINT_FIELD(image_gate)
      PINT_FIELD(gate) PINT_FIELD(loss_map) PINT_FIELD(pixel_threshold)
      PINT_FIELD(weight) PINT_FIELD(has_pixel_threshold) PINT_FIELD(dloss) PINT_FIELD(image)
      PINT_FIELD(image_u) PINT_FIELD(image_mode) PINT_FIELD(image_threshold) PINT_FIELD(keep)
      PINT_FIELD(reduction) PINT_FIELD(loss) PINT_FIELD(stats) PINT_FIELD(g) PINT_FIELD(grad)
      PINT_FIELD(g_map) PINT_FIELD(prescale);

  const auto release = py::call_guard<py::gil_scoped_release>();
#define PINT_DEF(pyname, fn)                                                                   \
  m.def(pyname, [](const PintArgs& a, int device, uintptr_t stream) {                          \
    noisyseg::run_on_device(pyname, a, device, stream, NOISYSEG_CPU_FN(noisyseg::fn##_cpu),    \
                            NOISYSEG_CUDA_FN(noisyseg::fn##_cuda));                             \
  }, py::arg("args"), py::arg("device"), py::arg("stream"), release)
  PINT_DEF("pint_mc_stacked", pint_mc_stacked);
  PINT_DEF("pint_mc_accumulate", pint_mc_accumulate);
  PINT_DEF("pint_mc_finalize", pint_mc_finalize);
  PINT_DEF("pint_loss_forward", pint_loss_forward);
  PINT_DEF("pint_loss_backward", pint_loss_backward);
#undef PINT_DEF
}
