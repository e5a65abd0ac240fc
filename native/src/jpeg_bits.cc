#include "jpeg_bits.h"

#include <cstring>
#include <utility>

namespace appliance {
namespace jpeg_internal {
namespace {

// Zeros after each interval's data: the last refill loads 8 bytes from at most
// 8 bytes past it.
constexpr size_t kPadding = 16;
// What a thread keeps of its last buffer for the next scan.
constexpr size_t kKeptBufferBytes = size_t{4} << 20;

bool IsRestartMarker(uint8_t m) { return m >= 0xD0 && m <= 0xD7; }

// Each thread's last buffer, for its next scan.
thread_local std::vector<uint8_t> spare_buffer;

}  // namespace

ScanData::ScanData(const uint8_t* p, const uint8_t* end) {
  buffer_ = std::move(spare_buffer);
  buffer_.resize(static_cast<size_t>(end - p) + kPadding);
  size_t size = 0;
  intervals_.push_back(Interval{0, 0, -1});
  const uint8_t* q = p;
  auto close_interval = [&] {
    intervals_.back().bytes = size - intervals_.back().start;
    // Room for the zeros, and for the rest of the data and its zeros.
    const size_t needed = size + kPadding + static_cast<size_t>(end - q) + kPadding;
    if (buffer_.size() < needed) buffer_.resize(needed);
    std::memset(buffer_.data() + size, 0, kPadding);
    size += kPadding;
  };
  next_marker_ = end;
  while (q < end) {
    const void* found = std::memchr(q, 0xFF, static_cast<size_t>(end - q));
    const uint8_t* ff = found != nullptr ? static_cast<const uint8_t*>(found) : end;
    std::memcpy(buffer_.data() + size, q, static_cast<size_t>(ff - q));
    size += static_cast<size_t>(ff - q);
    if (ff + 1 >= end) {  // no marker, or a lone 0xFF at the end: the data is cut short
      next_marker_ = ff;
      break;
    }
    if (ff[1] == 0x00) {  // a stuffed 0xFF
      buffer_[size++] = 0xFF;
      q = ff + 2;
      continue;
    }
    // A marker, perhaps after fill bytes (0xFF 0xFF ...).
    const uint8_t* m = ff + 1;
    while (m < end && *m == 0xFF) ++m;
    if (m < end && IsRestartMarker(*m)) {
      close_interval();
      intervals_.push_back(Interval{size, 0, *m - 0xD0});
      q = m + 1;
      continue;
    }
    next_marker_ = ff;
    break;
  }
  close_interval();
}

ScanData::~ScanData() {
  if (buffer_.capacity() <= kKeptBufferBytes) spare_buffer = std::move(buffer_);
}

const uint8_t* SkipEntropyCodedData(const uint8_t* p, const uint8_t* end) {
  while (p < end) {
    const void* found = std::memchr(p, 0xFF, static_cast<size_t>(end - p));
    if (found == nullptr) return end;
    const uint8_t* ff = static_cast<const uint8_t*>(found);
    if (ff + 1 >= end) return ff;
    if (ff[1] == 0x00) {  // a stuffed 0xFF
      p = ff + 2;
      continue;
    }
    const uint8_t* m = ff + 1;  // a marker, perhaps after fill bytes
    while (m < end && *m == 0xFF) ++m;
    if (m < end && IsRestartMarker(*m)) {
      p = m + 1;
      continue;
    }
    return ff;
  }
  return end;
}

}  // namespace jpeg_internal
}  // namespace appliance
