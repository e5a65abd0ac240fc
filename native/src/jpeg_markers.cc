#include "jpeg_markers.h"

#include <cstring>

namespace appliance {
namespace {

uint16_t Read16(const uint8_t* p, bool big_endian) {
  return big_endian ? static_cast<uint16_t>(p[0] << 8 | p[1])
                    : static_cast<uint16_t>(p[1] << 8 | p[0]);
}

uint32_t Read32(const uint8_t* p, bool big_endian) {
  return big_endian ? (uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3])
                    : (uint32_t{p[3]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[1]} << 8 | p[0]);
}

constexpr uint8_t kSof2 = 0xC2;
constexpr uint8_t kSos = 0xDA;
constexpr uint8_t kEoi = 0xD9;

}  // namespace

int ExifOrientation(const uint8_t* app1, size_t size) {
  static const uint8_t kExifHeader[6] = {'E', 'x', 'i', 'f', 0, 0};
  if (size < 6 + 8 || std::memcmp(app1, kExifHeader, 6) != 0) return 1;
  const uint8_t* tiff = app1 + 6;
  const size_t tiff_size = size - 6;
  bool big_endian;
  if (tiff[0] == 'M' && tiff[1] == 'M') {
    big_endian = true;
  } else if (tiff[0] == 'I' && tiff[1] == 'I') {
    big_endian = false;
  } else {
    return 1;
  }
  if (Read16(tiff + 2, big_endian) != 42) return 1;
  const uint32_t ifd = Read32(tiff + 4, big_endian);
  if (ifd > tiff_size || tiff_size - ifd < 2) return 1;
  const uint16_t entries = Read16(tiff + ifd, big_endian);
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t entry = size_t{ifd} + 2 + size_t{i} * 12;
    if (entry + 12 > tiff_size) return 1;
    const uint8_t* e = tiff + entry;
    if (Read16(e, big_endian) != 0x0112) continue;
    const uint16_t type = Read16(e + 2, big_endian);  // SHORT = 3
    if (type != 3 || Read32(e + 4, big_endian) != 1) return 1;
    const uint16_t value = Read16(e + 8, big_endian);
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

bool ExtractDcScans(const uint8_t* data, size_t size, bool keep_chroma,
                    std::vector<uint8_t>* out) {
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return false;
  out->clear();
  out->reserve(size / 4);
  out->insert(out->end(), data, data + 2);
  size_t pos = 2;
  bool progressive = false;
  bool any_dc_scan = false;
  int luma_id = -1;  // the first component of the frame
  while (pos + 4 <= size) {
    if (data[pos] != 0xFF) return false;
    const uint8_t marker = data[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == kEoi) break;
    const size_t length = static_cast<size_t>(data[pos + 2] << 8 | data[pos + 3]);
    if (length < 2 || pos + 2 + length > size) return false;
    const size_t segment_end = pos + 2 + length;
    if (marker == kSof2) {
      progressive = true;
      if (length < 8 + 3) return false;
      luma_id = data[pos + 10];
    }
    if (marker != kSos) {
      out->insert(out->end(), data + pos, data + segment_end);
      pos = segment_end;
      continue;
    }
    if (!progressive) return false;
    // SOS header: Ns, Ns x (Cs, Td/Ta), Ss, Se, Ah/Al.
    const uint8_t* header = data + pos + 4;
    const size_t ns = header[0];
    if (length != 6 + 2 * ns) return false;
    const uint8_t ss = header[1 + 2 * ns];
    // The entropy-coded data runs to the next marker that is not a stuffed
    // zero or a restart marker.
    size_t end = segment_end;
    while (end + 1 < size) {
      if (data[end] == 0xFF && data[end + 1] != 0 &&
          !(data[end + 1] >= 0xD0 && data[end + 1] <= 0xD7)) {
        break;
      }
      ++end;
    }
    if (end + 1 >= size) return false;  // truncated: let the full decoder report it
    bool luma = false;
    for (size_t i = 0; i < ns; ++i) luma = luma || header[1 + 2 * i] == luma_id;
    if (ss == 0 || (keep_chroma && !luma)) {
      out->insert(out->end(), data + pos, data + end);
      any_dc_scan = true;
    }
    pos = end;
  }
  if (!progressive || !any_dc_scan) return false;
  out->push_back(0xFF);
  out->push_back(kEoi);
  return true;
}

}  // namespace appliance
