// Operations on planes: scaling a region, orientation, colour conversion, alpha.
#ifndef APPLIANCE_SRC_PLANE_OPS_H_
#define APPLIANCE_SRC_PLANE_OPS_H_

#include <cstdint>

#include "appliance/image.h"
#include "appliance/status.h"
#include "resample.h"

namespace appliance {

// Averages 2x2 blocks into a ((w+1)/2 x (h+1)/2) plane: centred chroma, as
// JPEG sites it. The last column/row of an odd size averages itself.
Status HalvePlane(const Plane& src, Plane* dst);

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
