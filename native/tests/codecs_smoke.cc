// Smoke test for the PNG / WebP / GIF / AVIF codecs and the ICC functions.
//
// Reads the samples written by make_codec_samples.py (and Pillow's decode of
// each, the independent oracle), decodes and re-encodes them, round-trips
// through every encoder, checks error codes for truncated, foreign and
// oversized inputs, mutates files at random, and runs codecs on many threads.
//
//   .venv/bin/python native/tests/make_codec_samples.py ../shared/corpus build/codec_samples
//   cmake -S native -B build/asan -G Ninja -DAPPLIANCE_SANITIZE=ON -DAPPLIANCE_TESTS=ON
//   cmake --build build/asan --target codecs_smoke
//   build/asan/codecs_smoke ../shared/corpus build/codec_samples
//
// CMake defines APPLIANCE_HAVE_CHECK_SOURCE_SIZE: it links the core's real CheckSourceSize.
#include <avif/avif.h>
#include <lcms2.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "codecs.h"

namespace appliance {
#ifndef APPLIANCE_HAVE_CHECK_SOURCE_SIZE
// Stand-in until the pipeline's own CheckSourceSize links in.
Status CheckSourceSize(uint64_t width, uint64_t height, const Limits& limits) {
  if (width == 0 || height == 0) return Corrupt("zero image size");
  const uint64_t max_dim =
      limits.max_dimension > 0 ? static_cast<uint64_t>(limits.max_dimension) : 0;
  if (width > max_dim || height > max_dim) return TooLarge("dimension over the limit");
  if (width * height > limits.max_source_pixels) return TooLarge("source pixels over the limit");
  return Status::Ok();
}
#endif
}  // namespace appliance

using namespace appliance;  // NOLINT: a test driver

namespace {

int g_checks = 0;
int g_failures = 0;

#define CHECK(cond, ...)                                            \
  do {                                                              \
    ++g_checks;                                                     \
    if (!(cond)) {                                                  \
      ++g_failures;                                                 \
      std::printf("  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                                     \
      std::printf("\n");                                            \
    }                                                               \
  } while (0)

const char* CodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "Ok";
    case StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case StatusCode::kUnsupported:
      return "Unsupported";
    case StatusCode::kCorrupt:
      return "Corrupt";
    case StatusCode::kTooLarge:
      return "TooLarge";
    case StatusCode::kInternal:
      return "Internal";
  }
  return "?";
}

#define CHECK_OK(expr)                                                                \
  do {                                                                                \
    Status s_ = (expr);                                                               \
    CHECK(s_.ok(), "%s -> %s: %s", #expr, CodeName(s_.code()), s_.message().c_str()); \
  } while (0)

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

std::string Ext(const std::string& name) { return name.substr(name.rfind('.') + 1); }

using DecodeFn = Status (*)(const uint8_t*, size_t, const Limits&, Image*);
using ProbeFn = Status (*)(const uint8_t*, size_t, ImageInfo*);
DecodeFn DecoderFor(const std::string& ext) {
  if (ext == "png") return DecodePng;
  if (ext == "webp") return DecodeWebp;
  return DecodeGif;
}
ProbeFn ProberFor(const std::string& ext) {
  if (ext == "png") return ProbePng;
  if (ext == "webp") return ProbeWebp;
  return ProbeGif;
}

const char* ModelName(ColorModel m) {
  return m == ColorModel::kGray ? "gray" : m == ColorModel::kRgb ? "rgb" : "ycbcr";
}

uint8_t Clamp(double v) { return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : std::lround(v)); }

// Planes to interleaved RGBA, JFIF full-range YCbCr, chroma sampled at the
// nearest chroma pixel (good enough for a PSNR bound).
std::vector<uint8_t> ToRgba(const Image& im) {
  const int w = im.width, h = im.height;
  std::vector<uint8_t> out(static_cast<size_t>(w) * h * 4);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* o = &out[(static_cast<size_t>(y) * w + x) * 4];
      if (im.model == ColorModel::kGray) {
        o[0] = o[1] = o[2] = im.planes[0].row(y)[x];
      } else if (im.model == ColorModel::kRgb) {
        for (int c = 0; c < 3; ++c) o[c] = im.planes[c].row(y)[x];
      } else {
        const Plane& cb = im.planes[1];
        const Plane& cr = im.planes[2];
        const int cx = x * cb.width() / w, cy = y * cb.height() / h;
        const double Y = im.planes[0].row(y)[x];
        const double U = cb.row(cy)[cx] - 128.0, V = cr.row(cy)[cx] - 128.0;
        o[0] = Clamp(Y + 1.402 * V);
        o[1] = Clamp(Y - 0.344136 * U - 0.714136 * V);
        o[2] = Clamp(Y + 1.772 * U);
      }
      o[3] = im.has_alpha() ? im.alpha.row(y)[x] : 255;
    }
  }
  return out;
}

struct Diff {
  int max_rgb = 0;
  int max_alpha = 0;
  double psnr_rgb = 99;
  double psnr_alpha = 99;
};

// Compares alpha everywhere; RGB exactly (max) where both alphas are
// non-zero, and by PSNR on alpha-premultiplied values, which is the error a
// viewer sees (colour under low alpha barely shows and encoders may move it).
Diff Compare(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  Diff d;
  double se_rgb = 0, se_a = 0;
  size_t n_rgb = 0, n_a = 0;
  for (size_t i = 0; i + 3 < a.size() && i + 3 < b.size(); i += 4) {
    int da = std::abs(a[i + 3] - b[i + 3]);
    d.max_alpha = std::max(d.max_alpha, da);
    se_a += da * da;
    ++n_a;
    for (int c = 0; c < 3; ++c) {
      if (a[i + 3] != 0 && b[i + 3] != 0)
        d.max_rgb = std::max(d.max_rgb, std::abs(a[i + c] - b[i + c]));
      double dp = (a[i + c] * a[i + 3] - b[i + c] * b[i + 3]) / 255.0;
      se_rgb += dp * dp;
      ++n_rgb;
    }
  }
  auto psnr = [](double se, size_t n) {
    if (n == 0 || se == 0) return 99.0;
    return 10 * std::log10(255.0 * 255.0 / (se / static_cast<double>(n)));
  };
  d.psnr_rgb = psnr(se_rgb, n_rgb);
  d.psnr_alpha = psnr(se_a, n_a);
  return d;
}

