// Raw pointers cross the Python boundary as integers (tensor.data_ptr()); 0 means "absent".
#pragma once

#include <cstdint>

#include "cpu_isa.h"

namespace noisyseg {
NOISYSEG_CPU_NAMESPACE_BEGIN

template <typename T>
inline T* as_ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

NOISYSEG_CPU_NAMESPACE_END
}  // namespace noisyseg
