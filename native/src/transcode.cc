// The pipeline: sniff → probe → plan → decode (at a DCT scale) → scale planes →
// colour/alpha → orient → pad → encode. Each step is a small function over an
// Image; the planes never become packed RGB on the JPEG/WebP/AVIF path.
#include "appliance/transcode.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>
#include <utility>

#include "codecs.h"
#include "guard.h"
#include "parallel.h"
#include "plan.h"
#include "plane_ops.h"

namespace appliance {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Format OutputFormat(Format requested, Format source) {
  if (requested != Format::kSame) return requested;
  switch (source) {
    case Format::kPng:
    case Format::kGif:
      return Format::kPng;
    case Format::kWebp:
      return Format::kWebp;
    default:
      return Format::kJpeg;
  }
}

int ResolveQuality(Format format, int quality) {
  if (quality > 0) return std::min(quality, 100);
  switch (format) {
    case Format::kWebp: return kDefaultWebpQuality;
    case Format::kAvif: return kDefaultAvifQuality;
    default: return kDefaultJpegQuality;
  }
}

// How the encoder wants its chroma.
enum class ChromaLayout { kHalf, kFull };

ChromaLayout ChooseChroma(Format format, const TranscodeOptions& options, int quality) {
  switch (format) {
    case Format::kWebp:
      return ChromaLayout::kHalf;
    case Format::kPng:
      return ChromaLayout::kFull;
    case Format::kJpeg:
      if (options.chroma == Chroma::kAuto) {
        return quality >= 90 ? ChromaLayout::kFull : ChromaLayout::kHalf;
      }
      [[fallthrough]];
    default:
      return options.chroma == Chroma::k444 ? ChromaLayout::kFull : ChromaLayout::kHalf;
  }
}

Status DecodeAny(Format format, const uint8_t* data, size_t size,
                 const DecodeRequest& request, Image* image) {
  int scale = 8;
  switch (format) {
    case Format::kJpeg: return DecodeJpeg(data, size, request, image, &scale);
    case Format::kPng: return DecodePng(data, size, request.limits, image);
    case Format::kWebp: return DecodeWebp(data, size, request.limits, image);
    case Format::kGif: return DecodeGif(data, size, request.limits, image);
    default: return Unsupported("not an image format we decode");
  }
}

Status ProbeAny(Format format, const uint8_t* data, size_t size, ImageInfo* info) {
  switch (format) {
    case Format::kJpeg: return ProbeJpeg(data, size, info);
    case Format::kPng: return ProbePng(data, size, info);
    case Format::kWebp: return ProbeWebp(data, size, info);
    case Format::kGif: return ProbeGif(data, size, info);
    default: return Unsupported("not an image format we decode (JPEG, PNG, WebP, GIF)");
  }
}

// Pixels of plane `i` per stored source pixel.
double PlaneScale(const Image& image, int i, bool vertical, int source_size) {
  const double known = vertical ? image.scale_y[i] : image.scale_x[i];
  if (known > 0) return known;
  const Plane& p = i < 0 ? image.alpha : image.planes[i];
  return static_cast<double>(vertical ? p.height() : p.width()) / source_size;
}

// Scales every plane of the region to the planned size; chroma to `chroma`.
// The planes are independent: one a part, on helper threads when cores are
// idle (docs/decisions/0012), luma first.
Status ResizePlanes(const Image& src, const Plan& plan, int source_w, int source_h,
                    ChromaLayout chroma, Image* dst) {
  dst->model = src.model;
  dst->width = plan.stored_width;
  dst->height = plan.stored_height;
  const RegionF& r = plan.stored_region;
  struct Part {
    const Plane* from;
    RegionF region;
    int width, height;
    Plane* to;
  };
  Part parts[4];
  int count = 0;
  for (int i = 0; i < src.plane_count(); ++i) {
    const double fx = PlaneScale(src, i, false, source_w);
    const double fy = PlaneScale(src, i, true, source_h);
    RegionF region{r.x * fx, r.y * fy, r.width * fx, r.height * fy};
    int w = plan.stored_width, h = plan.stored_height;
    if (i > 0 && src.model == ColorModel::kYCbCr && chroma == ChromaLayout::kHalf) {
      // A half-size chroma pixel covers two output pixels, so an odd size's
      // last chroma pixel reaches half a pixel past the region.
      const int cw = (w + 1) / 2, ch = (h + 1) / 2;
      region.width *= 2.0 * cw / w;
      region.height *= 2.0 * ch / h;
      w = cw;
      h = ch;
    }
    parts[count++] = Part{&src.planes[i], region, w, h, &dst->planes[i]};
  }
  if (src.has_alpha()) {
    const double fx = PlaneScale(src, 0, false, source_w);
    const double fy = PlaneScale(src, 0, true, source_h);
    const RegionF region{r.x * fx, r.y * fy, r.width * fx, r.height * fy};
    parts[count++] = Part{&src.alpha, region, plan.stored_width, plan.stored_height, &dst->alpha};
  }
  Status status[4];
  RunParts(count, [&](int i) {
    const Part& part = parts[i];
    status[i] = ResamplePlane(*part.from, part.region, part.width, part.height, part.to);
  });
  for (int i = 0; i < count; ++i) APPLIANCE_RETURN_IF_ERROR(status[i]);
  return Status::Ok();
}

Status OrientImage(int orientation, Image* image) {
  if (orientation == 1) return Status::Ok();
  for (int i = 0; i < image->plane_count(); ++i) {
    Plane oriented;
    APPLIANCE_RETURN_IF_ERROR(OrientPlane(image->planes[i], orientation, &oriented));
    image->planes[i] = std::move(oriented);
  }
  if (image->has_alpha()) {
    Plane oriented;
    APPLIANCE_RETURN_IF_ERROR(OrientPlane(image->alpha, orientation, &oriented));
    image->alpha = std::move(oriented);
  }
  image->width = image->planes[0].width();
  image->height = image->planes[0].height();
  return Status::Ok();
}

// The background colour in the image's colour model, per plane.
void BackgroundValues(const Image& image, const uint8_t rgba[4], uint8_t out[3]) {
  const int r = rgba[0], g = rgba[1], b = rgba[2];
  const uint8_t y = static_cast<uint8_t>(std::lround(0.299 * r + 0.587 * g + 0.114 * b));
  switch (image.model) {
    case ColorModel::kGray:
      out[0] = y;
      break;
    case ColorModel::kYCbCr:
      out[0] = y;
      out[1] = static_cast<uint8_t>(
          std::clamp(std::lround(128 - 0.168736 * r - 0.331264 * g + 0.5 * b), 0L, 255L));
      out[2] = static_cast<uint8_t>(
          std::clamp(std::lround(128 + 0.5 * r - 0.418688 * g - 0.081312 * b), 0L, 255L));
      break;
    case ColorModel::kRgb:
      out[0] = rgba[0];
      out[1] = rgba[1];
      out[2] = rgba[2];
      break;
  }
}

// A gray image that meets a coloured background (pad bars, or alpha flattened
// for JPEG) becomes RGB first.
Status PromoteGray(const uint8_t background[4], Image* image) {
  if (image->model != ColorModel::kGray ||
      (background[0] == background[1] && background[1] == background[2])) {
    return Status::Ok();
  }
  for (int i = 1; i < 3; ++i) {
    Plane& p = image->planes[i];
    APPLIANCE_RETURN_IF_ERROR(p.Allocate(image->width, image->height));
    for (int y = 0; y < image->height; ++y) {
      std::memcpy(p.row(y), image->planes[0].row(y), static_cast<size_t>(image->width));
    }
    image->scale_x[i] = image->scale_x[0];
    image->scale_y[i] = image->scale_y[0];
  }
  image->model = ColorModel::kRgb;
  return Status::Ok();
}

// Places the image on a canvas of the background colour (fit=pad).
Status PadImage(const Plan& plan, const uint8_t background[4], bool keep_alpha,
                Image* image) {
  if (plan.canvas_width == image->width && plan.canvas_height == image->height) {
    return Status::Ok();
  }
  uint8_t values[3];
  BackgroundValues(*image, background, values);
  const bool want_alpha = keep_alpha && (image->has_alpha() || background[3] != 255);
  auto place = [&](const Plane& src, int cw, int ch, int ox, int oy, uint8_t fill,
                   Plane* dst) -> Status {
    APPLIANCE_RETURN_IF_ERROR(dst->Allocate(cw, ch));
    dst->Fill(fill);
    for (int y = 0; y < src.height() && oy + y < ch; ++y) {
      std::memcpy(dst->row(oy + y) + ox, src.row(y),
                  static_cast<size_t>(std::min(src.width(), cw - ox)));
    }
    return Status::Ok();
  };
  const int cw = plan.canvas_width, ch = plan.canvas_height;
  for (int i = 0; i < image->plane_count(); ++i) {
    const Plane& p = image->planes[i];
    const bool half = p.width() < image->width;
    const int pw = half ? (cw + 1) / 2 : cw, ph = half ? (ch + 1) / 2 : ch;
    const int ox = half ? plan.offset_x / 2 : plan.offset_x;
    const int oy = half ? plan.offset_y / 2 : plan.offset_y;
    Plane placed;
    APPLIANCE_RETURN_IF_ERROR(place(p, pw, ph, ox, oy, values[i], &placed));
    image->planes[i] = std::move(placed);
  }
  if (want_alpha) {
    Plane opaque;
    const Plane* alpha = &image->alpha;
    if (!image->has_alpha()) {
      APPLIANCE_RETURN_IF_ERROR(opaque.Allocate(image->width, image->height));
      opaque.Fill(255);
      alpha = &opaque;
    }
    Plane placed;
    APPLIANCE_RETURN_IF_ERROR(
        place(*alpha, cw, ch, plan.offset_x, plan.offset_y, background[3], &placed));
    image->alpha = std::move(placed);
  }
  image->width = cw;
  image->height = ch;
  return Status::Ok();
}

// Makes every plane full size and converts Y/Cb/Cr to R/G/B.
void ToRgb(Image* image) {
  if (image->model != ColorModel::kYCbCr) return;
  YCbCrToRgb(&image->planes[0], &image->planes[1], &image->planes[2]);
  image->model = ColorModel::kRgb;
}

// R/G/B to Y/Cb/Cr, halving the chroma when asked.
Status ToYCbCr(ChromaLayout chroma, Image* image) {
  if (image->model != ColorModel::kRgb) return Status::Ok();
  RgbToYCbCr(&image->planes[0], &image->planes[1], &image->planes[2]);
  image->model = ColorModel::kYCbCr;
  if (chroma == ChromaLayout::kHalf) {
    for (int i = 1; i < 3; ++i) {
      Plane half;
      APPLIANCE_RETURN_IF_ERROR(HalvePlane(image->planes[i], &half));
      image->planes[i] = std::move(half);
    }
  }
  return Status::Ok();
}

Status Encode(Format format, const Image& image, const EncodeParams& params,
              std::vector<uint8_t>* out) {
  switch (format) {
    case Format::kJpeg: return EncodeJpeg(image, params, out);
    case Format::kPng: return EncodePng(image, params, out);
    case Format::kWebp: return EncodeWebp(image, params, out);
    case Format::kAvif: return EncodeAvif(image, params, out);
    default: return Unsupported("output format not supported");
  }
}

// What the decoder needs from the plan: the planned size and the part of the
// source it covers, in stored pixels (a JPEG picks its DCT scale from them).
// With `half_chroma` the encoder takes chroma at half the size (4:2:0), and
// chroma may be decoded that small.
DecodeRequest RequestFor(const Plan& plan, const Limits& limits, bool half_chroma) {
  DecodeRequest request;
  request.limits = limits;
  request.min_width = plan.stored_width;
  request.min_height = plan.stored_height;
  if (half_chroma) {
    request.chroma_min_width = (plan.stored_width + 1) / 2;
    request.chroma_min_height = (plan.stored_height + 1) / 2;
  }
  const RegionF& r = plan.stored_region;
  request.region = Rect{static_cast<int>(r.x), static_cast<int>(r.y),
                        static_cast<int>(std::ceil(r.width)),
                        static_cast<int>(std::ceil(r.height))};
  return request;
}

Status TranscodeImpl(const uint8_t* data, size_t size, const TranscodeOptions& options,
                     TranscodeResult* result) {
  const Clock::time_point start = Clock::now();
  const Format source_format = SniffFormat(data, size);
  ImageInfo info;
  APPLIANCE_RETURN_IF_ERROR(ProbeAny(source_format, data, size, &info));
  APPLIANCE_RETURN_IF_ERROR(CheckSourceSize(static_cast<uint64_t>(info.width),
                                            static_cast<uint64_t>(info.height),
                                            options.limits));
  const Format format = OutputFormat(options.format, source_format);
  const int quality = ResolveQuality(format, options.quality);
  const ChromaLayout chroma = ChooseChroma(format, options, quality);

  Plan plan;
  const int orientation = options.autorotate ? info.orientation : 1;
  APPLIANCE_RETURN_IF_ERROR(MakePlan(info.width, info.height, orientation, options, &plan));

  // Decode no larger than the planned size (JPEG picks its DCT scale from it),
  // chroma too: half of it when the output subsamples chroma and no step before
  // the encoder needs it whole (PNG and the conversion to sRGB go through RGB).
  const bool half_chroma = chroma == ChromaLayout::kHalf && format != Format::kPng &&
                           !(options.icc == IccMode::kSrgb && info.has_icc);
  const DecodeRequest request = RequestFor(plan, options.limits, half_chroma);
  Image decoded;
  APPLIANCE_RETURN_IF_ERROR(DecodeAny(source_format, data, size, request, &decoded));
  result->timings.decode = SecondsSince(start);

  const Clock::time_point resize_start = Clock::now();
  const bool to_srgb = options.icc == IccMode::kSrgb && !decoded.icc.empty() &&
                       !IsSrgbProfile(decoded.icc);
  const bool needs_rgb = format == Format::kPng || to_srgb;
  if (decoded.has_alpha()) {
    for (int i = 0; i < decoded.plane_count(); ++i) Premultiply(&decoded.planes[i], decoded.alpha);
  }
  Image image;
  APPLIANCE_RETURN_IF_ERROR(ResizePlanes(decoded, plan, info.width, info.height,
                                         needs_rgb ? ChromaLayout::kFull : chroma, &image));
  image.icc = std::move(decoded.icc);
  if (image.has_alpha()) {
    for (int i = 0; i < image.plane_count(); ++i) Unpremultiply(&image.planes[i], image.alpha);
  }
  if (needs_rgb) ToRgb(&image);
  if (to_srgb) {
    APPLIANCE_RETURN_IF_ERROR(ConvertToSrgb(&image));
    image.icc.clear();
  }
  const bool padded = plan.canvas_width != plan.width || plan.canvas_height != plan.height;
  if (padded || (format == Format::kJpeg && image.has_alpha())) {
    APPLIANCE_RETURN_IF_ERROR(PromoteGray(options.background, &image));
  }
  if (format == Format::kJpeg) {
    if (image.has_alpha()) {
      uint8_t values[3];
      BackgroundValues(image, options.background, values);
      for (int i = 0; i < image.plane_count(); ++i) {
        FlattenOnto(&image.planes[i], image.alpha, values[i]);
      }
      image.alpha = Plane();
    }
  }
  // JPEG takes only Y/Cb/Cr; lossy AVIF gets the chroma layout asked for.
  if (format == Format::kJpeg || (format == Format::kAvif && !options.lossless)) {
    APPLIANCE_RETURN_IF_ERROR(ToYCbCr(chroma, &image));
  }
  APPLIANCE_RETURN_IF_ERROR(OrientImage(plan.orientation, &image));
  APPLIANCE_RETURN_IF_ERROR(
      PadImage(plan, options.background, format != Format::kJpeg, &image));
  result->timings.resize = SecondsSince(resize_start);

  const Clock::time_point encode_start = Clock::now();
  EncodeParams params;
  params.quality = quality;
  params.progressive = options.progressive;
  params.optimize = options.optimize;
  params.lossless = options.lossless;
  params.effort = options.effort;
  if (options.icc != IccMode::kStrip && !image.icc.empty()) params.icc = &image.icc;
  APPLIANCE_RETURN_IF_ERROR(Encode(format, image, params, &result->data));
  result->timings.encode = SecondsSince(encode_start);
  result->format = format;
  result->width = image.width;
  result->height = image.height;
  return Status::Ok();
}

}  // namespace