double PlanePsnr(const Plane& a, const uint8_t* b, int b_stride, int w, int h) {
  double se = 0;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      int d = a.row(y)[x] - b[static_cast<size_t>(y) * b_stride + x];
      se += d * d;
    }
  }
  if (se == 0) return 99;
  return 10 * std::log10(255.0 * 255.0 * w * h / se);
}

bool HasTransparency(const std::vector<uint8_t>& rgba) {
  for (size_t i = 3; i < rgba.size(); i += 4) {
    if (rgba[i] != 255) return true;
  }
  return false;
}

// ---- libavif decode, the oracle for EncodeAvif -----------------------------
struct AvifDecoded {
  avifImage* image = nullptr;
  ~AvifDecoded() {
    if (image) avifImageDestroy(image);
  }
};

bool DecodeAvifForTest(const std::vector<uint8_t>& data, AvifDecoded* out) {
  avifDecoder* dec = avifDecoderCreate();
  out->image = avifImageCreateEmpty();
  avifResult r = avifDecoderReadMemory(dec, out->image, data.data(), data.size());
  avifDecoderDestroy(dec);
  if (r != AVIF_RESULT_OK) std::printf("  avif decode: %s\n", avifResultToString(r));
  return r == AVIF_RESULT_OK;
}

std::vector<uint8_t> AvifToRgba(const avifImage* im) {
  avifRGBImage rgb;
  avifRGBImageSetDefaults(&rgb, im);
  rgb.format = AVIF_RGB_FORMAT_RGBA;
  rgb.depth = 8;
  std::vector<uint8_t> out(static_cast<size_t>(im->width) * im->height * 4);
  rgb.pixels = out.data();
  rgb.rowBytes = im->width * 4;
  avifImageYUVToRGB(im, &rgb);
  return out;
}

// ---- test images -----------------------------------------------------------
Status CopyImage(const Image& src, Image* dst) {
  *dst = Image();
  dst->model = src.model;
  dst->width = src.width;
  dst->height = src.height;
  dst->icc = src.icc;
  auto copy = [](const Plane& s, Plane* d) -> Status {
    APPLIANCE_RETURN_IF_ERROR(d->Allocate(s.width(), s.height()));
    for (int y = 0; y < s.height(); ++y) std::memcpy(d->row(y), s.row(y), s.width());
    return Status::Ok();
  };
  for (int i = 0; i < src.plane_count(); ++i)
    APPLIANCE_RETURN_IF_ERROR(copy(src.planes[i], &dst->planes[i]));
  if (src.has_alpha()) APPLIANCE_RETURN_IF_ERROR(copy(src.alpha, &dst->alpha));
  return Status::Ok();
}

// kRgb -> full-range YCbCr 4:4:4 (JFIF).
Status RgbToYcbcr444(const Image& rgb, Image* out) {
  *out = Image();
  out->model = ColorModel::kYCbCr;
  out->width = rgb.width;
  out->height = rgb.height;
  for (auto& p : out->planes) APPLIANCE_RETURN_IF_ERROR(p.Allocate(rgb.width, rgb.height));
  for (int y = 0; y < rgb.height; ++y) {
    for (int x = 0; x < rgb.width; ++x) {
      double r = rgb.planes[0].row(y)[x], g = rgb.planes[1].row(y)[x], b = rgb.planes[2].row(y)[x];
      out->planes[0].row(y)[x] = Clamp(0.299 * r + 0.587 * g + 0.114 * b);
      out->planes[1].row(y)[x] = Clamp(128 - 0.168736 * r - 0.331264 * g + 0.5 * b);
      out->planes[2].row(y)[x] = Clamp(128 + 0.5 * r - 0.418688 * g - 0.081312 * b);
    }
  }
  return Status::Ok();
}

// ---- ICC profiles made with lcms2 ------------------------------------------
std::vector<uint8_t> SaveProfile(cmsHPROFILE p) {
  cmsUInt32Number size = 0;
  cmsSaveProfileToMem(p, nullptr, &size);
  std::vector<uint8_t> out(size);
  cmsSaveProfileToMem(p, out.data(), &size);
  cmsCloseProfile(p);
  return out;
}

std::vector<uint8_t> MakeRgbProfile(const cmsCIExyYTRIPLE& primaries, const cmsCIExyY& white,
                                    cmsToneCurve* curve, const char* description) {
  cmsToneCurve* curves[3] = {curve, curve, curve};
  cmsHPROFILE p = cmsCreateRGBProfile(&white, &primaries, curves);
  cmsMLU* mlu = cmsMLUalloc(nullptr, 1);
  cmsMLUsetASCII(mlu, "en", "US", description);
  cmsWriteTag(p, cmsSigProfileDescriptionTag, mlu);
  cmsMLUfree(mlu);
  return SaveProfile(p);
}

const cmsCIExyY kD65 = {0.3127, 0.3290, 1.0};
const cmsCIExyYTRIPLE kSrgbPrimaries = {{0.64, 0.33, 1.0}, {0.30, 0.60, 1.0}, {0.15, 0.06, 1.0}};
const cmsCIExyYTRIPLE kP3Primaries = {
    {0.680, 0.320, 1.0}, {0.265, 0.690, 1.0}, {0.150, 0.060, 1.0}};
const cmsFloat64Number kSrgbParams[5] = {2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045};

std::vector<uint8_t> P3Profile() {
  cmsToneCurve* c = cmsBuildParametricToneCurve(nullptr, 4, kSrgbParams);
  auto out = MakeRgbProfile(kP3Primaries, kD65, c, "Display P3");
  cmsFreeToneCurve(c);
  return out;
}
std::vector<uint8_t> SrgbLikeProfile(double gamma, const char* description) {
  cmsToneCurve* c = gamma > 0 ? cmsBuildGamma(nullptr, gamma)
                              : cmsBuildParametricToneCurve(nullptr, 4, kSrgbParams);
  auto out = MakeRgbProfile(kSrgbPrimaries, kD65, c, description);
  cmsFreeToneCurve(c);
  return out;
}
std::vector<uint8_t> GrayProfile(double gamma) {
  cmsToneCurve* c = cmsBuildGamma(nullptr, gamma);
  cmsHPROFILE p = cmsCreateGrayProfile(cmsD50_xyY(), c);
  cmsFreeToneCurve(c);
  return SaveProfile(p);
}

