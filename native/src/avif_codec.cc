// AVIF encode with libavif (0.11 API: min/max quantizers, not "quality").
//
// YCbCr and gray planes are handed to libavif by pointer (imageOwnsYUVPlanes =
// false): our kYCbCr is full-range BT.601, which AVIF signals exactly (matrix
// coefficients 6, full range), so no pixel is touched before the AV1 encoder.
// Lossless RGB uses the identity matrix, whose planes are G, B, R: pointers
// again. Only lossy RGB needs a conversion (libavif's RGB->YUV).
#include <avif/avif.h>

#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "codecs.h"
#include "guard.h"
#include "libyuv/planar_functions.h"

namespace appliance {
namespace {

struct AvifImageDeleter {
  void operator()(avifImage* image) const { avifImageDestroy(image); }
};
struct AvifEncoderDeleter {
  void operator()(avifEncoder* encoder) const { avifEncoderDestroy(encoder); }
};
struct RWDataGuard {
  avifRWData data = AVIF_DATA_EMPTY;
  ~RWDataGuard() { avifRWDataFree(&data); }
};

// The server runs one encode per core, so libavif gets one thread.
constexpr int kDefaultSpeed = 8;

bool SameSize(const Plane& p, int w, int h) {
  return !p.empty() && p.width() == w && p.height() == h;
}

// Quality 1-100 to an AV1 quantizer 0-63 (100 -> 0, 1 -> 62), as libavif 1.x maps it.
int QualityToQuantizer(int quality) {
  if (quality < 1) quality = 1;
  if (quality > 100) quality = 100;
  return ((100 - quality) * 63 + 50) / 100;
}

Status AvifError(avifResult result, const char* what) {
  if (result == AVIF_RESULT_OUT_OF_MEMORY) return Internal("out of memory encoding AVIF");
  if (result == AVIF_RESULT_NO_CODEC_AVAILABLE) return Unsupported("AVIF encoder not available");
  return Internal(std::string("AVIF ") + what + ": " + avifResultToString(result));
}

Status EncodeAvifImpl(const Image& image, const EncodeParams& params, std::vector<uint8_t>* out) {
  out->clear();
  if (avifCodecName(AVIF_CODEC_CHOICE_AUTO, AVIF_CODEC_FLAG_CAN_ENCODE) == nullptr) {
    return Unsupported("AVIF encoder not available");
  }
  const int w = image.width;
  const int h = image.height;
  if (w <= 0 || h <= 0) return InvalidArgument("empty image");
  const Plane* p = image.planes;
  if (!SameSize(p[0], w, h)) return InvalidArgument("first plane size differs from the image");
  const bool alpha = image.has_alpha();
  if (alpha && !SameSize(image.alpha, w, h)) {
    return InvalidArgument("alpha plane size differs from the image");
  }

  avifPixelFormat format = AVIF_PIXEL_FORMAT_YUV420;
  avifMatrixCoefficients matrix = AVIF_MATRIX_COEFFICIENTS_BT601;
  switch (image.model) {
    case ColorModel::kGray:
      format = AVIF_PIXEL_FORMAT_YUV400;
      break;
    case ColorModel::kYCbCr:
      if (SameSize(p[1], w, h) && SameSize(p[2], w, h)) {
        format = AVIF_PIXEL_FORMAT_YUV444;
      } else if (SameSize(p[1], (w + 1) / 2, (h + 1) / 2) &&
                 SameSize(p[2], (w + 1) / 2, (h + 1) / 2)) {
        format = AVIF_PIXEL_FORMAT_YUV420;
      } else {
        return InvalidArgument("AVIF needs 4:2:0 or 4:4:4 chroma planes");
      }
      break;
    case ColorModel::kRgb:
      if (!SameSize(p[1], w, h) || !SameSize(p[2], w, h)) {
        return InvalidArgument("RGB planes must be full size");
      }
      if (params.lossless) {
        format = AVIF_PIXEL_FORMAT_YUV444;
        matrix = AVIF_MATRIX_COEFFICIENTS_IDENTITY;
      }
      break;
  }

  std::unique_ptr<avifImage, AvifImageDeleter> avif(
      avifImageCreate(static_cast<uint32_t>(w), static_cast<uint32_t>(h), 8, format));
  if (!avif) return Internal("out of memory encoding AVIF");
  avif->yuvRange = AVIF_RANGE_FULL;
  avif->colorPrimaries = AVIF_COLOR_PRIMARIES_BT709;
  avif->transferCharacteristics = AVIF_TRANSFER_CHARACTERISTICS_SRGB;
  avif->matrixCoefficients = matrix;

  // libavif reads these planes and never writes them; avifImageDestroy leaves
  // them alone because the image does not own them.
  auto point = [&](int index, const Plane& plane) {
    avif->yuvPlanes[index] = const_cast<uint8_t*>(plane.data());
    avif->yuvRowBytes[index] = static_cast<uint32_t>(plane.stride());
  };
  if (image.model == ColorModel::kRgb && !params.lossless) {
    // Lossy RGB: libavif converts interleaved RGB to full-range BT.601 4:2:0
    // into planes it allocates and owns.
    size_t bytes = 0;
    if (!CheckedMul(static_cast<size_t>(w) * 3, static_cast<size_t>(h), &bytes)) {
      return TooLarge("AVIF input too large");
    }
    std::unique_ptr<uint8_t[]> rgb_pixels(new (std::nothrow) uint8_t[bytes]);
    if (!rgb_pixels) return Internal("out of memory encoding AVIF");
    libyuv::MergeRGBPlane(p[0].data(), p[0].stride(), p[1].data(), p[1].stride(), p[2].data(),
                          p[2].stride(), rgb_pixels.get(), w * 3, w, h);
    avifRGBImage rgb;
    avifRGBImageSetDefaults(&rgb, avif.get());
    rgb.format = AVIF_RGB_FORMAT_RGB;
    rgb.depth = 8;
    rgb.pixels = rgb_pixels.get();
    rgb.rowBytes = static_cast<uint32_t>(w) * 3;
    avifResult result = avifImageRGBToYUV(avif.get(), &rgb);
    if (result != AVIF_RESULT_OK) return AvifError(result, "RGB to YUV");
  } else {
    avif->imageOwnsYUVPlanes = AVIF_FALSE;
    if (image.model == ColorModel::kRgb) {  // lossless: identity matrix, planes G, B, R
      point(0, p[1]);
      point(1, p[2]);
      point(2, p[0]);
    } else {
      point(0, p[0]);
      if (image.model == ColorModel::kYCbCr) {
        point(1, p[1]);
        point(2, p[2]);
      }
    }
  }
  if (alpha) {
    avif->alphaPlane = const_cast<uint8_t*>(image.alpha.data());
    avif->alphaRowBytes = static_cast<uint32_t>(image.alpha.stride());
    avif->imageOwnsAlphaPlane = AVIF_FALSE;
    avif->alphaPremultiplied = AVIF_FALSE;
  }
  if (params.icc != nullptr && !params.icc->empty()) {
    avifImageSetProfileICC(avif.get(), params.icc->data(), params.icc->size());
  }

  std::unique_ptr<avifEncoder, AvifEncoderDeleter> encoder(avifEncoderCreate());
  if (!encoder) return Internal("out of memory encoding AVIF");
  encoder->codecChoice = AVIF_CODEC_CHOICE_AUTO;
  encoder->maxThreads = 1;
  int speed = params.effort < 0 ? kDefaultSpeed : AVIF_SPEED_FASTEST - params.effort;
  if (speed < AVIF_SPEED_SLOWEST) speed = AVIF_SPEED_SLOWEST;
  if (speed > AVIF_SPEED_FASTEST) speed = AVIF_SPEED_FASTEST;
  encoder->speed = speed;
  const int q = params.lossless ? AVIF_QUANTIZER_LOSSLESS : QualityToQuantizer(params.quality);
  // min == max: libaom runs in constant-quality mode at exactly this quantizer.
  encoder->minQuantizer = q;
  encoder->maxQuantizer = q;
  encoder->minQuantizerAlpha = q;
  encoder->maxQuantizerAlpha = q;

  RWDataGuard output;
  avifResult result = avifEncoderWrite(encoder.get(), avif.get(), &output.data);
  if (result != AVIF_RESULT_OK) return AvifError(result, "encode");
  out->assign(output.data.data, output.data.data + output.data.size);
  return Status::Ok();
}

}  // namespace

Status EncodeAvif(const Image& image, const EncodeParams& params, std::vector<uint8_t>* out) {
  if (out == nullptr) return InvalidArgument("null argument");
  Status status = Guard("encoding AVIF", [&] { return EncodeAvifImpl(image, params, out); });
  if (!status.ok()) out->clear();
  return status;
}

}  // namespace appliance
