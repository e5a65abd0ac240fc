#include "jpeg_idct.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "jpeg_bits.h"
#include "parallel.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

namespace appliance {
namespace {

using jpeg_internal::DivUp;

// Rows of `kLanes` values as vectors (GCC's vector extension: SSE on x86-64,
// NEON on arm64).
template <int kLanes>
struct LaneVectors {
  typedef float Row __attribute__((vector_size(kLanes * sizeof(float))));
  typedef int32_t IntRow __attribute__((vector_size(kLanes * sizeof(int32_t))));
  typedef int16_t ShortRow __attribute__((vector_size(kLanes * sizeof(int16_t))));
  typedef uint8_t ByteRow __attribute__((vector_size(kLanes * sizeof(uint8_t))));
};
// A row of an N-point transform: 2 lanes, or 4 (for N = 3 the last unused).
template <int N>
using Vectors = LaneVectors<N == 2 ? 2 : 4>;

// The n-point inverse DCT (n = 2, 3 or 4) of a block's n x n lowest frequencies,
// normalised as the 8-point one so that a flat block keeps its level:
//   out(x, y) = sum over u, v < n of a(x, u) a(y, v) F(u, v),
//   a(x, u) = C(u) / 2 * cos((2x + 1) u pi / 2n), C(0) = 1 / sqrt(2), else 1.
// That is a DCT-domain downscale by 8 / n: the frequencies the smaller grid can
// hold, and none it would alias.
template <int N>
class ScaledIdct {
 public:
  using Row = typename Vectors<N>::Row;

  ScaledIdct() {
    for (int x = 0; x < N; ++x) {
      for (int u = 0; u < N; ++u) {
        const double c = u == 0 ? std::sqrt(0.5) : 1.0;
        const float a = static_cast<float>(c / 2 * std::cos((2 * x + 1) * u * M_PI / (2 * N)));
        by_frequency_[u][x] = a;
        by_position_[x][u] = a;
      }
    }
  }

  // The quantiser's N x N corner (natural order, 8 wide) as rows of floats.
  static void Dequantiser(const std::array<uint16_t, kDctBlockSize>& quant, Row* rows) {
    float values[N][sizeof(Row) / sizeof(float)] = {};
    for (int v = 0; v < N; ++v) {
      for (int u = 0; u < N; ++u) values[v][u] = quant[v * 8 + u];
    }
    std::memcpy(rows, values, sizeof(values));
  }

  // `coef` is N x N, row by row; each row is one vector.
  void Block(const int16_t* coef, const Row* dequantiser, uint8_t* out, ptrdiff_t stride) const {
    if constexpr (N == 2) return Block2(coef, dequantiser, out, stride);
#if defined(__SSE2__)
    if constexpr (N == 3) return Block3Sse2(coef, dequantiser, out, stride);
    if constexpr (N == 4) return Block4Sse2(coef, dequantiser, out, stride);
#else
    if constexpr (N == 3) return Block3(coef, dequantiser, out, stride);
#endif
    using ShortRow = typename Vectors<N>::ShortRow;
    using IntRow = typename Vectors<N>::IntRow;
    using ByteRow = typename Vectors<N>::ByteRow;
    Row rows[N];  // rows[v]: row v of the frequencies, transformed along x
    for (int v = 0; v < N; ++v) {
      ShortRow quantized;
      std::memcpy(&quantized, coef + v * N, sizeof(quantized));
      const Row f = __builtin_convertvector(quantized, Row) * dequantiser[v];
      Row sum = f[0] * by_frequency_[0];
      for (int u = 1; u < N; ++u) sum += f[u] * by_frequency_[u];
      rows[v] = sum;
    }
    for (int y = 0; y < N; ++y) {
      Row sum = rows[0] * by_position_[y][0] + 128.5f;  // level shift; truncation rounds
      for (int v = 1; v < N; ++v) sum += rows[v] * by_position_[y][v];
      sum = sum < 0.0f ? 0.0f : sum;
      sum = sum > 255.0f ? 255.0f : sum;
      const ByteRow bytes = __builtin_convertvector(__builtin_convertvector(sum, IntRow), ByteRow);
      std::memcpy(out + y * stride, &bytes, sizeof(bytes));
    }
  }