// ---- sections --------------------------------------------------------------
struct Sample {
  std::string name;
  int width = 0, height = 0;
};

std::map<std::string, Image> g_decoded;

void TestDecodeSamples(const std::string& dir, const std::vector<Sample>& samples) {
  std::printf("== decode samples vs Pillow\n");
  Limits limits;
  for (const Sample& s : samples) {
    const std::string ext = Ext(s.name);
    auto data = ReadFile(dir + "/" + s.name);
    auto ref = ReadFile(dir + "/" + s.name.substr(0, s.name.rfind('.')) + ".rgba");
    Image im;
    double t0 = Now();
    Status st = DecoderFor(ext)(data.data(), data.size(), limits, &im);
    double ms = (Now() - t0) * 1e3;
    CHECK(st.ok(), "%s: %s %s", s.name.c_str(), CodeName(st.code()), st.message().c_str());
    if (!st.ok()) continue;
    CHECK(im.width == s.width && im.height == s.height, "%s: %dx%d", s.name.c_str(), im.width,
          im.height);
    auto rgba = ToRgba(im);
    Diff d = Compare(rgba, ref);
    const bool lossy_yuv =
        im.model == ColorModel::kYCbCr;  // our nearest upsampling vs libwebp's fancy
    const bool ref_alpha = HasTransparency(ref);
    std::printf(
        "  %-22s %4dx%-4d %-5s planes=%d alpha=%d icc=%-4zu  max|d|rgb=%3d a=%3d psnr=%5.1f  %6.2f "
        "ms\n",
        s.name.c_str(), im.width, im.height, ModelName(im.model), im.plane_count(), im.has_alpha(),
        im.icc.size(), d.max_rgb, d.max_alpha, d.psnr_rgb, ms);
    if (lossy_yuv) {
      CHECK(d.psnr_rgb > 32, "%s psnr %.1f", s.name.c_str(), d.psnr_rgb);
      CHECK(im.planes[1].width() == (im.width + 1) / 2 &&
                im.planes[1].height() == (im.height + 1) / 2,
            "%s chroma %dx%d", s.name.c_str(), im.planes[1].width(), im.planes[1].height());
    } else {
      CHECK(d.max_rgb == 0, "%s max rgb diff %d", s.name.c_str(), d.max_rgb);
    }
    CHECK(d.max_alpha == 0, "%s max alpha diff %d", s.name.c_str(), d.max_alpha);
    CHECK(im.has_alpha() == ref_alpha, "%s alpha plane %d, reference transparent %d",
          s.name.c_str(), im.has_alpha(), ref_alpha);
    if (s.name.rfind("p_gray", 0) == 0 && s.name != "p_gray_trns.png") {
      CHECK(im.model == ColorModel::kGray, "%s model %s", s.name.c_str(), ModelName(im.model));
    }
    if (s.name == "w_lossy.webp" || s.name == "w_lossy_odd.webp" || s.name == "w_icc.webp") {
      CHECK(im.model == ColorModel::kYCbCr, "%s model %s", s.name.c_str(), ModelName(im.model));
    }
    ImageInfo info;
    st = ProberFor(ext)(data.data(), data.size(), &info);
    CHECK(st.ok() && info.width == s.width && info.height == s.height, "%s probe %s %dx%d",
          s.name.c_str(), st.message().c_str(), info.width, info.height);
    CHECK(info.has_icc == !im.icc.empty(), "%s probe has_icc %d", s.name.c_str(), info.has_icc);
    g_decoded[s.name] = std::move(im);
  }
  auto srgb = ReadFile(dir + "/srgb.icc");
  CHECK(g_decoded["p_icc.png"].icc == srgb, "PNG iCCP bytes differ (%zu)",
        g_decoded["p_icc.png"].icc.size());
  CHECK(g_decoded["w_icc.webp"].icc == srgb, "WebP ICCP bytes differ (%zu)",
        g_decoded["w_icc.webp"].icc.size());
}

void TestCorpusPng(const std::string& corpus) {
  std::printf("== corpus PNGs\n");
  for (const char* name : {"p_astronaut.png", "p_coffee.png", "p_gulp_alpha.png"}) {
    auto data = ReadFile(corpus + "/" + name);
    Image im;
    double t0 = Now();
    Status st = DecodePng(data.data(), data.size(), Limits(), &im);
    double ms = (Now() - t0) * 1e3;
    CHECK(st.ok(), "%s: %s", name, st.message().c_str());
    std::printf("  %-18s %dx%d %s alpha=%d  decode %.2f ms\n", name, im.width, im.height,
                ModelName(im.model), im.has_alpha(), ms);
    g_decoded[name] = std::move(im);
  }
  CHECK(g_decoded["p_gulp_alpha.png"].has_alpha(), "gulp keeps its alpha");
  CHECK(!g_decoded["p_astronaut.png"].has_alpha(), "astronaut has no alpha");
}

struct EncodeCase {
  const char* label;
  const Image* image;
  EncodeParams params;
};

