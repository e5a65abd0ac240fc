#include "plane_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <libyuv/planar_functions.h>
#include <libyuv/rotate.h>

namespace appliance {

Status HalvePlane(const Plane& src, Plane* dst) {
  const int w = (src.width() + 1) / 2, h = (src.height() + 1) / 2;
  APPLIANCE_RETURN_IF_ERROR(dst->Allocate(w, h));
  for (int y = 0; y < h; ++y) {
    const uint8_t* a = src.row(2 * y);
    const uint8_t* b = src.row(std::min(2 * y + 1, src.height() - 1));
    uint8_t* out = dst->row(y);
    for (int x = 0; x < w; ++x) {
      const int x0 = 2 * x, x1 = std::min(2 * x + 1, src.width() - 1);
      out[x] = static_cast<uint8_t>((a[x0] + a[x1] + b[x0] + b[x1] + 2) >> 2);
    }
  }
  return Status::Ok();
}

Status OrientPlane(const Plane& src, int orientation, Plane* dst) {
  const int w = src.width(), h = src.height();
  const bool transposed = orientation >= 5;
  APPLIANCE_RETURN_IF_ERROR(dst->Allocate(transposed ? h : w, transposed ? w : h));
  const uint8_t* s = src.data();
  const int ss = src.stride();
  uint8_t* d = dst->data();
  const int ds = dst->stride();
  switch (orientation) {
    case 2:
      libyuv::MirrorPlane(s, ss, d, ds, w, h);
      return Status::Ok();
    case 3:
      libyuv::RotatePlane(s, ss, d, ds, w, h, libyuv::kRotate180);
      return Status::Ok();
    case 4:  // a negative height reads the source bottom-up
      libyuv::CopyPlane(s, ss, d, ds, w, -h);
      return Status::Ok();
    case 6:
      libyuv::RotatePlane(s, ss, d, ds, w, h, libyuv::kRotate90);
      return Status::Ok();
    case 8:
      libyuv::RotatePlane(s, ss, d, ds, w, h, libyuv::kRotate270);
      return Status::Ok();
    case 5:    // transpose = rotate 90 clockwise, then mirror
    case 7: {  // transverse = rotate 270 clockwise, then mirror
      Plane rotated;
      APPLIANCE_RETURN_IF_ERROR(rotated.Allocate(h, w));
      libyuv::RotatePlane(s, ss, rotated.data(), rotated.stride(), w, h,
                          orientation == 5 ? libyuv::kRotate90 : libyuv::kRotate270);
      libyuv::MirrorPlane(rotated.data(), rotated.stride(), d, ds, h, w);
      return Status::Ok();
    }
    default:
      libyuv::CopyPlane(s, ss, d, ds, w, h);
      return Status::Ok();
  }
}

namespace {

uint8_t Clamp255(int v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v); }

// 16-bit fixed point, JFIF coefficients.
constexpr int kShift = 16;
constexpr int kHalf = 1 << (kShift - 1);
constexpr int Fix(double v) { return static_cast<int>(v * (1 << kShift) + (v < 0 ? -0.5 : 0.5)); }

}  // namespace

void YCbCrToRgb(Plane* y_r, Plane* cb_g, Plane* cr_b) {
  const int w = y_r->width(), h = y_r->height();
  for (int row = 0; row < h; ++row) {
    uint8_t* p0 = y_r->row(row);
    uint8_t* p1 = cb_g->row(row);
    uint8_t* p2 = cr_b->row(row);
    for (int x = 0; x < w; ++x) {
      const int y = p0[x] << kShift;
      const int cb = p1[x] - 128, cr = p2[x] - 128;
      p0[x] = Clamp255((y + Fix(1.402) * cr + kHalf) >> kShift);
      p1[x] = Clamp255((y - Fix(0.344136) * cb - Fix(0.714136) * cr + kHalf) >> kShift);
      p2[x] = Clamp255((y + Fix(1.772) * cb + kHalf) >> kShift);
    }
  }
}

void RgbToYCbCr(Plane* r_y, Plane* g_cb, Plane* b_cr) {
  const int w = r_y->width(), h = r_y->height();
  for (int row = 0; row < h; ++row) {
    uint8_t* p0 = r_y->row(row);
    uint8_t* p1 = g_cb->row(row);
    uint8_t* p2 = b_cr->row(row);
    for (int x = 0; x < w; ++x) {
      const int r = p0[x], g = p1[x], b = p2[x];
      p0[x] = Clamp255((Fix(0.299) * r + Fix(0.587) * g + Fix(0.114) * b + kHalf) >> kShift);
      p1[x] = Clamp255(((-Fix(0.168736) * r - Fix(0.331264) * g + Fix(0.5) * b + kHalf) >>
                        kShift) + 128);
      p2[x] = Clamp255(((Fix(0.5) * r - Fix(0.418688) * g - Fix(0.081312) * b + kHalf) >>
                        kShift) + 128);
    }
  }
}

void Premultiply(Plane* plane, const Plane& alpha) {
  for (int row = 0; row < plane->height(); ++row) {
    uint8_t* p = plane->row(row);
    const uint8_t* a = alpha.row(row);
    for (int x = 0; x < plane->width(); ++x) p[x] = static_cast<uint8_t>((p[x] * a[x] + 127) / 255);
  }
}

void Unpremultiply(Plane* plane, const Plane& alpha) {
  for (int row = 0; row < plane->height(); ++row) {
    uint8_t* p = plane->row(row);
    const uint8_t* a = alpha.row(row);
    for (int x = 0; x < plane->width(); ++x) {
      if (a[x] != 0 && a[x] != 255) p[x] = Clamp255((p[x] * 255 + a[x] / 2) / a[x]);
    }
  }
}

void FlattenOnto(Plane* plane, const Plane& alpha, uint8_t value) {
  for (int row = 0; row < plane->height(); ++row) {
    uint8_t* p = plane->row(row);
    const uint8_t* a = alpha.row(row);
    for (int x = 0; x < plane->width(); ++x) {
      p[x] = static_cast<uint8_t>((p[x] * a[x] + value * (255 - a[x]) + 127) / 255);
    }
  }
}

bool IsOpaque(const Plane& alpha) {
  const int w = alpha.width();
  for (int y = 0; y < alpha.height(); ++y) {
    const uint8_t* p = alpha.row(y);
    uint64_t all = ~uint64_t{0};  // eight pixels at a time
    int x = 0;
    for (; x + 8 <= w; x += 8) {
      uint64_t v;
      std::memcpy(&v, p + x, 8);
      all &= v;
    }
    uint8_t tail = 0xFF;
    for (; x < w; ++x) tail &= p[x];
    if (all != ~uint64_t{0} || tail != 0xFF) return false;
  }
  return true;
}

}  // namespace appliance
