// WebP decode and encode with libwebp (+ demux for ICCP and animations, + mux
// to embed ICCP on encode).
//
// Range: libwebp's YUV is limited-range BT.601 ("studio swing", Y 16-235,
// Cb/Cr 16-240), while our kYCbCr is full-range BT.601 (JFIF). The two share
// the same matrix, so converting between them is a per-sample affine map of
// each plane, done here with a 256-entry table. That is exact up to rounding,
// costs one table lookup per sample (1.5 per pixel at 4:2:0), and keeps lossy
// WebP on the planar YCbCr path end to end: decoding to RGB instead would cost
// a YUV->RGB conversion with chroma upsampling, twice the memory, and a
// conversion back for the JPEG/WebP/AVIF encoders.
#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "codecs.h"
#include "guard.h"
#include "plane_ops.h"
#include "libyuv/planar_functions.h"

// WebPPicture::argb holds 0xAARRGGBB words, which libyuv's "ARGB" matches
// byte for byte (B,G,R,A) only on a little-endian machine.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "webp_codec.cc assumes a little-endian target"
#endif

namespace appliance {
namespace {

using Lut = std::array<uint8_t, 256>;

constexpr int RoundToInt(double v) {
  return v >= 0 ? static_cast<int>(v + 0.5) : -static_cast<int>(-v + 0.5);
}
constexpr uint8_t Clamp255(int v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v); }
// Limited (16-235 / 16-240) to full range, and back.
constexpr Lut MakeLut(bool to_full, bool chroma) {
  Lut lut{};
  for (int i = 0; i < 256; ++i) {
    double v = 0;
    if (to_full) {
      v = chroma ? 128.0 + (i - 128) * 255.0 / 224.0 : (i - 16) * 255.0 / 219.0;
    } else {
      v = chroma ? 128.0 + (i - 128) * 224.0 / 255.0 : 16.0 + i * 219.0 / 255.0;
    }
    lut[i] = Clamp255(RoundToInt(v));
  }
  return lut;
}
constexpr Lut kLumaToFull = MakeLut(true, false);
constexpr Lut kChromaToFull = MakeLut(true, true);
constexpr Lut kLumaToLimited = MakeLut(false, false);
constexpr Lut kChromaToLimited = MakeLut(false, true);

void ApplyLut(const Lut& lut, const uint8_t* src, int src_stride, uint8_t* dst, int dst_stride,
              int width, int height) {
  const uint8_t* t = lut.data();
  for (int y = 0; y < height; ++y) {
    const uint8_t* s = src + static_cast<ptrdiff_t>(y) * src_stride;
    uint8_t* d = dst + static_cast<ptrdiff_t>(y) * dst_stride;
    for (int x = 0; x < width; ++x) d[x] = t[s[x]];
  }
}

struct DemuxDeleter {
  void operator()(WebPDemuxer* d) const { WebPDemuxDelete(d); }
};
struct AnimDecoderDeleter {
  void operator()(WebPAnimDecoder* d) const { WebPAnimDecoderDelete(d); }
};
struct MuxDeleter {
  void operator()(WebPMux* m) const { WebPMuxDelete(m); }
};
// Frees a WebPDecBuffer (a no-op for external memory, but always correct).
struct DecBufferGuard {
  WebPDecBuffer* buffer;
  ~DecBufferGuard() { WebPFreeDecBuffer(buffer); }
};
struct PictureGuard {
  WebPPicture* picture;
  ~PictureGuard() { WebPPictureFree(picture); }
};
struct WebPDataGuard {
  WebPData* data;
  ~WebPDataGuard() { WebPDataClear(data); }
};

bool HasWebpSignature(const uint8_t* data, size_t size) {
  return size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0;
}

// The VP8X header's flag byte, or 0 for a simple (VP8 / VP8L) file.
uint8_t Vp8xFlags(const uint8_t* data, size_t size) {
  if (size >= 21 && std::memcmp(data + 12, "VP8X", 4) == 0) return data[20];
  return 0;
}
constexpr uint8_t kIccpFlag = 0x20;  // ICCP_FLAG in mux_types.h

Status Vp8Error(VP8StatusCode code, const char* what) {
  switch (code) {
    case VP8_STATUS_OK:
      return Status::Ok();
    case VP8_STATUS_OUT_OF_MEMORY:
      return Internal(std::string("out of memory in WebP ") + what);
    case VP8_STATUS_UNSUPPORTED_FEATURE:
      return Unsupported(std::string("WebP feature not supported (") + what + ")");
    case VP8_STATUS_NOT_ENOUGH_DATA:
      return Corrupt(std::string("WebP truncated (") + what + ")");
    default:
      return Corrupt(std::string("WebP bitstream error (") + what + ")");
  }
}

// Splits a B,G,R,A buffer (libyuv "ARGB") into kRgb planes + alpha; drops an
// opaque alpha plane.
Status SplitBgra(const uint8_t* bgra, int stride, int w, int h, Image* image) {
  image->model = ColorModel::kRgb;
  image->width = w;
  image->height = h;
  for (auto& plane : image->planes) APPLIANCE_RETURN_IF_ERROR(plane.Allocate(w, h));
  APPLIANCE_RETURN_IF_ERROR(image->alpha.Allocate(w, h));
  Plane* p = image->planes;
  libyuv::SplitARGBPlane(bgra, stride, p[0].data(), p[0].stride(), p[1].data(), p[1].stride(),
                         p[2].data(), p[2].stride(), image->alpha.data(), image->alpha.stride(), w,
                         h);
  if (IsOpaque(image->alpha)) image->alpha = Plane();
  return Status::Ok();
}

Status DecodeAnimatedFirstFrame(const uint8_t* data, size_t size, Image* image) {
  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) return Internal("libwebp version mismatch");
  options.color_mode = MODE_BGRA;
  options.use_threads = 0;
  WebPData webp_data{data, size};
  std::unique_ptr<WebPAnimDecoder, AnimDecoderDeleter> dec(
      WebPAnimDecoderNew(&webp_data, &options));
  if (!dec) return Corrupt("WebP animation invalid");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(dec.get(), &info)) return Corrupt("WebP animation invalid");
  uint8_t* canvas = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(dec.get(), &canvas, &timestamp) || canvas == nullptr) {
    return Corrupt("WebP animation frame undecodable");
  }
  const int w = static_cast<int>(info.canvas_width);
  const int h = static_cast<int>(info.canvas_height);
  return SplitBgra(canvas, w * 4, w, h, image);
}

