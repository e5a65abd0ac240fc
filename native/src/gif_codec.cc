// GIF decode with giflib's low-level API: the records up to the first image
// are read one at a time (DGifGetRecordType / DGifGetExtension /
// DGifGetImageDesc / DGifGetLine), so an animation with many frames costs one
// frame, and nothing like DGifSlurp ever holds the whole file's rasters.
#include <gif_lib.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "codecs.h"
#include "guard.h"
#include "plane_ops.h"

namespace appliance {
namespace {

struct MemoryReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

int ReadFromMemory(GifFileType* gif, GifByteType* buf, int len) {
  auto* reader = static_cast<MemoryReader*>(gif->UserData);
  if (len <= 0 || reader->pos >= reader->size) return 0;
  size_t n = reader->size - reader->pos;
  if (n > static_cast<size_t>(len)) n = static_cast<size_t>(len);
  std::memcpy(buf, reader->data + reader->pos, n);
  reader->pos += n;
  return static_cast<int>(n);  // giflib treats a short read as an error
}

struct GifCloser {
  void operator()(GifFileType* gif) const {
    int error = 0;
    DGifCloseFile(gif, &error);
  }
};
using GifPtr = std::unique_ptr<GifFileType, GifCloser>;

Status GifError(int code, const char* what) {
  switch (code) {
    case D_GIF_ERR_NOT_GIF_FILE:
      return Unsupported("not a GIF file");
    case D_GIF_ERR_NOT_ENOUGH_MEM:
      return Internal("out of memory decoding GIF");
    case D_GIF_ERR_READ_FAILED:
    case D_GIF_ERR_EOF_TOO_SOON:
      return Corrupt(std::string("GIF truncated (") + what + ")");
    default: {
      const char* text = GifErrorString(code);  // null for codes it does not know
      return Corrupt(std::string("GIF ") + what + ": " +
                     (text != nullptr ? text : "error " + std::to_string(code)));
    }
  }
}

bool HasGifSignature(const uint8_t* data, size_t size) {
  return size >= 6 && (std::memcmp(data, "GIF87a", 6) == 0 || std::memcmp(data, "GIF89a", 6) == 0);
}

Status Open(const uint8_t* data, size_t size, MemoryReader* reader, GifPtr* gif) {
  if (!HasGifSignature(data, size)) return Unsupported("not a GIF file");
  *reader = MemoryReader{data, size, 0};
  int error = 0;
  gif->reset(DGifOpen(reader, ReadFromMemory, &error));  // reads the screen descriptor
  if (!*gif) return GifError(error, "header");
  return Status::Ok();
}

// What the records before the first image said, and where it sits.
struct FirstFrame {
  int transparent = -1;  // palette index, or -1
  int left = 0, top = 0, width = 0, height = 0;
  int canvas_width = 0, canvas_height = 0;
};

// Reads records up to and including the first image descriptor.
Status ReadToFirstImage(GifFileType* gif, FirstFrame* frame) {
  for (;;) {
    GifRecordType type = UNDEFINED_RECORD_TYPE;
    if (DGifGetRecordType(gif, &type) == GIF_ERROR) return GifError(gif->Error, "records");
    if (type == TERMINATE_RECORD_TYPE) return Corrupt("GIF has no image");
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* ext = nullptr;
      if (DGifGetExtension(gif, &code, &ext) == GIF_ERROR) return GifError(gif->Error, "extension");
      // ext[0] is the sub-block's length. Graphic Control: packed flags,
      // delay (2 bytes), transparent index. The last one before the image wins.
      if (code == GRAPHICS_EXT_FUNC_CODE && ext != nullptr && ext[0] >= 4) {
        frame->transparent = (ext[1] & 0x01) ? ext[4] : -1;
      }
      while (ext != nullptr) {
        if (DGifGetExtensionNext(gif, &ext) == GIF_ERROR) return GifError(gif->Error, "extension");
      }
      continue;
    }
    if (type == IMAGE_DESC_RECORD_TYPE) break;
    return Corrupt("GIF record type invalid");
  }
  if (DGifGetImageDesc(gif) == GIF_ERROR) return GifError(gif->Error, "image descriptor");
  frame->left = gif->Image.Left;
  frame->top = gif->Image.Top;
  frame->width = gif->Image.Width;
  frame->height = gif->Image.Height;
  if (frame->left < 0 || frame->top < 0 || frame->width < 0 || frame->height < 0) {
    return Corrupt("GIF frame rectangle invalid");
  }
  // The logical screen; a file that leaves it at zero gets the frame's extent.
  frame->canvas_width = gif->SWidth > 0 ? gif->SWidth : frame->left + frame->width;
  frame->canvas_height = gif->SHeight > 0 ? gif->SHeight : frame->top + frame->height;
  if (frame->canvas_width <= 0 || frame->canvas_height <= 0) return Corrupt("GIF screen empty");
  return Status::Ok();
}

Status DecodeGifImpl(const uint8_t* data, size_t size, const Limits& limits, Image* image) {
  *image = Image();
  MemoryReader reader;
  GifPtr gif;
  APPLIANCE_RETURN_IF_ERROR(Open(data, size, &reader, &gif));
  FirstFrame frame;
  APPLIANCE_RETURN_IF_ERROR(ReadToFirstImage(gif.get(), &frame));
  const int cw = frame.canvas_width;
  const int ch = frame.canvas_height;
  APPLIANCE_RETURN_IF_ERROR(
      CheckSourceSize(static_cast<uint64_t>(cw), static_cast<uint64_t>(ch), limits));
  // The frame's LZW stream is decoded whole even where it is clipped: bound it too.
  if (frame.width > 0 && frame.height > 0) {
    APPLIANCE_RETURN_IF_ERROR(CheckSourceSize(static_cast<uint64_t>(frame.width),
                                              static_cast<uint64_t>(frame.height), limits));
  }

  const ColorMapObject* map = gif->Image.ColorMap != nullptr ? gif->Image.ColorMap : gif->SColorMap;
  if (map == nullptr || map->Colors == nullptr || map->ColorCount <= 0) {
    return Corrupt("GIF has no colour table");
  }
  // 256-entry tables, so any index an LZW stream produces is safe to look up;
  // indices past the map are black.
  uint8_t pal_r[256] = {}, pal_g[256] = {}, pal_b[256] = {}, pal_a[256];
  std::memset(pal_a, 255, sizeof(pal_a));
  const int count = map->ColorCount < 256 ? map->ColorCount : 256;
  for (int i = 0; i < count; ++i) {
    pal_r[i] = map->Colors[i].Red;
    pal_g[i] = map->Colors[i].Green;
    pal_b[i] = map->Colors[i].Blue;
  }
  const bool transparent = frame.transparent >= 0 && frame.transparent < 256;
  if (transparent) {
    pal_r[frame.transparent] = pal_g[frame.transparent] = pal_b[frame.transparent] = 0;
    pal_a[frame.transparent] = 0;
  }

  image->model = ColorModel::kRgb;
  image->width = cw;
  image->height = ch;
  Plane* p = image->planes;
  for (int i = 0; i < 3; ++i) APPLIANCE_RETURN_IF_ERROR(p[i].Allocate(cw, ch));
  if (transparent) APPLIANCE_RETURN_IF_ERROR(image->alpha.Allocate(cw, ch));
  // The background shows only where the frame does not cover the screen.
  const bool covered = frame.left == 0 && frame.top == 0 && frame.width >= cw && frame.height >= ch;
  if (covered) {
    // Every pixel is written below.
  } else if (transparent) {
    image->alpha.Fill(0);
    for (int i = 0; i < 3; ++i) p[i].Fill(0);
  } else {
    uint8_t bg[3] = {0, 0, 0};
    const ColorMapObject* global = gif->SColorMap;
    if (global != nullptr && global->Colors != nullptr && gif->SBackGroundColor >= 0 &&
        gif->SBackGroundColor < global->ColorCount) {
      const GifColorType& c = global->Colors[gif->SBackGroundColor];
      bg[0] = c.Red;
      bg[1] = c.Green;
      bg[2] = c.Blue;
    }
    for (int i = 0; i < 3; ++i) p[i].Fill(bg[i]);
  }

  if (frame.width > 0 && frame.height > 0) {
    std::unique_ptr<GifPixelType[]> line(new (std::nothrow) GifPixelType[frame.width]);
    if (!line) return Internal("out of memory decoding GIF");
    // Columns of the frame that land on the canvas.
    const int x0 = frame.left;
    const int visible_w = x0 >= cw ? 0 : (frame.width < cw - x0 ? frame.width : cw - x0);
    static constexpr int kPassStart[4] = {0, 4, 2, 1};
    static constexpr int kPassStep[4] = {8, 8, 4, 2};
    int pass = 0;
    int next = 0;  // the frame row the next line belongs to
    for (int i = 0; i < frame.height; ++i) {
      int y = i;
      if (gif->Image.Interlace) {
        while (next >= frame.height) {
          ++pass;
          if (pass >= 4) return Corrupt("GIF interlace overflow");
          next = kPassStart[pass];
        }
        y = next;
        next += kPassStep[pass];
      }
      const int cy = frame.top + y;
      // Rows come in order when not interlaced: past the canvas, stop reading.
      if (!gif->Image.Interlace && cy >= ch) break;
      if (DGifGetLine(gif.get(), line.get(), frame.width) == GIF_ERROR) {
        return GifError(gif->Error, "image data");
      }
      if (cy >= ch || visible_w <= 0) continue;
      const GifPixelType* src = line.get();
      uint8_t* r = p[0].row(cy) + x0;
      uint8_t* g = p[1].row(cy) + x0;
      uint8_t* b = p[2].row(cy) + x0;
      if (transparent) {
        uint8_t* a = image->alpha.row(cy) + x0;
        for (int x = 0; x < visible_w; ++x) {
          const GifPixelType v = src[x];
          r[x] = pal_r[v];
          g[x] = pal_g[v];
          b[x] = pal_b[v];
          a[x] = pal_a[v];
        }
      } else {
        for (int x = 0; x < visible_w; ++x) {
          const GifPixelType v = src[x];
          r[x] = pal_r[v];
          g[x] = pal_g[v];
          b[x] = pal_b[v];
        }
      }
    }
  }

  if (transparent && IsOpaque(image->alpha)) image->alpha = Plane();
  return Status::Ok();
}

Status ProbeGifImpl(const uint8_t* data, size_t size, ImageInfo* info) {
  *info = ImageInfo();
  MemoryReader reader;
  GifPtr gif;
  APPLIANCE_RETURN_IF_ERROR(Open(data, size, &reader, &gif));
  FirstFrame frame;
  APPLIANCE_RETURN_IF_ERROR(ReadToFirstImage(gif.get(), &frame));
  info->format = Format::kGif;
  info->width = frame.canvas_width;
  info->height = frame.canvas_height;
  info->has_alpha = frame.transparent >= 0;
  info->progressive = gif->Image.Interlace;
  info->subsampling = Subsampling::kNone;
  return Status::Ok();
}

}  // namespace

Status DecodeGif(const uint8_t* data, size_t size, const Limits& limits, Image* image) {
  if (data == nullptr || image == nullptr) return InvalidArgument("null argument");
  Status status =
      Guard("decoding GIF", [&] { return DecodeGifImpl(data, size, limits, image); });
  if (!status.ok()) *image = Image();
  return status;
}

Status ProbeGif(const uint8_t* data, size_t size, ImageInfo* info) {
  if (data == nullptr || info == nullptr) return InvalidArgument("null argument");
  return Guard("probing GIF", [&] { return ProbeGifImpl(data, size, info); });
}

}  // namespace appliance