 private:
  // N = 2 exactly, in integers: every a(x, u) is +-1 / (2 sqrt(2)), so each
  // pixel is a sum of the four dequantised coefficients, with signs, over 8.
  static void Block2(const int16_t* coef, const Row* dequantiser, uint8_t* out,
                     ptrdiff_t stride) {
    // 64 bits: a hostile file's 16-bit coefficient times a 16-bit quantiser,
    // four times, would overflow 32.
    const int64_t f00 = coef[0] * static_cast<int64_t>(dequantiser[0][0]);
    const int64_t f01 = coef[1] * static_cast<int64_t>(dequantiser[0][1]);
    const int64_t f10 = coef[2] * static_cast<int64_t>(dequantiser[1][0]);
    const int64_t f11 = coef[3] * static_cast<int64_t>(dequantiser[1][1]);
    const int64_t even = f00 + f10, odd = f01 + f11;          // the top row's two columns
    const int64_t even_low = f00 - f10, odd_low = f01 - f11;  // the bottom row's
    auto pixel = [](int64_t sum) {
      return static_cast<uint8_t>(std::clamp<int64_t>((sum + 1024 + 4) >> 3, 0, 255));
    };
    out[0] = pixel(even + odd);
    out[1] = pixel(even - odd);
    out[stride] = pixel(even_low + odd_low);
    out[stride + 1] = pixel(even_low - odd_low);
  }

