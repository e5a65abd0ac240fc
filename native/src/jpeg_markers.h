// Reading and rewriting JPEG marker segments without decoding: EXIF orientation,
// and the DC-only view of a progressive file.
#ifndef APPLIANCE_SRC_JPEG_MARKERS_H_
#define APPLIANCE_SRC_JPEG_MARKERS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace appliance {

// The orientation (1-8) in an APP1 "Exif" payload (the bytes after the marker
// length), or 1 when absent or unreadable.
int ExifOrientation(const uint8_t* app1, size_t size);

// Copies a progressive JPEG keeping only the scans that carry DC coefficients
// (Ss == 0), which is all a 1/8-scale decode reads of a component, and with
// `keep_chroma` every scan of the chroma components too: at 1/8 scale libjpeg
// decodes 4:2:0 chroma through a 2x2 IDCT, which reads AC coefficients. Returns
// false when the stream is not a well-formed progressive file, in which case
// the caller decodes the original bytes.
bool ExtractDcScans(const uint8_t* data, size_t size, bool keep_chroma,
                    std::vector<uint8_t>* out);

}  // namespace appliance

#endif  // APPLIANCE_SRC_JPEG_MARKERS_H_