// Lossy and opaque: decode Y/U/V straight into our planes, then widen the range.
Status DecodeLossyYuv(const uint8_t* data, size_t size, int w, int h, Image* image) {
  image->model = ColorModel::kYCbCr;
  image->width = w;
  image->height = h;
  const int cw = (w + 1) / 2;
  const int ch = (h + 1) / 2;
  Plane* p = image->planes;
  APPLIANCE_RETURN_IF_ERROR(p[0].Allocate(w, h));
  APPLIANCE_RETURN_IF_ERROR(p[1].Allocate(cw, ch));
  APPLIANCE_RETURN_IF_ERROR(p[2].Allocate(cw, ch));

  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) return Internal("libwebp version mismatch");
  config.options.use_threads = 0;
  config.output.colorspace = MODE_YUV;
  config.output.is_external_memory = 1;
  WebPYUVABuffer& yuv = config.output.u.YUVA;
  yuv.y = p[0].data();
  yuv.y_stride = p[0].stride();
  yuv.y_size = static_cast<size_t>(p[0].stride()) * h;
  yuv.u = p[1].data();
  yuv.u_stride = p[1].stride();
  yuv.u_size = static_cast<size_t>(p[1].stride()) * ch;
  yuv.v = p[2].data();
  yuv.v_stride = p[2].stride();
  yuv.v_size = static_cast<size_t>(p[2].stride()) * ch;
  DecBufferGuard guard{&config.output};
  APPLIANCE_RETURN_IF_ERROR(Vp8Error(WebPDecode(data, size, &config), "decode"));

  // VP8 chroma covers 2x2 luma blocks: exactly half scale, odd sizes included.
  for (int i = 1; i < 3; ++i) image->scale_x[i] = image->scale_y[i] = 0.5;

  ApplyLut(kLumaToFull, p[0].data(), p[0].stride(), p[0].data(), p[0].stride(), w, h);
  ApplyLut(kChromaToFull, p[1].data(), p[1].stride(), p[1].data(), p[1].stride(), cw, ch);
  ApplyLut(kChromaToFull, p[2].data(), p[2].stride(), p[2].data(), p[2].stride(), cw, ch);
  return Status::Ok();
}

