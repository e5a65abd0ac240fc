// appliance._native: the C++ transcoder. Only appliance/native.py imports it.
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <string_view>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "register.h"

namespace {

// Every transcode allocates and frees planes of a few MB. glibc serves blocks
// over 128 KiB with mmap and gives them back on free, so each call paid for
// fresh zeroed pages (measured: an 800 px resize 4.8 ms -> 2.3 ms when kept).
// See docs/decisions/0001-malloc-thresholds.md. APPLIANCE_MALLOC=system opts out.
void KeepLargeBlocks() {
#if defined(__GLIBC__)
  const char* choice = std::getenv("APPLIANCE_MALLOC");
  if (choice != nullptr && std::string_view(choice) == "system") return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "YUV-plane image transcoder (libjpeg-turbo, libyuv, libwebp, libavif, libspng)";
  KeepLargeBlocks();
  appliance::bindings::RegisterOptions(m);
  appliance::bindings::RegisterTranscode(m);
}