const char* FormatName(Format format) {
  switch (format) {
    case Format::kJpeg: return "jpeg";
    case Format::kPng: return "png";
    case Format::kWebp: return "webp";
    case Format::kAvif: return "avif";
    case Format::kGif: return "gif";
    default: return "";
  }
}

Format SniffFormat(const uint8_t* data, size_t size) {
  if (size >= 2 && data[0] == 0xFF && data[1] == 0xD8) return Format::kJpeg;
  if (size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) return Format::kPng;
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) {
    return Format::kWebp;
  }
  if (size >= 6 && (std::memcmp(data, "GIF87a", 6) == 0 || std::memcmp(data, "GIF89a", 6) == 0)) {
    return Format::kGif;
  }
  return Format::kSame;
}

Status CheckSourceSize(uint64_t width, uint64_t height, const Limits& limits) {
  if (width == 0 || height == 0) return Corrupt("image has no pixels");
  if (width > static_cast<uint64_t>(limits.max_dimension) ||
      height > static_cast<uint64_t>(limits.max_dimension) ||
      width * height > limits.max_source_pixels) {
    return TooLarge("source image is " + std::to_string(width) + "x" + std::to_string(height) +
                    ", over the limit of " + std::to_string(limits.max_source_pixels) +
                    " pixels");
  }
  return Status::Ok();
}