// Lossless or with alpha: RGB(A) into a temporary, then split into planes.
Status DecodeRgb(const uint8_t* data, size_t size, int w, int h, bool has_alpha, Image* image) {
  const int bpp = has_alpha ? 4 : 3;
  const int stride = w * bpp;  // w <= 16383
  size_t bytes = 0;
  if (!CheckedMul(static_cast<size_t>(stride), static_cast<size_t>(h), &bytes)) {
    return TooLarge("WebP too large");
  }
  std::unique_ptr<uint8_t[]> buffer(new (std::nothrow) uint8_t[bytes]);
  if (!buffer) return Internal("out of memory decoding WebP");
  if (has_alpha) {
    if (WebPDecodeBGRAInto(data, size, buffer.get(), bytes, stride) == nullptr) {
      return Corrupt("WebP image data undecodable");
    }
    return SplitBgra(buffer.get(), stride, w, h, image);
  }
  if (WebPDecodeRGBInto(data, size, buffer.get(), bytes, stride) == nullptr) {
    return Corrupt("WebP image data undecodable");
  }
  image->model = ColorModel::kRgb;
  image->width = w;
  image->height = h;
  for (auto& plane : image->planes) APPLIANCE_RETURN_IF_ERROR(plane.Allocate(w, h));
  Plane* p = image->planes;
  libyuv::SplitRGBPlane(buffer.get(), stride, p[0].data(), p[0].stride(), p[1].data(),
                        p[1].stride(), p[2].data(), p[2].stride(), w, h);
  return Status::Ok();
}

Status ReadIcc(const uint8_t* data, size_t size, std::vector<uint8_t>* icc) {
  if ((Vp8xFlags(data, size) & kIccpFlag) == 0) return Status::Ok();
  WebPData webp_data{data, size};
  std::unique_ptr<WebPDemuxer, DemuxDeleter> demux(WebPDemux(&webp_data));
  if (!demux) return Corrupt("WebP container invalid");
  WebPChunkIterator it;
  if (WebPDemuxGetChunk(demux.get(), "ICCP", 1, &it)) {
    icc->assign(it.chunk.bytes, it.chunk.bytes + it.chunk.size);
    WebPDemuxReleaseChunkIterator(&it);
  }
  return Status::Ok();
}

Status DecodeWebpImpl(const uint8_t* data, size_t size, const Limits& limits, Image* image) {
  *image = Image();
  if (!HasWebpSignature(data, size)) return Unsupported("not a WebP file");
  WebPBitstreamFeatures features;
  APPLIANCE_RETURN_IF_ERROR(Vp8Error(WebPGetFeatures(data, size, &features), "header"));
  if (features.width <= 0 || features.height <= 0) return Corrupt("WebP dimensions invalid");
  APPLIANCE_RETURN_IF_ERROR(CheckSourceSize(static_cast<uint64_t>(features.width),
                                            static_cast<uint64_t>(features.height), limits));
  std::vector<uint8_t> icc;
  APPLIANCE_RETURN_IF_ERROR(ReadIcc(data, size, &icc));

  const int w = features.width;
  const int h = features.height;
  if (features.has_animation) {
    APPLIANCE_RETURN_IF_ERROR(DecodeAnimatedFirstFrame(data, size, image));
  } else if (features.format == 1 && !features.has_alpha) {
    APPLIANCE_RETURN_IF_ERROR(DecodeLossyYuv(data, size, w, h, image));
  } else {
    APPLIANCE_RETURN_IF_ERROR(DecodeRgb(data, size, w, h, features.has_alpha != 0, image));
  }
  image->icc = std::move(icc);
  return Status::Ok();
}

