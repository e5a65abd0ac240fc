// The codecs behind the pipeline: one decoder and/or encoder per file format.
// Internal to the core. Every function returns a Status and never throws or aborts;
// a damaged file is kCorrupt, a header over the limits kTooLarge (refused before
// any pixel buffer is allocated).
#ifndef APPLIANCE_SRC_CODECS_H_
#define APPLIANCE_SRC_CODECS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "appliance/image.h"
#include "appliance/options.h"
#include "appliance/status.h"
#include "appliance/transcode.h"

namespace appliance {

// Sniffs the container from the first bytes; kSame when it is none we know.
Format SniffFormat(const uint8_t* data, size_t size);

// Checks width x height against the limits (and against int overflow).
Status CheckSourceSize(uint64_t width, uint64_t height, const Limits& limits);

// ---- Decoders --------------------------------------------------------------
// A JPEG with more scans than this is hostile: each scan can cost a pass over
// every block of the image (libjpeg-turbo's TurboJPEG API uses the same bound).
constexpr int kMaxJpegScans = 500;

struct DecodeRequest {
  // The smallest plane size the pipeline needs, in stored (not oriented) pixels,
  // for the source region it will use. A JPEG decoder picks the smallest DCT scale
  // that keeps `region` at least this large. 0 = full size.
  int min_width = 0;
  int min_height = 0;
  // The same for the chroma planes of a Y/Cb/Cr image (0: as the luma plane):
  // smaller when the encoder subsamples chroma.
  int chroma_min_width = 0;
  int chroma_min_height = 0;
  Rect region;  // the stored-pixel region the pipeline will crop; empty = whole image
  Limits limits;
  // Allows our own JPEG decoders (progressive DC-only at 1/8, any at 1/4 to 1/2)
  // (off for the plain libjpeg-turbo decode the benchmark uses as its floor).
  bool shortcuts = true;
};

// JPEG into Y/Cb/Cr (or gray) planes at a DCT scale; CMYK/YCCK into RGB planes.
// `scale_num` receives the chosen scale in eighths (1..8).
Status DecodeJpeg(const uint8_t* data, size_t size, const DecodeRequest& request,
                  Image* image, int* scale_num);
Status ProbeJpeg(const uint8_t* data, size_t size, ImageInfo* info);

// The scale in eighths (1, 2, 4 or 8) that DecodeJpeg uses for a source of
// `width` x `height` when it needs at least `min_width` x `min_height`.
int ChooseJpegScale(int width, int height, int min_width, int min_height);

// PNG (8/16-bit, palette, gray, alpha) into kGray or kRgb planes (+ alpha).
// 16-bit samples are reduced to 8 bits. tRNS becomes an alpha plane. An iCCP chunk
// fills image->icc. Fully opaque alpha planes are dropped.
Status DecodePng(const uint8_t* data, size_t size, const Limits& limits, Image* image);
Status ProbePng(const uint8_t* data, size_t size, ImageInfo* info);

// WebP (lossy, lossless, alpha; the first frame of an animation) into kYCbCr 4:2:0
// planes when opaque, or kRgb + alpha. An ICCP chunk fills image->icc.
Status DecodeWebp(const uint8_t* data, size_t size, const Limits& limits, Image* image);
Status ProbeWebp(const uint8_t* data, size_t size, ImageInfo* info);

// GIF: the first frame, composited on the logical screen, into kRgb (+ alpha when
// the frame has a transparent index that is used).
Status DecodeGif(const uint8_t* data, size_t size, const Limits& limits, Image* image);
Status ProbeGif(const uint8_t* data, size_t size, ImageInfo* info);

// ---- Encoders --------------------------------------------------------------
struct EncodeParams {
  int quality = 80;        // 1-100, resolved by the pipeline
  bool progressive = false;
  bool optimize = true;
  bool lossless = false;
  int effort = -1;         // -1 = codec default (WebP method 4, AVIF speed 8)
  const std::vector<uint8_t>* icc = nullptr;  // profile to embed, or null
};

// JPEG from kYCbCr planes whose chroma is full size (4:4:4) or
// ((w+1)/2 x (h+1)/2) (4:2:0), or from kGray. No alpha.
Status EncodeJpeg(const Image& image, const EncodeParams& params,
                  std::vector<uint8_t>* out);

// WebP from kYCbCr 4:2:0 planes (+ alpha) without an RGB round trip, or from kRgb
// (+ alpha), or kGray. 4:4:4 is refused (WebP has none). Effort = method 0-6.
Status EncodeWebp(const Image& image, const EncodeParams& params,
                  std::vector<uint8_t>* out);

// AVIF (8-bit, full range, BT.601 matrix) from kYCbCr 4:2:0 or 4:4:4 (+ alpha),
// or kRgb (+ alpha; 4:2:0, or identity-matrix 4:4:4 when lossless), or kGray.
// Effort e maps to libaom speed 10 - e; the default is speed 8.
Status EncodeAvif(const Image& image, const EncodeParams& params,
                  std::vector<uint8_t>* out);

// PNG from kRgb or kGray (+ alpha). Lossless; `quality` is ignored.
Status EncodePng(const Image& image, const EncodeParams& params,
                 std::vector<uint8_t>* out);

// ---- Colour ----------------------------------------------------------------
// Converts kRgb (or kGray) planes in place from the embedded profile to sRGB
// (lcms2, perceptual intent), then clears image->icc. A profile lcms2 cannot use,
// or one of another colour space, is kUnsupported; kYCbCr is kInvalidArgument.
Status ConvertToSrgb(Image* image);

// True when `icc` describes sRGB (its colorants and its tone curves match), so
// that conversion can be skipped.
bool IsSrgbProfile(const std::vector<uint8_t>& icc);

}  // namespace appliance

#endif  // APPLIANCE_SRC_CODECS_H_
