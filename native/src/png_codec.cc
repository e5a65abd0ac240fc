// PNG decode and encode with libspng.
//
// Decoding reads row by row (SPNG_DECODE_PROGRESSIVE) and splits each
// interleaved row straight into the planes, so a non-interlaced PNG never
// holds a whole interleaved copy of the image; an Adam7 file is deinterlaced
// into one interleaved buffer first, because its rows arrive in seven passes.
// Encoding interleaves one row at a time and streams the compressed bytes into
// the output vector.
#include <spng.h>

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

namespace appliance {
namespace {

struct SpngCtxDeleter {
  void operator()(spng_ctx* ctx) const { spng_ctx_free(ctx); }
};
using SpngCtxPtr = std::unique_ptr<spng_ctx, SpngCtxDeleter>;

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

// Ancillary chunks libspng keeps in memory (text, iCCP, eXIf...). A real ICC
// profile is under 1 MB; anything bigger is hostile or junk.
constexpr size_t kMaxChunkBytes = size_t{16} << 20;
constexpr size_t kMaxChunkCacheBytes = size_t{32} << 20;

Status SpngError(int err, const char* what) {
  switch (err) {
    case SPNG_ESIGNATURE:
      return Unsupported("not a PNG file");
    case SPNG_EUSER_WIDTH:
    case SPNG_EUSER_HEIGHT:
      return TooLarge("PNG dimensions over the limit");
    case SPNG_ECHUNK_LIMITS:
      return TooLarge("PNG metadata chunk over the limit");
    case SPNG_EMEM:
      return Internal("out of memory decoding PNG");
    default:
      return Corrupt(std::string("PNG ") + what + ": " + spng_strerror(err));
  }
}

// Creates a decoder over `data` with our limits and reads the IHDR.
Status OpenDecoder(const uint8_t* data, size_t size, const Limits& limits, SpngCtxPtr* ctx_out,
                   spng_ihdr* ihdr) {
  if (size < sizeof(kPngSignature) ||
      std::memcmp(data, kPngSignature, sizeof(kPngSignature)) != 0) {
    return Unsupported("not a PNG file");
  }
  SpngCtxPtr ctx(spng_ctx_new(0));
  if (!ctx) return Internal("spng_ctx_new failed");
  uint32_t max_dim = limits.max_dimension > 0 ? static_cast<uint32_t>(limits.max_dimension) : 1;
  if (max_dim > 0x7FFFFFFFu) max_dim = 0x7FFFFFFFu;
  if (spng_set_image_limits(ctx.get(), max_dim, max_dim) != 0 ||
      spng_set_chunk_limits(ctx.get(), kMaxChunkBytes, kMaxChunkCacheBytes) != 0) {
    return Internal("spng limits rejected");
  }
  int err = spng_set_png_buffer(ctx.get(), data, size);
  if (err != 0) return SpngError(err, "buffer");
  err = spng_get_ihdr(ctx.get(), ihdr);  // reads the signature and IHDR only
  if (err != 0) return SpngError(err, "header");
  APPLIANCE_RETURN_IF_ERROR(CheckSourceSize(ihdr->width, ihdr->height, limits));
  *ctx_out = std::move(ctx);
  return Status::Ok();
}

// How the decoded rows are laid out and where they go.
enum class RowLayout {
  kG8,    // gray, one byte: decoded straight into planes[0]
  kGA8,   // gray + alpha, two bytes
  kGA16,  // gray + alpha, two host-endian uint16
  kRgb8,
  kRgba8,
};

int BytesPerPixel(RowLayout layout) {
  switch (layout) {
    case RowLayout::kG8:
      return 1;
    case RowLayout::kGA8:
      return 2;
    case RowLayout::kGA16:
      return 4;
    case RowLayout::kRgb8:
      return 3;
    case RowLayout::kRgba8:
      return 4;
  }
  return 4;
}

// Splits `rows` interleaved rows starting at `src` into the image's planes at row `y`.
void SplitRows(RowLayout layout, const uint8_t* src, int src_stride, int y, int rows,
               Image* image) {
  const int w = image->width;
  switch (layout) {
    case RowLayout::kG8:
      break;  // decoded in place
    case RowLayout::kGA8:
      libyuv::SplitUVPlane(src, src_stride, image->planes[0].row(y), image->planes[0].stride(),
                           image->alpha.row(y), image->alpha.stride(), w, rows);
      break;
    case RowLayout::kGA16:
      for (int r = 0; r < rows; ++r) {
        const uint8_t* s = src + static_cast<ptrdiff_t>(r) * src_stride;
        uint8_t* g = image->planes[0].row(y + r);
        uint8_t* a = image->alpha.row(y + r);
        for (int x = 0; x < w; ++x) {
          uint16_t v[2];
          std::memcpy(v, s + 4 * x, 4);
          g[x] = static_cast<uint8_t>(v[0] >> 8);  // the high byte, as libspng does for RGB8
          a[x] = static_cast<uint8_t>(v[1] >> 8);
        }
      }
      break;
    case RowLayout::kRgb8:
      libyuv::SplitRGBPlane(src, src_stride, image->planes[0].row(y), image->planes[0].stride(),
                            image->planes[1].row(y), image->planes[1].stride(),
                            image->planes[2].row(y), image->planes[2].stride(), w, rows);
      break;
    case RowLayout::kRgba8:
      // libyuv's "ARGB" is B,G,R,A in memory; our bytes are R,G,B,A, so its
      // "b" destination takes red and its "r" destination takes blue.
      libyuv::SplitARGBPlane(src, src_stride, image->planes[2].row(y), image->planes[2].stride(),
                             image->planes[1].row(y), image->planes[1].stride(),
                             image->planes[0].row(y), image->planes[0].stride(),
                             image->alpha.row(y), image->alpha.stride(), w, rows);
      break;
  }
}

Status DecodePngImpl(const uint8_t* data, size_t size, const Limits& limits, Image* image) {
  *image = Image();
  SpngCtxPtr ctx;
  spng_ihdr ihdr{};
  APPLIANCE_RETURN_IF_ERROR(OpenDecoder(data, size, limits, &ctx, &ihdr));

  spng_trns trns{};
  int err = spng_get_trns(ctx.get(), &trns);  // reads every chunk before IDAT
  if (err != 0 && err != SPNG_ECHUNKAVAIL) return SpngError(err, "chunks");
  const bool has_trns = err == 0;

  spng_iccp iccp{};
  err = spng_get_iccp(ctx.get(), &iccp);
  if (err == 0 && iccp.profile != nullptr && iccp.profile_len > 0) {
    image->icc.assign(reinterpret_cast<const uint8_t*>(iccp.profile),
                      reinterpret_cast<const uint8_t*>(iccp.profile) + iccp.profile_len);
  } else if (err != 0 && err != SPNG_ECHUNKAVAIL) {
    return SpngError(err, "iCCP");
  }

  // Pick the libspng output format whose rows split most directly into planes.
  int fmt = SPNG_FMT_RGB8;
  int flags = 0;
  RowLayout layout = RowLayout::kRgb8;
  switch (ihdr.color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE:
      if (ihdr.bit_depth == 16) {
        fmt = SPNG_FMT_GA16;
        layout = RowLayout::kGA16;
      } else if (has_trns) {
        fmt = SPNG_FMT_GA8;
        layout = RowLayout::kGA8;
      } else {
        fmt = SPNG_FMT_G8;
        layout = RowLayout::kG8;
      }
      if (has_trns) flags |= SPNG_DECODE_TRNS;
      break;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA:
      // libspng offers no GA8 conversion for this type: take the file's own
      // layout (GA8, or GA16 in host order) and reduce it ourselves.
      fmt = SPNG_FMT_PNG;
      layout = ihdr.bit_depth == 16 ? RowLayout::kGA16 : RowLayout::kGA8;
      break;
    case SPNG_COLOR_TYPE_TRUECOLOR:
    case SPNG_COLOR_TYPE_INDEXED:
      if (has_trns) {
        fmt = SPNG_FMT_RGBA8;
        layout = RowLayout::kRgba8;
        flags |= SPNG_DECODE_TRNS;
      }
      break;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA:
      fmt = SPNG_FMT_RGBA8;
      layout = RowLayout::kRgba8;
      break;
    default:
      return Corrupt("PNG colour type invalid");
  }
  const bool gray =
      layout == RowLayout::kG8 || layout == RowLayout::kGA8 || layout == RowLayout::kGA16;
  const bool alpha = layout != RowLayout::kG8 && layout != RowLayout::kRgb8;

  const int w = static_cast<int>(ihdr.width);
  const int h = static_cast<int>(ihdr.height);
  image->model = gray ? ColorModel::kGray : ColorModel::kRgb;
  image->width = w;
  image->height = h;
  for (int i = 0; i < image->plane_count(); ++i) {
    APPLIANCE_RETURN_IF_ERROR(image->planes[i].Allocate(w, h));
  }
  if (alpha) APPLIANCE_RETURN_IF_ERROR(image->alpha.Allocate(w, h));

  // w <= 65535 and at most 4 bytes a pixel: no overflow.
  const size_t row_bytes = static_cast<size_t>(w) * BytesPerPixel(layout);
  size_t decoded_bytes = 0;
  err = spng_decoded_image_size(ctx.get(), fmt, &decoded_bytes);
  if (err != 0) return SpngError(err, "size");
  if (decoded_bytes / static_cast<size_t>(h) != row_bytes) return Internal("PNG row size mismatch");

  const bool interlaced = ihdr.interlace_method != SPNG_INTERLACE_NONE;
  // Interlaced rows come back in seven passes, each written into its final
  // row, so they need every row kept until the end; otherwise one row will do.
  std::unique_ptr<uint8_t[]> buffer;
  if (layout != RowLayout::kG8) {
    size_t buffer_bytes = row_bytes;
    if (interlaced && !CheckedMul(row_bytes, static_cast<size_t>(h), &buffer_bytes)) {
      return TooLarge("PNG too large");
    }
    buffer.reset(new (std::nothrow) uint8_t[buffer_bytes]);
    if (!buffer) return Internal("out of memory decoding PNG");
  }

  err = spng_decode_image(ctx.get(), nullptr, 0, fmt, flags | SPNG_DECODE_PROGRESSIVE);
  if (err != 0) return SpngError(err, "decode");
  for (;;) {
    spng_row_info info{};
    err = spng_get_row_info(ctx.get(), &info);
    if (err != 0) break;
    const int y = static_cast<int>(info.row_num);
    if (y < 0 || y >= h) return Internal("PNG row out of range");
    uint8_t* out;
    if (layout == RowLayout::kG8) {
      out = image->planes[0].row(y);
    } else if (interlaced) {
      out = buffer.get() + static_cast<size_t>(y) * row_bytes;
    } else {
      out = buffer.get();
    }
    err = spng_decode_row(ctx.get(), out, row_bytes);
    if (err != 0 && err != SPNG_EOI) break;
    if (!interlaced) SplitRows(layout, out, static_cast<int>(row_bytes), y, 1, image);
    if (err == SPNG_EOI) break;
  }
  if (err != SPNG_EOI) return SpngError(err, "image data");
  if (interlaced) SplitRows(layout, buffer.get(), static_cast<int>(row_bytes), 0, h, image);

  if (alpha && IsOpaque(image->alpha)) image->alpha = Plane();
  return Status::Ok();
}

Status ProbePngImpl(const uint8_t* data, size_t size, ImageInfo* info) {
  *info = ImageInfo();
  // Probing reads the chunks before IDAT only: any size is reported, none refused.
  if (size < sizeof(kPngSignature) ||
      std::memcmp(data, kPngSignature, sizeof(kPngSignature)) != 0) {
    return Unsupported("not a PNG file");
  }
  SpngCtxPtr ctx(spng_ctx_new(0));
  if (!ctx) return Internal("spng_ctx_new failed");
  if (spng_set_chunk_limits(ctx.get(), kMaxChunkBytes, kMaxChunkCacheBytes) != 0) {
    return Internal("spng limits rejected");
  }
  int err = spng_set_png_buffer(ctx.get(), data, size);
  if (err != 0) return SpngError(err, "buffer");
  spng_ihdr ihdr{};
  err = spng_get_ihdr(ctx.get(), &ihdr);
  if (err != 0) return SpngError(err, "header");
  info->format = Format::kPng;
  info->width = static_cast<int>(ihdr.width);
  info->height = static_cast<int>(ihdr.height);
  info->subsampling = Subsampling::kNone;
  info->progressive = ihdr.interlace_method != SPNG_INTERLACE_NONE;
  spng_trns trns{};
  err = spng_get_trns(ctx.get(), &trns);
  if (err != 0 && err != SPNG_ECHUNKAVAIL) return SpngError(err, "chunks");
  info->has_alpha = err == 0 || ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ||
                    ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA;
  spng_iccp iccp{};
  info->has_icc = spng_get_iccp(ctx.get(), &iccp) == 0;
  return Status::Ok();
}

// Appends what libspng writes to a std::vector; no exception leaves it.
struct VectorSink {
  std::vector<uint8_t>* out;
  bool failed = false;
};

int WriteToVector(spng_ctx* /*ctx*/, void* user, void* src, size_t length) {
  auto* sink = static_cast<VectorSink*>(user);
  try {
    const uint8_t* p = static_cast<const uint8_t*>(src);
    sink->out->insert(sink->out->end(), p, p + length);
  } catch (...) {
    sink->failed = true;
    return SPNG_IO_ERROR;
  }
  return 0;
}

// Checks that every plane the encoders read matches the image size.
Status CheckPlanes(const Image& image) {
  if (image.width <= 0 || image.height <= 0) return InvalidArgument("empty image");
  for (int i = 0; i < image.plane_count(); ++i) {
    const Plane& p = image.planes[i];
    if (p.empty() || p.width() != image.width || p.height() != image.height) {
      return InvalidArgument("PNG encoder needs full-size planes");
    }
  }
  if (image.has_alpha() &&
      (image.alpha.width() != image.width || image.alpha.height() != image.height)) {
    return InvalidArgument("alpha plane size differs from the image");
  }
  return Status::Ok();
}

Status EncodePngImpl(const Image& image, const EncodeParams& params, std::vector<uint8_t>* out) {
  out->clear();
  if (image.model == ColorModel::kYCbCr) return InvalidArgument("PNG encoder needs kRgb or kGray");
  APPLIANCE_RETURN_IF_ERROR(CheckPlanes(image));
  const bool gray = image.model == ColorModel::kGray;
  const bool alpha = image.has_alpha();
  const int w = image.width;
  const int h = image.height;

  SpngCtxPtr ctx(spng_ctx_new(SPNG_CTX_ENCODER));
  if (!ctx) return Internal("spng_ctx_new failed");
  VectorSink sink{out};
  int err = spng_set_png_stream(ctx.get(), WriteToVector, &sink);
  if (err != 0) return Internal(std::string("spng stream: ") + spng_strerror(err));

  spng_ihdr ihdr{};
  ihdr.width = static_cast<uint32_t>(w);
  ihdr.height = static_cast<uint32_t>(h);
  ihdr.bit_depth = 8;
  ihdr.color_type = gray ? (alpha ? SPNG_COLOR_TYPE_GRAYSCALE_ALPHA : SPNG_COLOR_TYPE_GRAYSCALE)
                         : (alpha ? SPNG_COLOR_TYPE_TRUECOLOR_ALPHA : SPNG_COLOR_TYPE_TRUECOLOR);
  err = spng_set_ihdr(ctx.get(), &ihdr);
  if (err != 0) return InvalidArgument(std::string("PNG header: ") + spng_strerror(err));
  err = spng_set_option(ctx.get(), SPNG_IMG_COMPRESSION_LEVEL, 6);
  if (err != 0) return Internal(std::string("spng option: ") + spng_strerror(err));

  if (params.icc != nullptr && !params.icc->empty()) {
    spng_iccp iccp{};
    std::memcpy(iccp.profile_name, "icc", 4);
    iccp.profile_len = params.icc->size();
    // libspng keeps the pointer (it does not copy or free a profile set by the
    // caller); params.icc outlives the encode.
    iccp.profile = const_cast<char*>(reinterpret_cast<const char*>(params.icc->data()));
    err = spng_set_iccp(ctx.get(), &iccp);
    if (err != 0) return InvalidArgument(std::string("PNG iCCP: ") + spng_strerror(err));
  }

  const int channels = (gray ? 1 : 3) + (alpha ? 1 : 0);
  const size_t row_bytes = static_cast<size_t>(w) * channels;
  std::unique_ptr<uint8_t[]> row;
  if (channels > 1) {
    row.reset(new (std::nothrow) uint8_t[row_bytes]);
    if (!row) return Internal("out of memory encoding PNG");
  }

  err = spng_encode_image(ctx.get(), nullptr, 0, SPNG_FMT_PNG,
                          SPNG_ENCODE_PROGRESSIVE | SPNG_ENCODE_FINALIZE);
  if (err != 0) {
    if (sink.failed) return Internal("out of memory encoding PNG");
    return Internal(std::string("PNG encode: ") + spng_strerror(err));
  }
  const Plane* p = image.planes;
  for (int y = 0; y < h; ++y) {
    const uint8_t* src;
    if (gray && !alpha) {
      src = p[0].row(y);
    } else if (gray) {
      libyuv::MergeUVPlane(p[0].row(y), p[0].stride(), image.alpha.row(y), image.alpha.stride(),
                           row.get(), static_cast<int>(row_bytes), w, 1);
      src = row.get();
    } else if (alpha) {
      // libyuv writes its "ARGB" as B,G,R,A: swap red and blue to get R,G,B,A.
      libyuv::MergeARGBPlane(p[2].row(y), p[2].stride(), p[1].row(y), p[1].stride(), p[0].row(y),
                             p[0].stride(), image.alpha.row(y), image.alpha.stride(), row.get(),
                             static_cast<int>(row_bytes), w, 1);
      src = row.get();
    } else {
      libyuv::MergeRGBPlane(p[0].row(y), p[0].stride(), p[1].row(y), p[1].stride(), p[2].row(y),
                            p[2].stride(), row.get(), static_cast<int>(row_bytes), w, 1);
      src = row.get();
    }
    err = spng_encode_row(ctx.get(), src, row_bytes);
    if (err != 0 && !(err == SPNG_EOI && y == h - 1)) {
      if (sink.failed) return Internal("out of memory encoding PNG");
      return Internal(std::string("PNG encode: ") + spng_strerror(err));
    }
  }
  if (sink.failed) return Internal("out of memory encoding PNG");
  return Status::Ok();
}

}  // namespace

Status DecodePng(const uint8_t* data, size_t size, const Limits& limits, Image* image) {
  if (data == nullptr || image == nullptr) return InvalidArgument("null argument");
  Status status =
      Guard("decoding PNG", [&] { return DecodePngImpl(data, size, limits, image); });
  if (!status.ok()) *image = Image();
  return status;
}

Status ProbePng(const uint8_t* data, size_t size, ImageInfo* info) {
  if (data == nullptr || info == nullptr) return InvalidArgument("null argument");
  return Guard("probing PNG", [&] { return ProbePngImpl(data, size, info); });
}

Status EncodePng(const Image& image, const EncodeParams& params, std::vector<uint8_t>* out) {
  if (out == nullptr) return InvalidArgument("null argument");
  Status status = Guard("encoding PNG", [&] { return EncodePngImpl(image, params, out); });
  if (!status.ok()) out->clear();
  return status;
}

}  // namespace appliance