Status ProbeWebpImpl(const uint8_t* data, size_t size, ImageInfo* info) {
  *info = ImageInfo();
  if (!HasWebpSignature(data, size)) return Unsupported("not a WebP file");
  WebPBitstreamFeatures features;
  APPLIANCE_RETURN_IF_ERROR(Vp8Error(WebPGetFeatures(data, size, &features), "header"));
  info->format = Format::kWebp;
  info->width = features.width;
  info->height = features.height;
  info->has_alpha = features.has_alpha != 0;
  info->has_icc = (Vp8xFlags(data, size) & kIccpFlag) != 0;
  info->subsampling = (features.format == 1 && !features.has_alpha && !features.has_animation)
                          ? Subsampling::k420
                          : Subsampling::kNone;
  return Status::Ok();
}

// ---- Encoder ---------------------------------------------------------------

int WriteToVector(const uint8_t* data, size_t data_size, const WebPPicture* picture) {
  auto* out = static_cast<std::vector<uint8_t>*>(picture->custom_ptr);
  try {
    out->insert(out->end(), data, data + data_size);
  } catch (...) {
    return 0;  // libwebp reports VP8_ENC_ERROR_BAD_WRITE
  }
  return 1;
}

Status EncodeError(const WebPPicture& picture) {
  switch (picture.error_code) {
    case VP8_ENC_ERROR_OUT_OF_MEMORY:
    case VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY:
    case VP8_ENC_ERROR_BAD_WRITE:
      return Internal("out of memory encoding WebP");
    case VP8_ENC_ERROR_BAD_DIMENSION:
      return InvalidArgument("WebP dimensions out of range (max 16383)");
    default:
      return Internal("WebP encode failed (error " + std::to_string(picture.error_code) + ")");
  }
}

bool SameSize(const Plane& p, int w, int h) {
  return !p.empty() && p.width() == w && p.height() == h;
}