Status Probe(const uint8_t* data, size_t size, ImageInfo* info) {
  return Guard("probing", [&] { return ProbeAny(SniffFormat(data, size), data, size, info); });
}

Status Transcode(const uint8_t* data, size_t size, const TranscodeOptions& options,
                 TranscodeResult* result) {
  if (data == nullptr || size == 0) return Unsupported("empty input");
  return Guard("transcoding", [&] { return TranscodeImpl(data, size, options, result); });
}

Status DecodeJpegPlanes(const uint8_t* data, size_t size, int width, int height,
                        bool shortcuts, Image* image, bool half_chroma) {
  if (SniffFormat(data, size) != Format::kJpeg) return Unsupported("not a JPEG");
  return Guard("decoding JPEG planes", [&]() -> Status {
    ImageInfo info;
    APPLIANCE_RETURN_IF_ERROR(ProbeJpeg(data, size, &info));
    TranscodeOptions options;
    options.width = width;
    options.height = height;
    Plan plan;
    APPLIANCE_RETURN_IF_ERROR(MakePlan(info.width, info.height, info.orientation, options, &plan));
    DecodeRequest request = RequestFor(plan, options.limits, half_chroma);
    request.shortcuts = shortcuts;
    int scale = 8;
    return DecodeJpeg(data, size, request, image, &scale);
  });
}

}  // namespace appliance