  // N = 3 as even and odd halves: a(x, 0) = sqrt(2) / 4; a(x, 1) is
  // +-cos(pi / 6) / 2 at the ends and 0 in the middle; a(x, 2) is 1/4 at the
  // ends and -1/2 in the middle.
  static void Block3(const int16_t* coef, const Row* dequantiser, uint8_t* out,
                     ptrdiff_t stride) {
    constexpr float c0 = 0.35355339059327373f, c1 = 0.43301270189221930f;
    float f[3][3];
    for (int v = 0; v < 3; ++v) {
      for (int u = 0; u < 3; ++u) f[v][u] = coef[v * 3 + u] * dequantiser[v][u];
    }
    float t[3][3];  // t[y][u]: down the columns
    for (int u = 0; u < 3; ++u) {
      const float dc = c0 * f[0][u], odd = c1 * f[1][u];
      t[0][u] = dc + odd + 0.25f * f[2][u];
      t[1][u] = dc - 0.5f * f[2][u];
      t[2][u] = dc - odd + 0.25f * f[2][u];
    }
    for (int y = 0; y < 3; ++y) {  // then across the rows
      const float dc = c0 * t[y][0] + 128.5f, odd = c1 * t[y][1];  // level shift; truncation rounds
      const float p[3] = {dc + odd + 0.25f * t[y][2], dc - 0.5f * t[y][2], dc - odd + 0.25f * t[y][2]};
      for (int x = 0; x < 3; ++x) {
        out[y * stride + x] = static_cast<uint8_t>(std::min(std::max(p[x], 0.0f), 255.0f));
      }
    }
  }

#if defined(__SSE2__)
  // The same in SSE2, four lanes of which three are used. Reads one coefficient
  // past the block, multiplied by a zero (JpegCoefficients pads its arrays).
  static void Block3Sse2(const int16_t* coef, const Row* dequantiser, uint8_t* out,
                         ptrdiff_t stride) {
    __m128 f[4];
    for (int v = 0; v < 3; ++v) {
      const __m128i row = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(coef + 3 * v));
      f[v] = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpacklo_epi16(row, row), 16)),
                        reinterpret_cast<const __m128&>(dequantiser[v]));
    }
    f[3] = _mm_setzero_ps();
    Butterfly3(f);
    _MM_TRANSPOSE4_PS(f[0], f[1], f[2], f[3]);
    Butterfly3(f);
    _MM_TRANSPOSE4_PS(f[0], f[1], f[2], f[3]);
    StoreRows(f, 3, out, stride);
  }

  // The first n pixels of the first n rows, level-shifted, rounded and
  // clamped to 0..255 (by saturating packs) into the plane.
  static void StoreRows(const __m128* rows, int n, uint8_t* out, ptrdiff_t stride) {
    const __m128 level = _mm_set1_ps(128.5f);  // the level shift; truncation rounds
    __m128i pixels[4];
    for (int y = 0; y < 4; ++y) pixels[y] = _mm_cvttps_epi32(_mm_add_ps(rows[y], level));
    alignas(16) uint8_t bytes[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(bytes),
                    _mm_packus_epi16(_mm_packs_epi32(pixels[0], pixels[1]),
                                     _mm_packs_epi32(pixels[2], pixels[3])));
    for (int y = 0; y < n; ++y) std::memcpy(out + y * stride, bytes + 4 * y, static_cast<size_t>(n));
  }

  // The 3-point inverse DCT of vectors v[0..2] (v[k]: frequency k) into
  // v[0..2], v[3] left zero.
  static void Butterfly3(__m128* v) {
    const __m128 c0 = _mm_set1_ps(0.35355339059327373f);  // sqrt(2) / 4
    const __m128 c1 = _mm_set1_ps(0.43301270189221930f);  // cos(pi / 6) / 2
    const __m128 dc = _mm_mul_ps(v[0], c0), odd = _mm_mul_ps(v[1], c1);
    const __m128 quarter = _mm_mul_ps(v[2], _mm_set1_ps(0.25f));
    v[0] = _mm_add_ps(_mm_add_ps(dc, odd), quarter);
    v[1] = _mm_sub_ps(dc, _mm_add_ps(quarter, quarter));
    v[2] = _mm_add_ps(_mm_sub_ps(dc, odd), quarter);
    v[3] = _mm_setzero_ps();
  }

  // The same for N = 4 in SSE2, which x86-64 always has: the conversions in and
  // out a vector at a time, the clamp by saturating packs.
  void Block4Sse2(const int16_t* coef, const Row* dequantiser, uint8_t* out,
                  ptrdiff_t stride) const {
    const __m128i rows01 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(coef));
    const __m128i rows23 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(coef + 8));
    // int16 to int32 by shifting the sign in from the high half, then dequantised.
    __m128 f[4] = {_mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpacklo_epi16(rows01, rows01), 16)),
                   _mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpackhi_epi16(rows01, rows01), 16)),
                   _mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpacklo_epi16(rows23, rows23), 16)),
                   _mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpackhi_epi16(rows23, rows23), 16))};
    for (int v = 0; v < 4; ++v) f[v] = _mm_mul_ps(f[v], reinterpret_cast<const __m128&>(dequantiser[v]));
    // Down the columns (each vector a row of frequencies), across the rows
    // after a transpose, and back.
    Butterfly4(f);
    _MM_TRANSPOSE4_PS(f[0], f[1], f[2], f[3]);
    Butterfly4(f);
    _MM_TRANSPOSE4_PS(f[0], f[1], f[2], f[3]);
    StoreRows(f, 4, out, stride);
  }

  // The 4-point inverse DCT of four vectors at once (v[k]: frequency k), in
  // place, as even and odd halves: a(x, 0) and a(x, 2) are +-sqrt(2)/4, a(x, 1)
  // and a(x, 3) are +-cos(pi/8)/2 and +-cos(3pi/8)/2.
  static void Butterfly4(__m128* v) {
    const __m128 c4 = _mm_set1_ps(0.35355339059327373f);  // sqrt(2) / 4
    const __m128 c1 = _mm_set1_ps(0.46193976625564337f);  // cos(pi / 8) / 2
    const __m128 c3 = _mm_set1_ps(0.19134171618254492f);  // cos(3 pi / 8) / 2
    const __m128 even0 = _mm_mul_ps(_mm_add_ps(v[0], v[2]), c4);
    const __m128 even1 = _mm_mul_ps(_mm_sub_ps(v[0], v[2]), c4);
    const __m128 odd0 = _mm_add_ps(_mm_mul_ps(v[1], c1), _mm_mul_ps(v[3], c3));
    const __m128 odd1 = _mm_sub_ps(_mm_mul_ps(v[1], c3), _mm_mul_ps(v[3], c1));
    v[0] = _mm_add_ps(even0, odd0);
    v[1] = _mm_add_ps(even1, odd1);
    v[2] = _mm_sub_ps(even1, odd1);
    v[3] = _mm_sub_ps(even0, odd0);
  }
#endif

  Row by_frequency_[N];    // [u][x] = a(x, u)
  float by_position_[N][N];  // [x][u] = a(x, u)
};