void RoundTrip(const char* label, const Image& src, const EncodeParams& params) {
  const auto src_rgba = ToRgba(src);
  // PNG
  if (src.model != ColorModel::kYCbCr) {
    std::vector<uint8_t> png;
    double t0 = Now();
    Status st = EncodePng(src, params, &png);
    double enc = (Now() - t0) * 1e3;
    CHECK(st.ok(), "%s png: %s", label, st.message().c_str());
    Image back;
    CHECK_OK(DecodePng(png.data(), png.size(), Limits(), &back));
    Diff d = Compare(ToRgba(back), src_rgba);
    std::printf("  %-24s png   %8zu B  enc %7.2f ms  max|d| rgb=%d a=%d\n", label, png.size(), enc,
                d.max_rgb, d.max_alpha);
    CHECK(d.max_rgb == 0 && d.max_alpha == 0, "%s png not lossless", label);
    CHECK(back.model == src.model, "%s png model", label);
  } else {
    std::vector<uint8_t> png;
    Status st = EncodePng(src, params, &png);
    CHECK(st.code() == StatusCode::kInvalidArgument, "%s png from ycbcr: %s", label,
          CodeName(st.code()));
  }
  // WebP
  const bool webp_ok =
      !(src.model == ColorModel::kYCbCr && src.planes[1].width() != (src.width + 1) / 2);
  {
    std::vector<uint8_t> webp;
    double t0 = Now();
    Status st = EncodeWebp(src, params, &webp);
    double enc = (Now() - t0) * 1e3;
    if (!webp_ok) {
      CHECK(st.code() == StatusCode::kInvalidArgument, "%s webp from 4:4:4: %s", label,
            CodeName(st.code()));
    } else {
      CHECK(st.ok(), "%s webp: %s", label, st.message().c_str());
      Image back;
      CHECK_OK(DecodeWebp(webp.data(), webp.size(), Limits(), &back));
      Diff d = Compare(ToRgba(back), src_rgba);
      double ypsnr = 0;
      if (src.model == ColorModel::kYCbCr && back.model == ColorModel::kYCbCr) {
        ypsnr = PlanePsnr(back.planes[0], src.planes[0].data(), src.planes[0].stride(), src.width,
                          src.height);
      }
      std::printf("  %-24s webp  %8zu B  enc %7.2f ms  psnr rgb=%5.1f a=%5.1f%s  -> %s%s\n", label,
                  webp.size(), enc, d.psnr_rgb, d.psnr_alpha,
                  ypsnr > 0 ? (" Y=" + std::to_string(ypsnr).substr(0, 4)).c_str() : "",
                  ModelName(back.model), back.has_alpha() ? "+a" : "");
      if (params.lossless) {
        CHECK(d.max_rgb <= (src.model == ColorModel::kYCbCr ? 3 : 0) && d.max_alpha == 0,
              "%s webp lossless max rgb %d a %d", label, d.max_rgb, d.max_alpha);
      } else {
        CHECK(d.psnr_rgb > (params.quality >= 50 ? 30 : 22), "%s webp psnr %.1f", label,
              d.psnr_rgb);
        if (src.has_alpha())
          CHECK(d.psnr_alpha > 30, "%s webp alpha psnr %.1f", label, d.psnr_alpha);
      }
      CHECK(back.has_alpha() == (src.has_alpha() && HasTransparency(src_rgba)), "%s webp alpha",
            label);
      if (params.icc) CHECK(back.icc == *params.icc, "%s webp icc %zu", label, back.icc.size());
    }
  }
  // AVIF
  {
    std::vector<uint8_t> avif;
    double t0 = Now();
    Status st = EncodeAvif(src, params, &avif);
    double enc = (Now() - t0) * 1e3;
    CHECK(st.ok(), "%s avif: %s %s", label, CodeName(st.code()), st.message().c_str());
    AvifDecoded back;
    if (st.ok() && DecodeAvifForTest(avif, &back)) {
      const avifImage* a = back.image;
      CHECK(a->width == static_cast<uint32_t>(src.width) &&
                a->height == static_cast<uint32_t>(src.height),
            "%s avif size", label);
      CHECK(a->yuvRange == AVIF_RANGE_FULL, "%s avif range", label);
      auto rgba = AvifToRgba(a);
      Diff d = Compare(rgba, src_rgba);
      std::string planes;
      if (src.model == ColorModel::kYCbCr || src.model == ColorModel::kGray) {
        for (int i = 0; i < src.plane_count(); ++i) {
          const Plane& p = src.planes[i];
          char buf[32];
          std::snprintf(buf, sizeof buf, " %c=%.1f", "YUV"[i],
                        PlanePsnr(p, a->yuvPlanes[i], a->yuvRowBytes[i], p.width(), p.height()));
          planes += buf;
        }
      }
      std::printf("  %-24s avif  %8zu B  enc %7.2f ms  psnr rgb=%5.1f a=%5.1f%s  fmt=%d mc=%d\n",
                  label, avif.size(), enc, d.psnr_rgb, d.psnr_alpha, planes.c_str(), a->yuvFormat,
                  a->matrixCoefficients);
      if (params.lossless && src.model == ColorModel::kRgb) {
        CHECK(d.max_rgb == 0 && d.max_alpha == 0, "%s avif lossless max rgb %d a %d", label,
              d.max_rgb, d.max_alpha);
      } else if (!params.lossless) {
        CHECK(d.psnr_rgb > (params.quality >= 50 ? 30 : 22), "%s avif psnr %.1f", label,
              d.psnr_rgb);
        if (src.has_alpha())
          CHECK(d.psnr_alpha > 30, "%s avif alpha psnr %.1f", label, d.psnr_alpha);
      }
      CHECK((a->alphaPlane != nullptr) == src.has_alpha(), "%s avif alpha", label);
      if (params.icc) {
        CHECK(a->icc.size == params.icc->size() &&
                  std::memcmp(a->icc.data, params.icc->data(), a->icc.size) == 0,
              "%s avif icc %zu", label, a->icc.size);
      }
    }
  }
}

