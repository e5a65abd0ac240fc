// The core's public entry points. Thread-safe; no global state; never throws.
#ifndef APPLIANCE_TRANSCODE_H_
#define APPLIANCE_TRANSCODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "appliance/image.h"
#include "appliance/options.h"
#include "appliance/status.h"

namespace appliance {

// What a header says, read without decoding pixels.
struct ImageInfo {
  Format format = Format::kSame;
  int width = 0;   // as stored, before orientation
  int height = 0;
  int orientation = 1;  // EXIF 1-8
  bool has_alpha = false;
  bool has_icc = false;
  bool progressive = false;
  Subsampling subsampling = Subsampling::kNone;
};

struct Timings {
  double decode = 0, resize = 0, encode = 0;  // seconds
};

struct TranscodeResult {
  std::vector<uint8_t> data;
  Format format = Format::kJpeg;
  int width = 0;
  int height = 0;
  Timings timings;
};

Status Probe(const uint8_t* data, size_t size, ImageInfo* info);

Status Transcode(const uint8_t* data, size_t size, const TranscodeOptions& options,
                 TranscodeResult* result);

// Decodes a JPEG to planes at the DCT scale Transcode would pick for an
// inside-fit into width x height (0 = free), and stops there. With `shortcuts`
// false it is a plain libjpeg-turbo raw decode: the benchmark's floor. With
// `shortcuts` true it decodes as Transcode does (our own decoders at 1/8, 1/4
// and 1/2 scale); `half_chroma` as for an output with 4:2:0 chroma.
Status DecodeJpegPlanes(const uint8_t* data, size_t size, int width, int height,
                        bool shortcuts, Image* image, bool half_chroma = false);

const char* FormatName(Format format);

}  // namespace appliance

#endif  // APPLIANCE_TRANSCODE_H_