#if defined(__SSE2__)
// The 2-point IDCT of two neighbouring blocks (8 coefficients in a row), in
// floats: each pixel is a sum of its block's four dequantised coefficients,
// with signs, over 8 (see ScaledIdct<2>::Block2).
void Blocks2Sse2(const int16_t* coef, const Vectors<2>::Row* dequantiser, uint8_t* out,
                 ptrdiff_t stride) {
  const __m128i both = _mm_loadu_si128(reinterpret_cast<const __m128i*>(coef));
  const __m128 quant = _mm_setr_ps(dequantiser[0][0], dequantiser[0][1], dequantiser[1][0],
                                   dequantiser[1][1]);
  const __m128 rows_sign = _mm_setr_ps(1, 1, -1, -1), columns_sign = _mm_setr_ps(1, -1, 1, -1);
  __m128 block[2];
  for (int b = 0; b < 2; ++b) {
    const __m128i wide = b == 0 ? _mm_unpacklo_epi16(both, both) : _mm_unpackhi_epi16(both, both);
    const __m128 f = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srai_epi32(wide, 16)), quant);  // f00 f01 f10 f11
    // Lanes: f00 + f10, f01 + f11, f00 - f10, f01 - f11 ...
    const __m128 rows = _mm_add_ps(_mm_mul_ps(f, rows_sign),
                                   _mm_shuffle_ps(f, f, _MM_SHUFFLE(1, 0, 3, 2)));
    // ... then the sums and differences of those pairs: the four pixels, times 8.
    block[b] = _mm_add_ps(_mm_mul_ps(rows, columns_sign),
                          _mm_shuffle_ps(rows, rows, _MM_SHUFFLE(2, 3, 0, 1)));
  }
  const __m128 eighth = _mm_set1_ps(0.125f), level = _mm_set1_ps(128.5f);
  // Top rows of both blocks, then bottom rows; truncation rounds after the level shift.
  const __m128 top = _mm_shuffle_ps(block[0], block[1], _MM_SHUFFLE(1, 0, 1, 0));
  const __m128 bottom = _mm_shuffle_ps(block[0], block[1], _MM_SHUFFLE(3, 2, 3, 2));
  const __m128i pixels = _mm_packs_epi32(
      _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(top, eighth), level)),
      _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(bottom, eighth), level)));
  const __m128i bytes = _mm_packus_epi16(pixels, pixels);
  const int32_t top_bytes = _mm_cvtsi128_si32(bytes);
  const int32_t bottom_bytes = _mm_cvtsi128_si32(_mm_srli_si128(bytes, 4));
  std::memcpy(out, &top_bytes, 4);
  std::memcpy(out + stride, &bottom_bytes, 4);
}
#endif

// One component through the N-point IDCT into its plane, laid out as
// libjpeg's raw decode at scale N/8 would be with the component's own sampling.
template <int N>
bool WriteScaledPlane(const JpegCoefficients& f, int i, Image* image) {
  static const ScaledIdct<N> idct;
  const ComponentCoefficients& c = f.components[i];
  const int w = DivUp(static_cast<int64_t>(f.width) * c.h_samp * N, 8LL * f.max_h_samp);
  const int h = DivUp(static_cast<int64_t>(f.height) * c.v_samp * N, 8LL * f.max_v_samp);
  Plane& plane = image->planes[i];
  if (!plane.Allocate(w, h, c.width_in_blocks * N, c.height_in_blocks * N).ok()) return false;
  image->scale_x[i] = static_cast<double>(c.h_samp * N) / (8 * f.max_h_samp);
  image->scale_y[i] = static_cast<double>(c.v_samp * N) / (8 * f.max_v_samp);
  typename ScaledIdct<N>::Row dequantiser[N];
  ScaledIdct<N>::Dequantiser(c.quant, dequantiser);
  for (int by = 0; by < c.height_in_blocks; ++by) {
    uint8_t* row = plane.row(by * N);
    int bx = 0;
#if defined(__SSE2__)
    if constexpr (N == 2) {  // two blocks at a time
      for (; bx + 2 <= c.width_in_blocks; bx += 2) {
        Blocks2Sse2(c.Block(bx, by), dequantiser, row + bx * N, plane.stride());
      }
    }
#endif
    for (; bx < c.width_in_blocks; ++bx) {
      idct.Block(c.Block(bx, by), dequantiser, row + bx * N, plane.stride());
    }
  }
  return true;
}

}  // namespace

bool WriteScaledPlanes(const JpegCoefficients& f, Image* image) {
  const int count = static_cast<int>(f.components.size());
  if (count > 3) return false;
  bool ok[3] = {};
  // One component a part (each writes only its own plane), the largest first.
  RunParts(count, [&](int i) {
    const int side = f.components[i].side;
    ok[i] = side == 4   ? WriteScaledPlane<4>(f, i, image)
            : side == 3 ? WriteScaledPlane<3>(f, i, image)
            : side == 2 ? WriteScaledPlane<2>(f, i, image)
                        : false;
  });
  if (!std::all_of(ok, ok + count, [](bool b) { return b; })) return false;
  image->model = f.components.size() == 1 ? ColorModel::kGray : ColorModel::kYCbCr;
  image->width = image->planes[0].width();
  image->height = image->planes[0].height();
  return true;
}

}  // namespace appliance