void TestEncoders() {
  std::printf("== encoders: round trips (quality 80 unless noted)\n");
  EncodeParams p;
  p.quality = 80;
  RoundTrip("rgb astronaut", g_decoded["p_astronaut.png"], p);
  RoundTrip("rgba gulp", g_decoded["p_gulp_alpha.png"], p);
  RoundTrip("gray 512", g_decoded["p_gray8.png"], p);
  RoundTrip("gray+alpha la", g_decoded["p_la.png"], p);
  RoundTrip("ycbcr420 odd 333x217", g_decoded["w_lossy_odd.webp"], p);
  Image ycc444;
  CHECK_OK(RgbToYcbcr444(g_decoded["p_astronaut.png"], &ycc444));
  RoundTrip("ycbcr444 astronaut", ycc444, p);
  // 4:2:0 with an alpha gradient.
  Image ycca;
  CHECK_OK(CopyImage(g_decoded["w_lossy_odd.webp"], &ycca));
  CHECK_OK(ycca.alpha.Allocate(ycca.width, ycca.height));
  for (int y = 0; y < ycca.height; ++y) {
    for (int x = 0; x < ycca.width; ++x)
      ycca.alpha.row(y)[x] = static_cast<uint8_t>((x + y) * 255 / (ycca.width + ycca.height));
  }
  RoundTrip("ycbcr420+alpha", ycca, p);

  EncodeParams lossless;
  lossless.lossless = true;
  RoundTrip("rgb lossless", g_decoded["p_coffee.png"], lossless);
  RoundTrip("rgba lossless 480x300", g_decoded["p_rgba16.png"], lossless);
  RoundTrip("gray lossless", g_decoded["p_gray8.png"], lossless);

  EncodeParams low;
  low.quality = 10;
  low.effort = 0;
  RoundTrip("rgb q10 effort0", g_decoded["p_astronaut.png"], low);
  EncodeParams high;
  high.quality = 95;
  high.effort = 6;
  RoundTrip("rgb q95 effort6", g_decoded["p_astronaut.png"], high);

  std::vector<uint8_t> p3 = P3Profile();
  EncodeParams with_icc;
  with_icc.icc = &p3;
  RoundTrip("rgb + icc", g_decoded["p_coffee.png"], with_icc);
  RoundTrip("ycbcr420 + icc", g_decoded["w_lossy_odd.webp"], with_icc);

  // Bad inputs.
  Image empty;
  std::vector<uint8_t> out;
  CHECK(EncodePng(empty, p, &out).code() == StatusCode::kInvalidArgument, "png empty");
  CHECK(EncodeWebp(empty, p, &out).code() == StatusCode::kInvalidArgument, "webp empty");
  CHECK(EncodeAvif(empty, p, &out).code() == StatusCode::kInvalidArgument, "avif empty");
  Image odd_chroma;
  CHECK_OK(CopyImage(g_decoded["w_lossy_odd.webp"], &odd_chroma));
  CHECK_OK(odd_chroma.planes[1].Allocate(10, 10));
  CHECK(EncodeWebp(odd_chroma, p, &out).code() == StatusCode::kInvalidArgument, "webp bad chroma");
  CHECK(EncodeAvif(odd_chroma, p, &out).code() == StatusCode::kInvalidArgument, "avif bad chroma");

  // Tiny and odd sizes through every encoder and back.
  int tiny_ok = 0, tiny_refused = 0, tiny_total = 0;
  for (auto [tw, th] : {std::pair<int, int>{1, 1}, {1, 5}, {5, 1}, {3, 3}, {2, 7}, {17, 2}}) {
    for (int model = 0; model < 4; ++model) {
      for (bool with_alpha : {false, true}) {
        Image t;
        t.width = tw;
        t.height = th;
        const int cw = model == 3 ? (tw + 1) / 2 : tw, ch = model == 3 ? (th + 1) / 2 : th;
        t.model = model == 0   ? ColorModel::kGray
                  : model == 1 ? ColorModel::kRgb
                               : ColorModel::kYCbCr;
        for (int i = 0; i < t.plane_count(); ++i) {
          CHECK_OK(i == 0 ? t.planes[i].Allocate(tw, th) : t.planes[i].Allocate(cw, ch));
          t.planes[i].Fill(static_cast<uint8_t>(60 + 50 * i));
        }
        if (with_alpha) {
          CHECK_OK(t.alpha.Allocate(tw, th));
          t.alpha.Fill(128);
        }
        for (int codec = 0; codec < 3; ++codec) {
          std::vector<uint8_t> o;
          Status st = codec == 0   ? EncodePng(t, p, &o)
                      : codec == 1 ? EncodeWebp(t, p, &o)
                                   : EncodeAvif(t, p, &o);
          const bool is_420 = cw == (tw + 1) / 2 && ch == (th + 1) / 2;  // 1x1 4:4:4 is also 4:2:0
          const bool expect_ok = !(codec == 0 && t.model == ColorModel::kYCbCr) &&
                                 !(codec == 1 && t.model == ColorModel::kYCbCr && !is_420);
          ++tiny_total;
          CHECK(st.ok() == expect_ok, "%dx%d model %d alpha %d codec %d: %s", tw, th, model,
                with_alpha, codec, st.message().c_str());
          if (!st.ok()) {
            ++tiny_refused;
            continue;
          }
          int bw = 0, bh = 0;
          if (codec == 2) {
            AvifDecoded back;
            if (DecodeAvifForTest(o, &back)) bw = back.image->width, bh = back.image->height;
          } else {
            Image back;
            Status ds = codec == 0 ? DecodePng(o.data(), o.size(), Limits(), &back)
                                   : DecodeWebp(o.data(), o.size(), Limits(), &back);
            CHECK(ds.ok(), "decode tiny: %s", ds.message().c_str());
            bw = back.width, bh = back.height;
          }
          CHECK(bw == tw && bh == th, "tiny %dx%d came back %dx%d (codec %d)", tw, th, bw, bh,
                codec);
          if (bw == tw && bh == th) ++tiny_ok;
        }
      }
    }
  }
  std::printf(
      "  tiny sizes 1x1..17x2, 4 layouts x alpha x 3 encoders: %d round trips + %d refusals "
      "as expected (PNG from YCbCr, WebP from 4:4:4) = %d\n",
      tiny_ok, tiny_refused, tiny_total);

  // AVIF speed/quality at the default (speed 8) and effort 4 (speed 6).
  std::printf("== AVIF speed comparison (astronaut 512x512, quality 55)\n");
  for (int effort : {-1, 4, 6}) {
    EncodeParams q;
    q.quality = 55;
    q.effort = effort;
    std::vector<uint8_t> avif;
    double t0 = Now();
    CHECK_OK(EncodeAvif(g_decoded["p_astronaut.png"], q, &avif));
    double ms = (Now() - t0) * 1e3;
    AvifDecoded back;
    if (DecodeAvifForTest(avif, &back)) {
      Diff d = Compare(AvifToRgba(back.image), ToRgba(g_decoded["p_astronaut.png"]));
      std::printf("  effort %2d (speed %d): %7zu B  %7.2f ms  psnr %.2f\n", effort,
                  effort < 0 ? 8 : 10 - effort, avif.size(), ms, d.psnr_rgb);
    }
  }
}

