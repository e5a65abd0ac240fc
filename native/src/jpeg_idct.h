// The n-point inverse DCTs (n = 2, 3, 4) that turn the coefficient corners of
// the scaled decoder (jpeg_scaled.h) into planes; see docs/decisions/0011.
#ifndef APPLIANCE_SRC_JPEG_IDCT_H_
#define APPLIANCE_SRC_JPEG_IDCT_H_

#include "appliance/image.h"
#include "jpeg_scaled.h"

namespace appliance {

// Each component of `f`, kept at a side of 2, 3 or 4, through the inverse DCT
// of that size into image->planes, laid out as libjpeg's raw decode at that
// scale would be with the component's own sampling. False for another side or
// when a plane cannot be allocated.
bool WriteScaledPlanes(const JpegCoefficients& f, Image* image);

}  // namespace appliance

#endif  // APPLIANCE_SRC_JPEG_IDCT_H_
