#include "resample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <libyuv/planar_functions.h>
#include <libyuv/rotate.h>
#include <libyuv/scale.h>

namespace appliance {
namespace {

constexpr int kWeightBits = 14;
constexpr double kLanczosRadius = 3.0;
constexpr double kPi = 3.14159265358979323846;

// Lanczos-3 sampled every 1/1024 of a pixel: kernels are built for every
// call, and two sin() per tap showed in profiles.
constexpr int kLutSteps = 1024;

struct LanczosTable {
  double values[3 * kLutSteps + 2];
  LanczosTable() {
    values[0] = 1.0;
    for (int i = 1; i < 3 * kLutSteps + 2; ++i) {
      const double x = static_cast<double>(i) / kLutSteps;
      values[i] = x < kLanczosRadius ? kLanczosRadius * std::sin(kPi * x) *
                                           std::sin(kPi * x / kLanczosRadius) / (kPi * kPi * x * x)
                                     : 0.0;
    }
  }
};

double Lanczos3(double x) {
  static const LanczosTable table;
  const double position = std::fabs(x) * kLutSteps;
  const int i = static_cast<int>(position);
  if (i >= 3 * kLutSteps) return 0.0;
  const double f = position - i;
  return table.values[i] * (1 - f) + table.values[i + 1] * f;
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

// out[x] = sum_j w[j] * rows[j][x] over whole rows. Both passes of the
// resampler run through here (the horizontal one on a transposed plane), so
// this is the loop that matters. Rows must be readable, and `out` writable, up
// to `width` rounded up to 16.
void FilterRowsScalar(const uint8_t* const* rows, const int16_t* w, int taps, int width,
                      uint8_t* out) {
  for (int x = 0; x < width; ++x) {
    int32_t sum = 0;
    for (int j = 0; j < taps; ++j) sum += w[j] * rows[j][x];
    out[x] = ClampPixel(sum);
  }
}

#if defined(__x86_64__)
// 16 pixels at a time: pairs of rows interleaved into 16-bit lanes, so one
// vpmaddwd multiplies two taps and adds them.
__attribute__((target("avx2"))) void FilterRowsAvx2(const uint8_t* const* rows,
                                                      const int16_t* w, int taps, int width,
                                                      uint8_t* out) {
  const __m256i round = _mm256_set1_epi32(1 << (kWeightBits - 1));
  for (int x = 0; x < width; x += 16) {
    __m256i acc_lo = round, acc_hi = round;
    int j = 0;
    for (; j + 1 < taps; j += 2) {
      const __m256i a = _mm256_cvtepu8_epi16(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[j] + x)));
      const __m256i b = _mm256_cvtepu8_epi16(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[j + 1] + x)));
      const __m256i pair = _mm256_set1_epi32(
          static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(w[j + 1])) << 16) |
                               static_cast<uint16_t>(w[j])));
      acc_lo = _mm256_add_epi32(acc_lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), pair));
      acc_hi = _mm256_add_epi32(acc_hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), pair));
    }
    if (j < taps) {
      const __m256i a = _mm256_cvtepu8_epi16(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[j] + x)));
      const __m256i single = _mm256_set1_epi32(static_cast<uint16_t>(w[j]));
      const __m256i zero = _mm256_setzero_si256();
      acc_lo = _mm256_add_epi32(acc_lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, zero), single));
      acc_hi = _mm256_add_epi32(acc_hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, zero), single));
    }
    // The in-lane unpacks and packs undo each other; one cross-lane permute
    // puts the two 8-pixel halves together.
    const __m256i words = _mm256_packs_epi32(_mm256_srai_epi32(acc_lo, kWeightBits),
                                             _mm256_srai_epi32(acc_hi, kWeightBits));
    const __m256i bytes = _mm256_packus_epi16(words, words);
    const __m256i ordered = _mm256_permute4x64_epi64(bytes, 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + x), _mm256_castsi256_si128(ordered));
  }
}

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

void FilterRows(const uint8_t* const* rows, const int16_t* w, int taps, int width, uint8_t* out) {
#if defined(__x86_64__)
  if (HasAvx2()) {
    FilterRowsAvx2(rows, w, taps, width, out);
    return;
  }
#endif
  FilterRowsScalar(rows, w, taps, width, out);
}

// Filters along the columns of `src` (first..first+width of each row) into
// dst, one output row per kernel entry.
void FilterVertically(const Plane& src, int first_column, int width, const Kernel& k,
                      Plane* dst) {
  std::vector<const uint8_t*> rows(static_cast<size_t>(k.taps));
  const int out_rows = static_cast<int>(k.first.size());
  for (int y = 0; y < out_rows; ++y) {
    for (int j = 0; j < k.taps; ++j) {
      rows[j] = src.row(std::min(k.first[y] + j, src.height() - 1)) + first_column;
    }
    FilterRows(rows.data(), &k.weight[static_cast<size_t>(y) * k.taps], k.taps, width,
               dst->row(y));
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

  // Vertical pass over the source columns the horizontal pass reads, then the
  // horizontal pass as a vertical one on the transposed result (libyuv's SIMD
  // rotations), so both run 16 pixels at a time.
  const Kernel kx = MakeKernel(r.x, r.width, in->width(), width);
  const Kernel ky = MakeKernel(r.y, r.height, in->height(), height);
  const int col_lo = kx.first.front();
  const int col_hi = std::min(in->width(), kx.first.back() + kx.taps);
  const int span = col_hi - col_lo;
  Kernel kx_local = kx;
  for (int& f : kx_local.first) f -= col_lo;
  Plane columns, turned, filtered;
  APPLIANCE_RETURN_IF_ERROR(columns.Allocate(span, height));
  FilterVertically(*in, col_lo, span, ky, &columns);
  APPLIANCE_RETURN_IF_ERROR(turned.Allocate(height, span));
  libyuv::RotatePlane(columns.data(), columns.stride(), turned.data(), turned.stride(), span,
                      height, libyuv::kRotate90);
  APPLIANCE_RETURN_IF_ERROR(filtered.Allocate(height, width));
  FilterVertically(turned, 0, height, kx_local, &filtered);
  APPLIANCE_RETURN_IF_ERROR(dst->Allocate(width, height));
  libyuv::RotatePlane(filtered.data(), filtered.stride(), dst->data(), dst->stride(), height,
                      width, libyuv::kRotate270);
  return Status::Ok();
}

}  // namespace appliance