void TestIcc() {
  std::printf("== ICC\n");
  cmsHPROFILE srgb_p = cmsCreate_sRGBProfile();
  std::vector<uint8_t> srgb = SaveProfile(srgb_p);
  std::vector<uint8_t> p3 = P3Profile();
  CHECK(IsSrgbProfile(srgb), "lcms2 sRGB is sRGB");
  CHECK(IsSrgbProfile(SrgbLikeProfile(0, "c2")), "sRGB colorants+curve named c2 is sRGB");
  CHECK(!IsSrgbProfile(p3), "P3 is not sRGB");
  CHECK(!IsSrgbProfile(SrgbLikeProfile(1.0, "sRGB linear")), "linear sRGB is not sRGB");
  CHECK(!IsSrgbProfile(SrgbLikeProfile(2.2, "sRGB gamma 2.2")), "gamma 2.2 is not sRGB");
  CHECK(!IsSrgbProfile(GrayProfile(2.2)), "gray is not sRGB");
  CHECK(!IsSrgbProfile({}), "empty");
  std::vector<uint8_t> junk(4000);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 131 + 7);
  CHECK(!IsSrgbProfile(junk), "junk");
  std::vector<uint8_t> truncated(srgb.begin(), srgb.begin() + srgb.size() / 2);
  CHECK(!IsSrgbProfile(truncated), "truncated sRGB");

  {
    double t = Now();
    int yes = 0;
    for (int i = 0; i < 1000; ++i) yes += IsSrgbProfile(srgb) ? 1 : 0;
    const double is_us = (Now() - t) * 1e3;
    Image one;
    one.model = ColorModel::kRgb;
    one.width = one.height = 1;
    for (auto& plane : one.planes) CHECK_OK(plane.Allocate(1, 1));
    t = Now();
    for (int i = 0; i < 100; ++i) {
      one.icc = p3;
      CHECK_OK(ConvertToSrgb(&one));
    }
    const double convert_us = (Now() - t) * 1e4;
    std::printf("  IsSrgbProfile %.1f us a call; ConvertToSrgb fixed cost (1x1) %.0f us\n", is_us,
                convert_us);
    CHECK(yes == 1000, "IsSrgbProfile repeated");
  }

  // P3 -> sRGB on planes, against lcms2 on interleaved pixels.
  Image im;
  CHECK_OK(CopyImage(g_decoded["p_gulp_alpha.png"], &im));
  im.icc = p3;
  auto before = ToRgba(im);
  double t0 = Now();
  CHECK_OK(ConvertToSrgb(&im));
  double ms = (Now() - t0) * 1e3;
  CHECK(im.icc.empty(), "icc cleared");
  cmsHPROFILE in = cmsOpenProfileFromMem(p3.data(), static_cast<cmsUInt32Number>(p3.size()));
  cmsHPROFILE out = cmsCreate_sRGBProfile();
  cmsHTRANSFORM xf =
      cmsCreateTransform(in, TYPE_RGBA_8, out, TYPE_RGBA_8, INTENT_PERCEPTUAL, cmsFLAGS_COPY_ALPHA);
  std::vector<uint8_t> expected(before.size());
  cmsDoTransform(xf, before.data(), expected.data(),
                 static_cast<cmsUInt32Number>(before.size() / 4));
  cmsDeleteTransform(xf);
  cmsCloseProfile(in);
  cmsCloseProfile(out);
  auto after = ToRgba(im);
  Diff d = Compare(after, expected);
  Diff moved = Compare(after, before);
  std::printf(
      "  P3->sRGB 1920x1200+alpha: %.2f ms, vs lcms2 interleaved max|d| rgb=%d a=%d; moved by up "
      "to %d\n",
      ms, d.max_rgb, d.max_alpha, moved.max_rgb);
  CHECK(d.max_rgb == 0 && d.max_alpha == 0, "planar conversion matches lcms2");
  CHECK(moved.max_rgb > 10 && moved.max_alpha == 0, "conversion moved colours, kept alpha");

  // Gray: linear (gamma 1.0) profile -> sRGB gray.
  Image gray;
  CHECK_OK(CopyImage(g_decoded["p_gray8.png"], &gray));
  gray.icc = GrayProfile(1.0);
  Image gray_before;
  CHECK_OK(CopyImage(gray, &gray_before));
  CHECK_OK(ConvertToSrgb(&gray));
  int max_err = 0;
  for (int y = 0; y < gray.height; ++y) {
    for (int x = 0; x < gray.width; ++x) {
      double lin = gray_before.planes[0].row(y)[x] / 255.0;
      double enc = lin <= 0.0031308 ? 12.92 * lin : 1.055 * std::pow(lin, 1 / 2.4) - 0.055;
      max_err = std::max(
          max_err, std::abs(gray.planes[0].row(y)[x] - static_cast<int>(std::lround(enc * 255))));
    }
  }
  std::printf("  linear gray -> sRGB gray: max error vs formula %d\n", max_err);
  CHECK(max_err <= 2, "gray conversion error %d", max_err);
  CHECK(gray.icc.empty(), "gray icc cleared");

  // Mismatches and bad profiles.
  Image rgb;
  CHECK_OK(CopyImage(g_decoded["p_coffee.png"], &rgb));
  rgb.icc = GrayProfile(2.2);
  CHECK(ConvertToSrgb(&rgb).code() == StatusCode::kUnsupported, "gray profile on rgb");
  rgb.icc = junk;
  CHECK(ConvertToSrgb(&rgb).code() == StatusCode::kUnsupported, "junk profile");
  rgb.icc = truncated;
  CHECK(ConvertToSrgb(&rgb).code() == StatusCode::kUnsupported, "truncated profile");
  CHECK(!rgb.icc.empty(), "failed conversion keeps the profile");
  CHECK_OK(CopyImage(g_decoded["p_gray8.png"], &gray));
  gray.icc = p3;
  CHECK(ConvertToSrgb(&gray).code() == StatusCode::kUnsupported, "rgb profile on gray");
  Image ycc;
  CHECK_OK(CopyImage(g_decoded["w_lossy_odd.webp"], &ycc));
  ycc.icc = p3;
  CHECK(ConvertToSrgb(&ycc).code() == StatusCode::kInvalidArgument, "ycbcr");
  Image none;
  CHECK_OK(CopyImage(g_decoded["p_coffee.png"], &none));
  CHECK_OK(ConvertToSrgb(&none));  // no profile: nothing to do
}