Status EncodeWebpImpl(const Image& image, const EncodeParams& params, std::vector<uint8_t>* out) {
  out->clear();
  const int w = image.width;
  const int h = image.height;
  if (w <= 0 || h <= 0) return InvalidArgument("empty image");
  if (w > WEBP_MAX_DIMENSION || h > WEBP_MAX_DIMENSION) {
    return InvalidArgument("WebP dimensions out of range (max 16383)");
  }
  const int cw = (w + 1) / 2;
  const int ch = (h + 1) / 2;
  const Plane* p = image.planes;
  if (!SameSize(p[0], w, h)) return InvalidArgument("first plane size differs from the image");
  if (image.model == ColorModel::kRgb && !(SameSize(p[1], w, h) && SameSize(p[2], w, h))) {
    return InvalidArgument("RGB planes must be full size");
  }
  if (image.model == ColorModel::kYCbCr && !(SameSize(p[1], cw, ch) && SameSize(p[2], cw, ch))) {
    return InvalidArgument("WebP needs 4:2:0 chroma planes");
  }
  const bool alpha = image.has_alpha();
  if (alpha && !SameSize(image.alpha, w, h)) {
    return InvalidArgument("alpha plane size differs from the image");
  }

  WebPConfig config;
  if (!WebPConfigInit(&config)) return Internal("libwebp version mismatch");
  config.quality = static_cast<float>(params.quality < 0     ? 0
                                      : params.quality > 100 ? 100
                                                             : params.quality);
  int method = params.effort < 0 ? 4 : params.effort;
  config.method = method > 6 ? 6 : method;
  config.lossless = params.lossless ? 1 : 0;
  config.exact = 0;
  config.thread_level = 0;
  if (!WebPValidateConfig(&config)) return InvalidArgument("WebP encoder settings invalid");

  WebPPicture picture;
  if (!WebPPictureInit(&picture)) return Internal("libwebp version mismatch");
  PictureGuard picture_guard{&picture};
  picture.width = w;
  picture.height = h;
  // Lossless works on ARGB, and so does RGB input (libwebp does its own
  // RGB->YUV for lossy). YCbCr lossy input goes in as YUV planes directly.
  const bool use_argb =
      image.model == ColorModel::kRgb || (params.lossless && image.model == ColorModel::kGray);
  picture.use_argb = use_argb ? 1 : 0;
  picture.colorspace = alpha ? WEBP_YUV420A : WEBP_YUV420;
  if (!WebPPictureAlloc(&picture)) return Internal("out of memory encoding WebP");

  if (use_argb) {
    // libyuv "ARGB" bytes (B,G,R,A) are WebP's 0xAARRGGBB words on little endian.
    const Plane& r = p[0];
    const Plane& g = image.model == ColorModel::kGray ? p[0] : p[1];
    const Plane& b = image.model == ColorModel::kGray ? p[0] : p[2];
    libyuv::MergeARGBPlane(r.data(), r.stride(), g.data(), g.stride(), b.data(), b.stride(),
                           alpha ? image.alpha.data() : nullptr, alpha ? image.alpha.stride() : 0,
                           reinterpret_cast<uint8_t*>(picture.argb), picture.argb_stride * 4, w, h);
  } else {
    // Our full-range planes become libwebp's limited-range ones on the copy
    // into the picture: one table lookup per sample, at the output size.
    ApplyLut(kLumaToLimited, p[0].data(), p[0].stride(), picture.y, picture.y_stride, w, h);
    if (image.model == ColorModel::kYCbCr) {
      ApplyLut(kChromaToLimited, p[1].data(), p[1].stride(), picture.u, picture.uv_stride, cw, ch);
      ApplyLut(kChromaToLimited, p[2].data(), p[2].stride(), picture.v, picture.uv_stride, cw, ch);
    } else {  // kGray: neutral chroma
      libyuv::SetPlane(picture.u, picture.uv_stride, cw, ch, 128);
      libyuv::SetPlane(picture.v, picture.uv_stride, cw, ch, 128);
    }
    if (alpha) {
      libyuv::CopyPlane(image.alpha.data(), image.alpha.stride(), picture.a, picture.a_stride, w,
                        h);
    }
  }

  std::vector<uint8_t> bitstream;
  const bool embed_icc = params.icc != nullptr && !params.icc->empty();
  std::vector<uint8_t>* sink = embed_icc ? &bitstream : out;
  picture.writer = WriteToVector;
  picture.custom_ptr = sink;
  if (!WebPEncode(&config, &picture)) {
    out->clear();
    return EncodeError(picture);
  }
  if (!embed_icc) return Status::Ok();

  WebPData image_data{bitstream.data(), bitstream.size()};
  std::unique_ptr<WebPMux, MuxDeleter> mux(WebPMuxCreate(&image_data, 0));
  if (!mux) return Internal("WebPMuxCreate failed");
  WebPData icc_data{params.icc->data(), params.icc->size()};
  if (WebPMuxSetChunk(mux.get(), "ICCP", &icc_data, 0) != WEBP_MUX_OK) {
    return Internal("WebP ICCP chunk rejected");
  }
  WebPData assembled;
  WebPDataInit(&assembled);
  WebPDataGuard assembled_guard{&assembled};
  if (WebPMuxAssemble(mux.get(), &assembled) != WEBP_MUX_OK) {
    return Internal("WebP mux assemble failed");
  }
  out->assign(assembled.bytes, assembled.bytes + assembled.size);
  return Status::Ok();
}

}  // namespace

Status DecodeWebp(const uint8_t* data, size_t size, const Limits& limits, Image* image) {
  if (data == nullptr || image == nullptr) return InvalidArgument("null argument");
  Status status =
      Guard("decoding WebP", [&] { return DecodeWebpImpl(data, size, limits, image); });
  if (!status.ok()) *image = Image();
  return status;
}

Status ProbeWebp(const uint8_t* data, size_t size, ImageInfo* info) {
  if (data == nullptr || info == nullptr) return InvalidArgument("null argument");
  return Guard("probing WebP", [&] { return ProbeWebpImpl(data, size, info); });
}

Status EncodeWebp(const Image& image, const EncodeParams& params, std::vector<uint8_t>* out) {
  if (out == nullptr) return InvalidArgument("null argument");
  Status status = Guard("encoding WebP", [&] { return EncodeWebpImpl(image, params, out); });
  if (!status.ok()) out->clear();
  return status;
}

}  // namespace appliance
