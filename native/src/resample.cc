#include "resample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <libyuv/planar_functions.h>
#include <libyuv/scale.h>

namespace appliance {
namespace {

constexpr int kWeightBits = 14;
constexpr double kLanczosRadius = 3.0;
constexpr double kPi = 3.14159265358979323846;

double Sinc(double x) {
  if (x == 0) return 1.0;
  x *= kPi;
  return std::sin(x) / x;
}

double Lanczos3(double x) {
  return x > -kLanczosRadius && x < kLanczosRadius ? Sinc(x) * Sinc(x / kLanczosRadius) : 0.0;
}

// For each output pixel: the first source pixel and `taps` fixed-point weights
// that sum to 1 << kWeightBits. Source indices are clamped into [0, size).
struct Kernel {
  int taps = 0;
  std::vector<int> first;       // per output pixel
  std::vector<int16_t> weight;  // per output pixel, `taps` each
};

Kernel MakeKernel(double start, double extent, int in_size, int out_size) {
  Kernel k;
  const double scale = extent / out_size;      // source pixels per output pixel
  const double support_scale = std::max(scale, 1.0);
  const double support = kLanczosRadius * support_scale;
  k.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  k.first.resize(static_cast<size_t>(out_size));
  k.weight.assign(static_cast<size_t>(out_size) * k.taps, 0);
  std::vector<double> w(static_cast<size_t>(k.taps));
  for (int i = 0; i < out_size; ++i) {
    const double center = start + (i + 0.5) * scale;
    int lo = static_cast<int>(std::floor(center - support));
    int hi = static_cast<int>(std::ceil(center + support));
    if (hi - lo > k.taps) hi = lo + k.taps;
    double sum = 0;
    for (int j = 0; j < k.taps; ++j) {
      const int x = lo + j;
      w[j] = x < hi ? Lanczos3((x + 0.5 - center) / support_scale) : 0.0;
      sum += w[j];
    }
    // Fold taps that fall outside the plane onto its edge pixels.
    const int first = std::clamp(lo, 0, std::max(0, in_size - k.taps));
    k.first[i] = first;
    int16_t* out = &k.weight[static_cast<size_t>(i) * k.taps];
    std::vector<double> folded(static_cast<size_t>(k.taps), 0.0);
    for (int j = 0; j < k.taps; ++j) {
      const int x = std::clamp(lo + j, 0, in_size - 1);
      const int slot = std::clamp(x - first, 0, k.taps - 1);
      folded[slot] += sum != 0 ? w[j] / sum : 0.0;
    }
    // Round so the weights sum exactly to one (the error goes to the largest).
    int total = 0, largest = 0;
    for (int j = 0; j < k.taps; ++j) {
      out[j] = static_cast<int16_t>(std::lround(folded[j] * (1 << kWeightBits)));
      total += out[j];
      if (out[j] > out[largest]) largest = j;
    }
    out[largest] = static_cast<int16_t>(out[largest] + ((1 << kWeightBits) - total));
  }
  return k;
}

uint8_t ClampPixel(int32_t v) {
  v = (v + (1 << (kWeightBits - 1))) >> kWeightBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// out[x] = sum_j w[j] * rows[j][x]: the vectorisable pass, across whole rows.
__attribute__((target_clones("avx2", "default")))
void FilterColumns(const uint8_t* const* rows, const int16_t* w, int taps, int width,
                   int32_t* acc, uint8_t* out) {
  for (int x = 0; x < width; ++x) acc[x] = 0;
  for (int j = 0; j < taps; ++j) {
    const int32_t wj = w[j];
    if (wj == 0) continue;
    const uint8_t* row = rows[j];
    for (int x = 0; x < width; ++x) acc[x] += wj * row[x];
  }
  for (int x = 0; x < width; ++x) out[x] = ClampPixel(acc[x]);
}

// `in` holds source columns from `offset` on.
void FilterRow(const uint8_t* in, int offset, const Kernel& k, int width, uint8_t* out) {
  const int taps = k.taps;
  for (int x = 0; x < width; ++x) {
    const uint8_t* src = in + (k.first[x] - offset);
    const int16_t* w = &k.weight[static_cast<size_t>(x) * taps];
    int32_t sum = 0;
    for (int j = 0; j < taps; ++j) sum += w[j] * src[j];
    out[x] = ClampPixel(sum);
  }
}

// The same row filter when the kernel has more taps than the plane has pixels:
// every index is clamped.
void FilterRowClamped(const uint8_t* in, int in_width, const Kernel& k, int width,
                      uint8_t* out) {
  for (int x = 0; x < width; ++x) {
    const int16_t* w = &k.weight[static_cast<size_t>(x) * k.taps];
    int32_t sum = 0;
    for (int j = 0; j < k.taps; ++j) sum += w[j] * in[std::min(k.first[x] + j, in_width - 1)];
    out[x] = ClampPixel(sum);
  }
}

}  // namespace

Status ResamplePlane(const Plane& src, const RegionF& region, int width, int height,
                     Plane* dst) {
  if (width <= 0 || height <= 0 || region.width <= 0 || region.height <= 0) {
    return InvalidArgument("empty resample");
  }
  // A large reduction first averages whole boxes (cheap, exact area sampling),
  // leaving the Lanczos filter a factor between 1.5 and 3.
  const int box_x = std::max(1, static_cast<int>(region.width / width / 1.5));
  const int box_y = std::max(1, static_cast<int>(region.height / height / 1.5));
  Plane boxed;
  const Plane* in = &src;
  RegionF r = region;
  if (box_x > 1 || box_y > 1) {
    // The whole plane, so no edge pixels are dropped (libyuv's boxes vary by a
    // pixel where the factor is not a whole number).
    const int bw = (src.width() + box_x - 1) / box_x, bh = (src.height() + box_y - 1) / box_y;
    APPLIANCE_RETURN_IF_ERROR(boxed.Allocate(bw, bh));
    libyuv::ScalePlane(src.data(), src.stride(), src.width(), src.height(), boxed.data(),
                       boxed.stride(), bw, bh, libyuv::kFilterBox);
    const double fx = static_cast<double>(bw) / src.width();
    const double fy = static_cast<double>(bh) / src.height();
    r = RegionF{region.x * fx, region.y * fy, region.width * fx, region.height * fy};
    in = &boxed;
  }

  APPLIANCE_RETURN_IF_ERROR(dst->Allocate(width, height));
  const Kernel kx = MakeKernel(r.x, r.width, in->width(), width);
  const Kernel ky = MakeKernel(r.y, r.height, in->height(), height);
  // Columns first, over only the source columns the row filter will read.
  const int col_lo = kx.first.front();
  const int col_hi = std::min(in->width(), kx.first.back() + kx.taps);
  const int span = col_hi - col_lo;
  std::vector<int32_t> acc(static_cast<size_t>(span));
  std::vector<uint8_t> column(static_cast<size_t>(span) + 64);
  std::vector<const uint8_t*> rows(static_cast<size_t>(ky.taps));
  const bool clamped = kx.taps > in->width();
  for (int y = 0; y < height; ++y) {
    for (int j = 0; j < ky.taps; ++j) {
      rows[j] = in->row(std::min(ky.first[y] + j, in->height() - 1)) + col_lo;
    }
    FilterColumns(rows.data(), &ky.weight[static_cast<size_t>(y) * ky.taps], ky.taps, span,
                  acc.data(), column.data());
    if (clamped) {  // then col_lo is 0 and the column holds the whole row
      FilterRowClamped(column.data(), in->width(), kx, width, dst->row(y));
    } else {
      FilterRow(column.data(), col_lo, kx, width, dst->row(y));
    }
  }
  return Status::Ok();
}

}  // namespace appliance