// ---- hostile inputs --------------------------------------------------------
uint32_t Crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return c ^ 0xFFFFFFFFu;
}
void PutBe32(std::vector<uint8_t>* v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v->push_back(static_cast<uint8_t>(x >> s));
}
void PutLe16(std::vector<uint8_t>* v, uint32_t x) {
  v->push_back(static_cast<uint8_t>(x));
  v->push_back(static_cast<uint8_t>(x >> 8));
}
void PutLe32(std::vector<uint8_t>* v, uint32_t x) {
  PutLe16(v, x & 0xFFFF);
  PutLe16(v, x >> 16);
}

std::vector<uint8_t> PngHeader(uint32_t w, uint32_t h) {
  std::vector<uint8_t> v = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr = {'I', 'H', 'D', 'R'};
  PutBe32(&ihdr, w);
  PutBe32(&ihdr, h);
  ihdr.insert(ihdr.end(), {8, 6, 0, 0, 0});
  PutBe32(&v, 13);
  v.insert(v.end(), ihdr.begin(), ihdr.end());
  PutBe32(&v, Crc32(ihdr.data(), ihdr.size()));
  // An IDAT that claims a lot and delivers a few bytes.
  std::vector<uint8_t> idat = {'I', 'D', 'A', 'T', 0x78, 0x9C, 0x62, 0x00};
  PutBe32(&v, 4);
  v.insert(v.end(), idat.begin(), idat.end());
  PutBe32(&v, Crc32(idat.data(), idat.size()));
  return v;
}

std::vector<uint8_t> GifHeader(uint32_t w, uint32_t h) {
  std::vector<uint8_t> v = {'G', 'I', 'F', '8', '9', 'a'};
  PutLe16(&v, w);
  PutLe16(&v, h);
  v.insert(v.end(), {0x80, 0, 0, 0, 0, 0, 255, 255, 255});  // 2-entry global map
  v.push_back(0x2C);
  PutLe16(&v, 0);
  PutLe16(&v, 0);
  PutLe16(&v, w);
  PutLe16(&v, h);
  v.insert(v.end(), {0x00, 0x02, 0x02, 0x4C, 0x01, 0x00, 0x3B});
  return v;
}

// A lossless (VP8L) header of w x h (<= 16384) and no pixel data.
std::vector<uint8_t> WebpLosslessHeader(uint32_t w, uint32_t h) {
  std::vector<uint8_t> v = {'R', 'I', 'F', 'F'};
  PutLe32(&v, 4 + 8 + 6);
  v.insert(v.end(), {'W', 'E', 'B', 'P', 'V', 'P', '8', 'L'});
  PutLe32(&v, 6);
  v.push_back(0x2F);
  const uint32_t bits = (w - 1) | ((h - 1) << 14);
  PutLe32(&v, bits);
  v.push_back(0);
  return v;
}

void TestHostile(const std::string& dir, const std::vector<Sample>& samples) {
  std::printf("== truncated, foreign and oversized inputs\n");
  Limits limits;
  std::map<std::string, int> truncated_codes;
  for (const Sample& s : samples) {
    const std::string ext = Ext(s.name);
    auto data = ReadFile(dir + "/" + s.name);
    for (size_t keep : {data.size() / 2, data.size() * 9 / 10, static_cast<size_t>(40)}) {
      if (keep >= data.size()) continue;
      Image im;
      Status st = DecoderFor(ext)(data.data(), keep, limits, &im);
      truncated_codes[std::string(CodeName(st.code()))]++;
      // Only the first GIF frame is read, and rows below the screen are not:
      // losing later frames (g_anim) or invisible rows (g_clipped) is fine.
      // A PNG that loses only its IEND chunk (12 bytes) still has every pixel.
      const bool may_be_ok =
          ((s.name == "g_anim.gif" || s.name == "g_clipped.gif") && keep > 100) ||
          (ext == "png" && keep + 12 >= data.size());
      if (may_be_ok && st.ok()) continue;
      CHECK(st.code() == StatusCode::kCorrupt, "%s truncated to %zu: %s %s", s.name.c_str(), keep,
            CodeName(st.code()), st.message().c_str());
      CHECK(im.planes[0].empty(), "%s truncated: image left filled", s.name.c_str());
    }
  }
  std::printf("  truncated files (50%%, 90%%, 40 bytes; Ok only past GIF frame 1 or in IEND):");
  for (auto& kv : truncated_codes) std::printf(" %s=%d", kv.first.c_str(), kv.second);
  std::printf("\n");

  std::vector<uint8_t> jpeg = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F',
                               0,    1,    1,    0,    0, 1,  0,   1,   0,   0};
  std::vector<uint8_t> tiny = {'G', 'I'};
  for (auto* dec : {DecodePng, DecodeWebp, DecodeGif}) {
    Image im;
    CHECK(dec(jpeg.data(), jpeg.size(), limits, &im).code() == StatusCode::kUnsupported,
          "jpeg is unsupported");
    CHECK(dec(tiny.data(), tiny.size(), limits, &im).code() == StatusCode::kUnsupported,
          "2 bytes unsupported");
    CHECK(dec(jpeg.data(), 0, limits, &im).code() == StatusCode::kUnsupported,
          "0 bytes unsupported");
  }
  for (auto* probe : {ProbePng, ProbeWebp, ProbeGif}) {
    ImageInfo info;
    CHECK(probe(jpeg.data(), jpeg.size(), &info).code() == StatusCode::kUnsupported,
          "probe jpeg unsupported");
  }

  struct Big {
    const char* label;
    std::vector<uint8_t> data;
    DecodeFn decode;
  };
  std::vector<Big> bigs;
  bigs.push_back({"PNG 60000x60000", PngHeader(60000, 60000), DecodePng});
  bigs.push_back({"GIF 60000x60000", GifHeader(60000, 60000), DecodeGif});
  bigs.push_back({"WebP VP8L 16384x16384", WebpLosslessHeader(16384, 16384), DecodeWebp});
  {
    auto anim = ReadFile(dir + "/w_anim.webp");
    // VP8X canvas width-1 / height-1, 24 bits each, at bytes 24 and 27.
    const uint32_t d = 60000 - 1;
    for (int k = 0; k < 3; ++k) {
      anim[24 + k] = static_cast<uint8_t>(d >> (8 * k));
      anim[27 + k] = static_cast<uint8_t>(d >> (8 * k));
    }
    bigs.push_back({"WebP anim canvas 60000x60000", anim, DecodeWebp});
  }
  for (auto& b : bigs) {
    Image im;
    double t0 = Now();
    Status st = b.decode(b.data.data(), b.data.size(), limits, &im);
    double us = (Now() - t0) * 1e6;
    std::printf("  %-30s -> %-9s %-40s %.0f us\n", b.label, CodeName(st.code()),
                st.message().c_str(), us);
    CHECK(st.code() == StatusCode::kTooLarge, "%s: %s", b.label, CodeName(st.code()));
    CHECK(us < 20000, "%s took %.0f us", b.label, us);
  }
  // A small header within the limits but without its data is corrupt, not a crash.
  {
    auto png = PngHeader(100, 100);
    Image im;
    Status st = DecodePng(png.data(), png.size(), limits, &im);
    CHECK(st.code() == StatusCode::kCorrupt, "png header only: %s", CodeName(st.code()));
    auto gif = GifHeader(100, 100);
    st = DecodeGif(gif.data(), gif.size(), limits, &im);
    std::printf("  GIF 100x100 with 1 pixel of data -> %s %s\n", CodeName(st.code()),
                st.message().c_str());
    CHECK(st.code() == StatusCode::kCorrupt, "gif short data: %s", CodeName(st.code()));
  }
  // Limits below the image.
  {
    Limits small;
    small.max_dimension = 100;
    auto data = ReadFile(dir + "/p_gray8.png");
    Image im;
    CHECK(DecodePng(data.data(), data.size(), small, &im).code() == StatusCode::kTooLarge,
          "png over max_dimension");
    Limits few;
    few.max_source_pixels = 1000;
    data = ReadFile(dir + "/w_lossy.webp");
    CHECK(DecodeWebp(data.data(), data.size(), few, &im).code() == StatusCode::kTooLarge,
          "webp over pixels");
    data = ReadFile(dir + "/g_simple.gif");
    CHECK(DecodeGif(data.data(), data.size(), few, &im).code() == StatusCode::kTooLarge,
          "gif over pixels");
  }
}

