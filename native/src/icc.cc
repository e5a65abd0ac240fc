// Colour management with lcms2: embedded profile -> sRGB, and "is this sRGB?".
//
// Every call makes its own lcms2 context whose error handler does nothing, so
// no state is shared between threads and a bad profile only makes a call fail.
// (lcms2's default handler does not abort either, but it is process-wide.)
// Transforms are built per call: a cache would be shared mutable state.
#include <lcms2.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "codecs.h"
#include "guard.h"
#include "libyuv/planar_functions.h"

namespace appliance {
namespace {

void IgnoreLcmsError(cmsContext /*context*/, cmsUInt32Number /*code*/, const char* /*text*/) {}

struct ContextDeleter {
  void operator()(cmsContext context) const { cmsDeleteContext(context); }
};
struct ProfileDeleter {
  void operator()(void* profile) const { cmsCloseProfile(static_cast<cmsHPROFILE>(profile)); }
};
struct TransformDeleter {
  void operator()(void* transform) const {
    cmsDeleteTransform(static_cast<cmsHTRANSFORM>(transform));
  }
};
struct ToneCurveDeleter {
  void operator()(cmsToneCurve* curve) const { cmsFreeToneCurve(curve); }
};
using ContextPtr = std::unique_ptr<std::remove_pointer_t<cmsContext>, ContextDeleter>;
using ProfilePtr = std::unique_ptr<void, ProfileDeleter>;
using TransformPtr = std::unique_ptr<void, TransformDeleter>;
using ToneCurvePtr = std::unique_ptr<cmsToneCurve, ToneCurveDeleter>;

ContextPtr NewContext() {
  ContextPtr context(cmsCreateContext(nullptr, nullptr));
  if (context) cmsSetLogErrorHandlerTHR(context.get(), IgnoreLcmsError);
  return context;
}

// lcms2 reads an ICC header's size field as 32 bits.
constexpr size_t kMaxProfileBytes = size_t{64} << 20;

// sRGB's IEC 61966-2.1 tone curve as an ICC parametric curve (type 4).
constexpr cmsFloat64Number kSrgbCurve[5] = {2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045};

// sRGB's colorants adapted to D50, as ICC profiles store them (lcms2's own
// sRGB profile; the HP/IEC profile agrees to 4 decimals).
constexpr double kSrgbColorants[3][3] = {
    {0.436041, 0.222485, 0.013920},  // red
    {0.385113, 0.716905, 0.097067},  // green
    {0.143046, 0.060610, 0.713913},  // blue
};

double SrgbToLinear(double v) {
  return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4);
}

// Transforms kRgb planes in place, a block of rows at a time, through an
// interleaved scratch buffer (lcms2's planar formats need the three planes at
// one fixed distance from each other, which separately allocated planes are not).
void TransformRgbPlanes(cmsHTRANSFORM transform, Image* image, uint8_t* scratch, int block_rows) {
  const int w = image->width;
  const int h = image->height;
  Plane* p = image->planes;
  const int scratch_stride = w * 3;
  for (int y = 0; y < h; y += block_rows) {
    const int rows = h - y < block_rows ? h - y : block_rows;
    libyuv::MergeRGBPlane(p[0].row(y), p[0].stride(), p[1].row(y), p[1].stride(), p[2].row(y),
                          p[2].stride(), scratch, scratch_stride, w, rows);
    // In place: lcms2 reads each pixel before it writes it, for formats of
    // the same size.
    cmsDoTransformLineStride(transform, scratch, scratch, static_cast<cmsUInt32Number>(w),
                             static_cast<cmsUInt32Number>(rows), scratch_stride, scratch_stride, 0,
                             0);
    libyuv::SplitRGBPlane(scratch, scratch_stride, p[0].row(y), p[0].stride(), p[1].row(y),
                          p[1].stride(), p[2].row(y), p[2].stride(), w, rows);
  }
}

Status ConvertToSrgbImpl(Image* image) {
  if (image->icc.empty()) return Status::Ok();
  if (image->model == ColorModel::kYCbCr) {
    return InvalidArgument("ConvertToSrgb needs kRgb or kGray planes");
  }
  if (image->icc.size() > kMaxProfileBytes) return Unsupported("ICC profile too large");
  const int w = image->width;
  const int h = image->height;
  if (w <= 0 || h <= 0) return InvalidArgument("empty image");
  for (int i = 0; i < image->plane_count(); ++i) {
    const Plane& plane = image->planes[i];
    if (plane.empty() || plane.width() != w || plane.height() != h) {
      return InvalidArgument("ConvertToSrgb needs full-size planes");
    }
  }

  ContextPtr context = NewContext();
  if (!context) return Internal("lcms2 context failed");
  cmsContext ctx = context.get();
  ProfilePtr source(cmsOpenProfileFromMemTHR(ctx, image->icc.data(),
                                             static_cast<cmsUInt32Number>(image->icc.size())));
  if (!source) return Unsupported("ICC profile unreadable");
  const cmsColorSpaceSignature space = cmsGetColorSpace(source.get());

  if (image->model == ColorModel::kGray) {
    if (space != cmsSigGrayData) return Unsupported("non-gray ICC profile on a gray image");
    // Gray output with sRGB's tone curve: what a viewer assumes for untagged gray.
    ToneCurvePtr curve(cmsBuildParametricToneCurve(ctx, 4, kSrgbCurve));
    if (!curve) return Internal("lcms2 tone curve failed");
    ProfilePtr target(cmsCreateGrayProfileTHR(ctx, cmsD50_xyY(), curve.get()));
    if (!target) return Internal("lcms2 gray profile failed");
    // One channel of 8 bits: evaluate the exact (unoptimised) pipeline at all
    // 256 values and apply that table; lcms2's own 1-D precalculation uses 33
    // grid points, too coarse where the sRGB curve is steep.
    TransformPtr transform(cmsCreateTransformTHR(ctx, source.get(), TYPE_GRAY_8, target.get(),
                                                 TYPE_GRAY_8, INTENT_PERCEPTUAL,
                                                 cmsFLAGS_NOOPTIMIZE | cmsFLAGS_NOCACHE));
    if (!transform) return Unsupported("ICC profile unusable");
    uint8_t identity[256];
    uint8_t table[256];
    for (int i = 0; i < 256; ++i) identity[i] = static_cast<uint8_t>(i);
    cmsDoTransform(transform.get(), identity, table, 256);
    Plane& g = image->planes[0];
    for (int y = 0; y < h; ++y) {
      uint8_t* row = g.row(y);
      for (int x = 0; x < w; ++x) row[x] = table[row[x]];
    }
    image->icc.clear();
    return Status::Ok();
  }

  if (space != cmsSigRgbData) return Unsupported("non-RGB ICC profile on an RGB image");
  ProfilePtr target(cmsCreate_sRGBProfileTHR(ctx));
  if (!target) return Internal("lcms2 sRGB profile failed");
  TransformPtr transform(cmsCreateTransformTHR(ctx, source.get(), TYPE_RGB_8, target.get(),
                                               TYPE_RGB_8, INTENT_PERCEPTUAL, 0));
  if (!transform) return Unsupported("ICC profile unusable");

  // About 256 KB of scratch per block keeps it in L2; at least one row.
  int block_rows = (256 * 1024) / (w * 3);
  if (block_rows < 1) block_rows = 1;
  if (block_rows > h) block_rows = h;
  const size_t scratch_bytes = static_cast<size_t>(w) * 3 * static_cast<size_t>(block_rows);
  std::unique_ptr<uint8_t[]> scratch(new (std::nothrow) uint8_t[scratch_bytes]);
  if (!scratch) return Internal("out of memory converting colour");
  TransformRgbPlanes(transform.get(), image, scratch.get(), block_rows);
  image->icc.clear();
  return Status::Ok();
}

bool NearlyEqual(double a, double b, double tolerance) { return std::fabs(a - b) <= tolerance; }

bool IsSrgbProfileImpl(const std::vector<uint8_t>& icc) {
  if (icc.size() < 128 || icc.size() > kMaxProfileBytes) return false;
  ContextPtr context = NewContext();
  if (!context) return false;
  ProfilePtr profile(cmsOpenProfileFromMemTHR(context.get(), icc.data(),
                                              static_cast<cmsUInt32Number>(icc.size())));
  if (!profile) return false;
  if (cmsGetColorSpace(profile.get()) != cmsSigRgbData) return false;
  // The description is not trusted: "sRGB linear" and friends say sRGB too.
  // What decides is what a transform would do: sRGB's colorants and tone curves.
  static constexpr cmsTagSignature kColorants[3] = {cmsSigRedColorantTag, cmsSigGreenColorantTag,
                                                    cmsSigBlueColorantTag};
  static constexpr cmsTagSignature kCurves[3] = {cmsSigRedTRCTag, cmsSigGreenTRCTag,
                                                 cmsSigBlueTRCTag};
  for (int c = 0; c < 3; ++c) {
    const auto* xyz = static_cast<const cmsCIEXYZ*>(cmsReadTag(profile.get(), kColorants[c]));
    if (xyz == nullptr) return false;  // LUT-based profile: let the transform decide
    // 0.003 covers the rounding of published sRGB profiles (s15Fixed16, v2/v4
    // adaptation); Display P3 or Adobe RGB are off by 0.05 or more.
    if (!NearlyEqual(xyz->X, kSrgbColorants[c][0], 0.003) ||
        !NearlyEqual(xyz->Y, kSrgbColorants[c][1], 0.003) ||
        !NearlyEqual(xyz->Z, kSrgbColorants[c][2], 0.003)) {
      return false;
    }
    const auto* curve = static_cast<const cmsToneCurve*>(cmsReadTag(profile.get(), kCurves[c]));
    if (curve == nullptr) return false;
    // Within 0.002 in linear light at 33 points: accepts sRGB written as a
    // parametric curve or a table, rejects gamma 2.2 (0.004 off) and linear.
    for (int i = 0; i <= 32; ++i) {
      const double v = i / 32.0;
      const double got = cmsEvalToneCurveFloat(curve, static_cast<cmsFloat32Number>(v));
      if (!NearlyEqual(got, SrgbToLinear(v), 0.002)) return false;
    }
  }
  return true;
}

}  // namespace

Status ConvertToSrgb(Image* image) {
  if (image == nullptr) return InvalidArgument("null argument");
  return Guard("converting colour", [&] { return ConvertToSrgbImpl(image); });
}

bool IsSrgbProfile(const std::vector<uint8_t>& icc) {
  try {
    return IsSrgbProfileImpl(icc);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace appliance
