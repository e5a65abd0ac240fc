// appliance._native: the C++ transcoder. Only appliance/native.py imports it.
#include <pybind11/pybind11.h>

#include "register.h"

PYBIND11_MODULE(_native, m) {
  m.doc() = "YUV-plane image transcoder (libjpeg-turbo, libyuv, libwebp, libavif, libspng)";
  appliance::bindings::RegisterOptions(m);
  appliance::bindings::RegisterTranscode(m);
}
