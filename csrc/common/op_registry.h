// Each op's bindings file registers its pybind11 definitions here, so adding an op touches no
// shared file:  NOISYSEG_REGISTER_BINDINGS(weighted_ce) { m.def(...); }
#pragma once

#include <functional>
#include <vector>

#include <pybind11/pybind11.h>

namespace noisyseg {

using BindingsFn = void (*)(pybind11::module_&);

inline std::vector<BindingsFn>& bindings_registry() {
  static std::vector<BindingsFn> fns;
  return fns;
}

struct BindingsRegistrar {
  explicit BindingsRegistrar(BindingsFn fn) { bindings_registry().push_back(fn); }
};

}  // namespace noisyseg

#define NOISYSEG_REGISTER_BINDINGS(name)                                              \
  static void noisyseg_bind_##name(pybind11::module_& m);                            \
  static ::noisyseg::BindingsRegistrar noisyseg_registrar_##name(noisyseg_bind_##name); \
  static void noisyseg_bind_##name(pybind11::module_& m)
