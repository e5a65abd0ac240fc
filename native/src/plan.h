// Geometry of one transcode, worked out before any pixel is decoded. Pure.
#ifndef APPLIANCE_SRC_PLAN_H_
#define APPLIANCE_SRC_PLAN_H_

#include "appliance/options.h"
#include "appliance/status.h"
#include "plane_ops.h"

namespace appliance {

struct Plan {
  int orientation = 1;        // applied to the resized planes
  RegionF stored_region;      // the part of the stored image used, in stored pixels
  int stored_width = 0;       // resized size before orientation
  int stored_height = 0;
  int width = 0;              // resized size as displayed
  int height = 0;
  int canvas_width = 0;       // output size (larger than width x height only for pad)
  int canvas_height = 0;
  int offset_x = 0;           // where the resized image sits on the canvas
  int offset_y = 0;
};

// `width` x `height` is the stored size; `orientation` the EXIF value to apply
// (1 when autorotate is off).
Status MakePlan(int width, int height, int orientation, const TranscodeOptions& options,
                Plan* plan);

}  // namespace appliance

#endif  // APPLIANCE_SRC_PLAN_H_
