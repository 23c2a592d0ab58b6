// Raw pointers cross the Python boundary as integers (tensor.data_ptr()); 0 means "absent".
#pragma once

#include <cstdint>

namespace noisyseg {

template <typename T>
inline T* as_ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

}  // namespace noisyseg
