#include "appliance/image.h"

#include <cstring>
#include <limits>
#include <new>

namespace appliance {

bool CheckedMul(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > std::numeric_limits<size_t>::max() / a) return false;
  *out = a * b;
  return true;
}

namespace {
// Rows aligned for SIMD loads in libyuv and libjpeg-turbo.
constexpr int kRowAlign = 64;
// No single plane may exceed this (65535 x 65535 is far beyond every limit).
constexpr size_t kMaxPlaneBytes = size_t{1} << 32;
}  // namespace

Status Plane::Allocate(int width, int height, int min_stride, int min_rows) {
  if (width <= 0 || height <= 0 || width > 65535 || height > 65535 ||
      min_stride < 0 || min_rows < 0 || min_stride > (1 << 20) || min_rows > (1 << 17)) {
    return InvalidArgument("plane size out of range");
  }
  size_t stride = static_cast<size_t>(width > min_stride ? width : min_stride);
  stride = (stride + kRowAlign - 1) / kRowAlign * kRowAlign;
  size_t rows = static_cast<size_t>(height > min_rows ? height : min_rows);
  size_t bytes = 0;
  if (!CheckedMul(stride, rows, &bytes) || bytes > kMaxPlaneBytes) {
    return TooLarge("plane too large");
  }
  // One spare row: some SIMD row functions read a few bytes past the last pixel.
  storage_.reset(new (std::nothrow) uint8_t[bytes + stride + kRowAlign]);
  if (!storage_) return Internal("out of memory");
  uintptr_t p = reinterpret_cast<uintptr_t>(storage_.get());
  data_ = reinterpret_cast<uint8_t*>((p + kRowAlign - 1) / kRowAlign * kRowAlign);
  width_ = width;
  height_ = height;
  stride_ = static_cast<int>(stride);
  return Status::Ok();
}

void Plane::Fill(uint8_t value) {
  if (data_ == nullptr) return;
  for (int y = 0; y < height_; ++y) std::memset(row(y), value, static_cast<size_t>(width_));
}

}  // namespace appliance
