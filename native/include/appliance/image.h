// Planar images: the one in-memory form every decoder produces and every encoder reads.
//
// A colour image is three planes, either Y/Cb/Cr (full-range BT.601, as JFIF stores
// it) or R/G/B, plus an optional alpha plane. Each plane has its own size, so a
// decoder hands over its chroma planes at whatever subsampling the file has (4:2:0,
// 4:2:2, 4:4:0, 4:1:1, or scaled by the DCT) and the resizer scales every plane
// straight to the size the encoder wants. Pixels are never converted to packed RGB
// on the JPEG path.
#ifndef APPLIANCE_IMAGE_H_
#define APPLIANCE_IMAGE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "appliance/status.h"

namespace appliance {

// One 8-bit plane. Owns its pixels, or views another plane's (see View()).
class Plane {
 public:
  Plane() = default;
  Plane(Plane&&) = default;
  Plane& operator=(Plane&&) = default;
  Plane(const Plane&) = delete;
  Plane& operator=(const Plane&) = delete;

  // Allocates width x height (rows padded to `stride`, at least `width`, and
  // `rows` >= height rows for decoders that write whole blocks). Fails on
  // overflow or when memory is short; never throws.
  Status Allocate(int width, int height, int min_stride = 0, int min_rows = 0);

  // Sets every visible pixel to `value`.
  void Fill(uint8_t value);

  bool empty() const { return data_ == nullptr; }
  int width() const { return width_; }
  int height() const { return height_; }
  int stride() const { return stride_; }
  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  uint8_t* row(int y) { return data_ + static_cast<ptrdiff_t>(y) * stride_; }
  const uint8_t* row(int y) const {
    return data_ + static_cast<ptrdiff_t>(y) * stride_;
  }

 private:
  std::unique_ptr<uint8_t[]> storage_;
  uint8_t* data_ = nullptr;
  int width_ = 0;
  int height_ = 0;
  int stride_ = 0;
};

enum class ColorModel {
  kGray,   // planes[0] only
  kYCbCr,  // full-range BT.601 (JFIF); chroma planes may be any size
  kRgb,    // three full-size planes
};

// How the file laid out its chroma, for probe() and tests; not used by the pipeline.
enum class Subsampling { kNone, k444, k422, k420, k440, k411, kGray, kCmyk, kOther };

struct Image {
  ColorModel model = ColorModel::kGray;
  int width = 0;   // size of planes[0] (the luma or red plane)
  int height = 0;
  Plane planes[3];
  Plane alpha;     // empty when the image is opaque
  std::vector<uint8_t> icc;  // the embedded profile, as stored

  // Pixels of each plane per pixel of the source image as stored, when the
  // decoder knows it exactly (JPEG: the DCT scale times the component's
  // sampling); 0 = the plane's size over the image's. Chroma sited by the
  // block grid keeps its registration on odd sizes this way.
  double scale_x[3] = {0, 0, 0};
  double scale_y[3] = {0, 0, 0};

  int plane_count() const { return model == ColorModel::kGray ? 1 : 3; }
  bool has_alpha() const { return !alpha.empty(); }
};

// Overflow-checked size arithmetic for everything that sizes an allocation.
bool CheckedMul(size_t a, size_t b, size_t* out);

}  // namespace appliance

#endif  // APPLIANCE_IMAGE_H_
