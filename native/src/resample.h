// Resampling a plane with a Lanczos-3 filter, the way photo thumbnailers do it.
#ifndef APPLIANCE_SRC_RESAMPLE_H_
#define APPLIANCE_SRC_RESAMPLE_H_

#include "appliance/image.h"
#include "appliance/status.h"

namespace appliance {

// A region of a plane in its own pixels, with fractional edges.
struct RegionF {
  double x = 0, y = 0, width = 0, height = 0;
};

// Scales `region` of `src` to a new `width` x `height` plane. Separable
// Lanczos-3, widened by the scale factor when shrinking (so it averages every
// source pixel), in 14-bit fixed point; edges replicate. Shrinking by more than
// 3x first averages whole boxes of pixels (libyuv), then filters the rest.
Status ResamplePlane(const Plane& src, const RegionF& region, int width, int height,
                     Plane* dst);

}  // namespace appliance

#endif  // APPLIANCE_SRC_RESAMPLE_H_