void TestMutations(const std::string& dir, const std::vector<Sample>& samples, int per_file) {
  std::printf("== random mutations (%d per file)\n", per_file);
  std::mt19937 rng(12345);
  std::map<std::string, int> codes;
  for (const Sample& s : samples) {
    const std::string ext = Ext(s.name);
    auto data = ReadFile(dir + "/" + s.name);
    if (data.size() > 200000) continue;  // keep the run short
    for (int i = 0; i < per_file; ++i) {
      std::vector<uint8_t> m = data;
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int e = 0; e < edits; ++e) {
        size_t pos = rng() % m.size();
        switch (rng() % 4) {
          case 0:
            m[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
            break;
          case 1:
            m[pos] = static_cast<uint8_t>(rng());
            break;
          case 2:
            m[pos] = (rng() & 1) ? 0xFF : 0x00;
            break;
          case 3:
            m.resize(pos + 1);
            break;
        }
      }
      // Most mutations land in pixel data; hit the headers often too.
      if (i % 3 == 0 && m.size() > 64) m[rng() % 64] = static_cast<uint8_t>(rng());
      Image im;
      Status st = DecoderFor(ext)(m.data(), m.size(), Limits(), &im);
      codes[CodeName(st.code())]++;
      ImageInfo info;
      ProberFor(ext)(m.data(), m.size(), &info);
    }
  }
  std::printf("  statuses:");
  for (auto& kv : codes) std::printf(" %s=%d", kv.first.c_str(), kv.second);
  std::printf("  (no crash)\n");
}

void TestThreads() {
  std::printf("== threads\n");
  const Image& src = g_decoded["p_rgba16.png"];  // 480x300 + alpha
  EncodeParams p;
  p.quality = 70;
  std::vector<uint8_t> ref_webp, ref_avif, ref_png;
  CHECK_OK(EncodeWebp(src, p, &ref_webp));
  CHECK_OK(EncodeAvif(src, p, &ref_avif));
  CHECK_OK(EncodePng(src, p, &ref_png));
  std::vector<uint8_t> p3 = P3Profile();
  std::atomic<int> mismatches{0};
  const int kThreads = 8;
  double t0 = Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        Image im;
        if (!DecodePng(ref_png.data(), ref_png.size(), Limits(), &im).ok()) ++mismatches;
        std::vector<uint8_t> out;
        switch ((t + i) % 3) {
          case 0:
            EncodeWebp(im, p, &out);
            if (out != ref_webp) ++mismatches;
            break;
          case 1:
            EncodeAvif(im, p, &out);
            if (out != ref_avif) ++mismatches;
            break;
          case 2:
            EncodePng(im, p, &out);
            if (out != ref_png) ++mismatches;
            break;
        }
        im.icc = p3;
        if (!ConvertToSrgb(&im).ok()) ++mismatches;
        if (!IsSrgbProfile(p3) == false) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  std::printf("  %d threads x 3 rounds of decode/encode/convert: %.0f ms, %d mismatches\n",
              kThreads, (Now() - t0) * 1e3, mismatches.load());
  CHECK(mismatches == 0, "threaded results differ from single-threaded ones");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR SAMPLES_DIR [mutations-per-file]\n", argv[0]);
    return 2;
  }
  const std::string corpus = argv[1];
  const std::string dir = argv[2];
  const int mutations = argc > 3 ? std::atoi(argv[3]) : 150;
  std::vector<Sample> samples;
  {
    std::ifstream manifest(dir + "/manifest.txt");
    Sample s;
    while (manifest >> s.name >> s.width >> s.height) samples.push_back(s);
  }
  if (samples.empty()) {
    std::fprintf(stderr, "no samples in %s (run make_codec_samples.py)\n", dir.c_str());
    return 2;
  }
  const char* enc = avifCodecName(AVIF_CODEC_CHOICE_AUTO, AVIF_CODEC_FLAG_CAN_ENCODE);
  std::printf("libavif %s, AVIF encoder: %s\n", avifVersion(), enc ? enc : "(none)");
  TestCorpusPng(corpus);
  TestDecodeSamples(dir, samples);
  TestEncoders();
  TestIcc();
  TestHostile(dir, samples);
  TestMutations(dir, samples, mutations);
  TestThreads();
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
