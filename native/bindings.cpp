// Placeholder; the native core replaces this.
#include <pybind11/pybind11.h>
PYBIND11_MODULE(_native, m) { m.doc() = "hpcx native core"; }
