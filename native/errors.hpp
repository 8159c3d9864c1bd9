// C++ exceptions of the native core. bindings.cpp registers each as a Python exception;
// std::invalid_argument becomes ValueError (pybind11's default translation).
#pragma once

#include <stdexcept>
#include <string>

namespace hpcx {

// A NUMA operation failed at run time (binding refused, allocation failed, ...).
struct NumaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A CUDA driver call returned an error; the message names the CUresult (CUDA_ERROR_...).
struct CudaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A library opened at run time (libnuma, libcuda) is missing or lacks an entry point.
struct LibraryUnavailable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace hpcx
