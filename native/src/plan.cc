#include "plan.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace appliance {
namespace {

int RoundToPixels(double v) { return std::max(1, static_cast<int>(std::lround(v))); }

// Maps a region of the displayed image back to the stored image.
RegionF ToStored(const RegionF& r, int orientation, int stored_w, int stored_h) {
  const double x0 = r.x, y0 = r.y, x1 = r.x + r.width, y1 = r.y + r.height;
  const double sw = stored_w, sh = stored_h;
  switch (orientation) {
    case 2: return {sw - x1, y0, r.width, r.height};
    case 3: return {sw - x1, sh - y1, r.width, r.height};
    case 4: return {x0, sh - y1, r.width, r.height};
    case 5: return {y0, x0, r.height, r.width};
    case 6: return {y0, sh - x1, r.height, r.width};
    case 7: return {sw - y1, sh - x1, r.height, r.width};
    case 8: return {sw - y1, x0, r.height, r.width};
    default: return r;
  }
}

double GravityOffset(double free_space, Gravity gravity, bool horizontal) {
  if (horizontal) {
    if (gravity == Gravity::kLeft) return 0;
    if (gravity == Gravity::kRight) return free_space;
  } else {
    if (gravity == Gravity::kTop) return 0;
    if (gravity == Gravity::kBottom) return free_space;
  }
  return free_space / 2;
}

}  // namespace

Status MakePlan(int width, int height, int orientation, const TranscodeOptions& options,
                Plan* plan) {
  if (orientation < 1 || orientation > 8) orientation = 1;
  const bool transposed = orientation >= 5;
  const int display_w = transposed ? height : width;
  const int display_h = transposed ? width : height;

  // 1. The source region, in displayed pixels.
  RegionF region{0, 0, static_cast<double>(display_w), static_cast<double>(display_h)};
  if (!options.rect.empty()) {
    const Rect& r = options.rect;
    if (r.x < 0 || r.y < 0 || r.x >= display_w || r.y >= display_h) {
      return InvalidArgument("rect lies outside the image");
    }
    region = {static_cast<double>(r.x), static_cast<double>(r.y),
              static_cast<double>(std::min(r.width, display_w - r.x)),
              static_cast<double>(std::min(r.height, display_h - r.y))};
  }
  const double cw = region.width, ch = region.height;

  // 2. The resized size, and for cover the part of the region kept.
  const int tw = options.width, th = options.height;
  Fit fit = options.fit;
  if ((fit == Fit::kCover || fit == Fit::kPad) && (tw == 0 || th == 0)) fit = Fit::kInside;
  double out_w = cw, out_h = ch;
  switch (fit) {
    case Fit::kInside:
    case Fit::kPad:
      if (tw > 0 && (th == 0 || tw / cw <= th / ch)) {
        out_w = tw;
        out_h = ch * tw / cw;
      } else if (th > 0) {
        out_h = th;
        out_w = cw * th / ch;
      }
      if (!options.upscale && (out_w > cw || out_h > ch)) {
        out_w = cw;
        out_h = ch;
      }
      break;
    case Fit::kCover: {
      double scale = std::max(tw / cw, th / ch);
      double box_w = tw, box_h = th;
      if (!options.upscale && scale > 1) {
        // Keep the box's shape at the source's resolution.
        box_w = tw / scale;
        box_h = th / scale;
        scale = 1;
      }
      const double keep_w = std::min(cw, box_w / scale), keep_h = std::min(ch, box_h / scale);
      region.x += GravityOffset(cw - keep_w, options.gravity, true);
      region.y += GravityOffset(ch - keep_h, options.gravity, false);
      region.width = keep_w;
      region.height = keep_h;
      out_w = box_w;
      out_h = box_h;
      break;
    }
    case Fit::kStretch:
      if (tw > 0) out_w = tw;
      if (th > 0) out_h = th;
      if (tw > 0 && th == 0) out_h = ch * tw / cw;
      if (th > 0 && tw == 0) out_w = cw * th / ch;
      if (!options.upscale) {
        out_w = std::min(out_w, cw);
        out_h = std::min(out_h, ch);
      }
      break;
  }
  plan->width = RoundToPixels(out_w);
  plan->height = RoundToPixels(out_h);
  plan->canvas_width = plan->width;
  plan->canvas_height = plan->height;
  if (fit == Fit::kPad) {
    plan->canvas_width = std::max(tw, plan->width);
    plan->canvas_height = std::max(th, plan->height);
    plan->offset_x = (plan->canvas_width - plan->width) / 2;
    plan->offset_y = (plan->canvas_height - plan->height) / 2;
  }
  const uint64_t pixels =
      static_cast<uint64_t>(plan->canvas_width) * static_cast<uint64_t>(plan->canvas_height);
  if (pixels > options.limits.max_output_pixels ||
      plan->canvas_width > options.limits.max_dimension ||
      plan->canvas_height > options.limits.max_dimension) {
    return TooLarge("output larger than the limit");
  }

  // 3. Back to stored pixels: the decoder and resizer work before orientation.
  plan->orientation = orientation;
  plan->stored_region = ToStored(region, orientation, width, height);
  plan->stored_width = transposed ? plan->height : plan->width;
  plan->stored_height = transposed ? plan->width : plan->height;
  return Status::Ok();
}

}  // namespace appliance
