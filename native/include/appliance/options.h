// What a caller asks of one transcode. Plain values only: the binding copies the
// Python arguments into this struct before it releases the GIL.
#ifndef APPLIANCE_OPTIONS_H_
#define APPLIANCE_OPTIONS_H_

#include <cstdint>

namespace appliance {

enum class Format { kSame = 0, kJpeg, kPng, kWebp, kAvif, kGif };
enum class Fit { kInside = 0, kCover, kPad, kStretch };
enum class Gravity { kCenter = 0, kTop, kBottom, kLeft, kRight };
enum class IccMode { kKeep = 0, kSrgb, kStrip };
enum class Chroma { kAuto = 0, k420, k444 };

struct Rect {
  int x = 0, y = 0, width = 0, height = 0;
  bool empty() const { return width <= 0 || height <= 0; }
};

struct Limits {
  uint64_t max_source_pixels = 50'000'000;
  uint64_t max_output_pixels = 16'777'216;
  int max_dimension = 65'535;
};

struct TranscodeOptions {
  int width = 0;   // 0 = not given
  int height = 0;
  Fit fit = Fit::kInside;
  Gravity gravity = Gravity::kCenter;
  Rect rect;       // source crop, in displayed (oriented) pixels; empty = none
  bool upscale = false;
  bool autorotate = true;

  Format format = Format::kSame;
  int quality = 0;  // 0 = the format's default
  bool progressive = false;
  bool optimize = false;  // optimised Huffman: ~2% smaller, ~2x the encode time
  Chroma chroma = Chroma::kAuto;
  bool lossless = false;
  int effort = -1;  // -1 = the format's default
  IccMode icc = IccMode::kKeep;
  uint8_t background[4] = {255, 255, 255, 255};

  Limits limits;
};

// Default qualities, one place.
constexpr int kDefaultJpegQuality = 82;
constexpr int kDefaultWebpQuality = 80;
constexpr int kDefaultAvifQuality = 55;

}  // namespace appliance

#endif  // APPLIANCE_OPTIONS_H_
