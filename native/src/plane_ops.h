// Operations on planes: scaling a region, orientation, colour conversion, alpha.
#ifndef APPLIANCE_SRC_PLANE_OPS_H_
#define APPLIANCE_SRC_PLANE_OPS_H_

#include <cstdint>

#include "appliance/image.h"
#include "appliance/status.h"

namespace appliance {

// A region of a plane in its own pixels, with fractional edges.
struct RegionF {
  double x = 0, y = 0, width = 0, height = 0;
};

// Scales `region` of `src` to a new `width` x `height` plane (area averaging
// when shrinking by 2x or more, bilinear otherwise and when enlarging).
Status ScaleRegion(const Plane& src, const RegionF& region, int width, int height,
                   Plane* dst);

// Applies EXIF orientation `orientation` (1-8) to a plane.
Status OrientPlane(const Plane& src, int orientation, Plane* dst);

// Full-range BT.601 (JFIF) conversions between equal-size planes.
void YCbCrToRgb(Plane* y_r, Plane* cb_g, Plane* cr_b);
void RgbToYCbCr(Plane* r_y, Plane* g_cb, Plane* b_cr);

// Alpha: premultiply / unpremultiply `plane` by the same-size `alpha`; blend
// onto a constant `value` where alpha < 255.
void Premultiply(Plane* plane, const Plane& alpha);
void Unpremultiply(Plane* plane, const Plane& alpha);
void FlattenOnto(Plane* plane, const Plane& alpha, uint8_t value);

// True when every pixel of `alpha` is 255.
bool IsOpaque(const Plane& alpha);

}  // namespace appliance

#endif  // APPLIANCE_SRC_PLANE_OPS_H_
