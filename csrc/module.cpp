// Python bindings of lipleak._core: plain functions over numpy buffers, no state.
#include <pybind11/pybind11.h>

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
    m.doc() = "lipleak-fast numeric core";
}
