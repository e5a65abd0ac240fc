#include "jpeg_scaled.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "codecs.h"
#include "jpeg_bits.h"
#include "jpeg_scans.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif
#if defined(APPLIANCE_SCAN_VARIANTS)
#include <cpuid.h>
#endif

namespace appliance {
namespace {

using jpeg_internal::Corner;
using jpeg_internal::HuffmanTable;
using jpeg_internal::kNaturalOrder;
using jpeg_internal::Scan;
using jpeg_internal::ScanComponent;

constexpr int kMaxComponents = jpeg_internal::kMaxScanComponents;
constexpr int kMaxBlocksInMcu = 10;    // T.81 B.2.3
constexpr int kMaxAl = 13;             // libjpeg's limit for 8-bit data
// The coefficient arrays of the largest image the limits admit stay far below
// this; it guards the arithmetic, not the policy.
constexpr uint64_t kMaxCoefficientBytes = uint64_t{4} << 30;
// Zeros after the last block, which the 3-point IDCT reads past.
constexpr size_t kCoefficientPadding = 8;
// What each thread keeps between scaled decodes: a 12 MP 4:2:0 photo's arrays.
constexpr size_t kKeptArrayBytes = size_t{16} << 20;

uint16_t Read16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
int DivUp(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

Status ParseFrame(const uint8_t* s, size_t length, const Limits& limits, int luma_side,
                  int chroma_side, JpegCoefficients* f) {
  if (length < 6) return Corrupt("JPEG frame header is short");
  if (s[0] != 8) return Unsupported("JPEG sample precision is not 8 bits");
  f->height = Read16(s + 1);
  f->width = Read16(s + 3);
  const int count = s[5];
  if (f->height == 0) return Unsupported("JPEG height is defined by a DNL marker");
  if (count < 1 || count > kMaxComponents) {
    return Unsupported("JPEG has an unsupported component count");
  }
  if (length != 6 + 3 * static_cast<size_t>(count)) {
    return Corrupt("JPEG frame header length is wrong");
  }
  APPLIANCE_RETURN_IF_ERROR(CheckSourceSize(static_cast<uint64_t>(f->width),
                                            static_cast<uint64_t>(f->height), limits));
  // Fresh components that keep the arrays of a previous decode into `f`, if any.
  f->components.resize(static_cast<size_t>(count));
  for (ComponentCoefficients& c : f->components) {
    std::vector<int16_t> coefficients = std::move(c.coefficients);
    std::vector<uint64_t> nonzero = std::move(c.nonzero);
    c = ComponentCoefficients();
    c.coefficients = std::move(coefficients);
    c.nonzero = std::move(nonzero);
  }
  f->max_h_samp = f->max_v_samp = 1;
  for (int i = 0; i < count; ++i) {
    ComponentCoefficients& c = f->components[i];
    c.id = s[6 + 3 * i];
    c.h_samp = s[7 + 3 * i] >> 4;
    c.v_samp = s[7 + 3 * i] & 15;
    c.quant_table = s[8 + 3 * i];
    if (c.h_samp < 1 || c.h_samp > 4 || c.v_samp < 1 || c.v_samp > 4 || c.quant_table > 3) {
      return Corrupt("JPEG component header is invalid");
    }
    f->max_h_samp = std::max(f->max_h_samp, c.h_samp);
    f->max_v_samp = std::max(f->max_v_samp, c.v_samp);
  }
  f->mcus_per_row = DivUp(f->width, 8LL * f->max_h_samp);
  f->mcu_rows = DivUp(f->height, 8LL * f->max_v_samp);
  // Every size below is at most 65535 * 4 blocks a side, so it fits an int;
  // the byte total is summed in 64 bits and bounded before anything is allocated.
  uint64_t total_bytes = 0;
  for (ComponentCoefficients& c : f->components) {
    c.width_in_blocks = DivUp(static_cast<int64_t>(f->width) * c.h_samp, 8LL * f->max_h_samp);
    c.height_in_blocks = DivUp(static_cast<int64_t>(f->height) * c.v_samp, 8LL * f->max_v_samp);
    c.blocks_wide = f->mcus_per_row * c.h_samp;
    c.blocks_high = f->mcu_rows * c.v_samp;
    c.side = &c == &f->components[0] ? luma_side : chroma_side;
    total_bytes += static_cast<uint64_t>(c.blocks_wide) * static_cast<uint64_t>(c.blocks_high) *
                   (static_cast<uint64_t>(c.side * c.side) * sizeof(int16_t) + sizeof(uint64_t));
  }
  if (total_bytes > kMaxCoefficientBytes || total_bytes > SIZE_MAX) {
    return TooLarge("JPEG coefficient arrays would need " + std::to_string(total_bytes) + " bytes");
  }
  for (ComponentCoefficients& c : f->components) {
    const size_t blocks = static_cast<size_t>(c.blocks_wide) * static_cast<size_t>(c.blocks_high);
    c.coefficients.assign(blocks * static_cast<size_t>(c.side * c.side) + kCoefficientPadding, 0);
    c.nonzero.assign(blocks, 0);
  }
  return Status::Ok();
}

// Validates a progressive SOS header against T.81 G.1.1.1 (the checks libjpeg
// treats as fatal) and binds its components and tables.
Status ParseScan(const uint8_t* s, size_t n, JpegCoefficients* frame,
                 HuffmanTable* dc_tables, HuffmanTable* ac_tables,
                 const std::array<std::array<uint16_t, kDctBlockSize>, 4>& quant,
                 const std::array<bool, 4>& quant_defined, Scan* scan) {
  if (n < 1) return Corrupt("JPEG scan header is short");
  const int ns = s[0];
  if (ns < 1 || ns > static_cast<int>(frame->components.size()) ||
      n != 4 + 2 * static_cast<size_t>(ns)) {
    return Corrupt("JPEG scan header is invalid");
  }
  scan->ns = ns;
  scan->ss = s[1 + 2 * ns];
  scan->se = s[2 + 2 * ns];
  scan->ah = s[3 + 2 * ns] >> 4;
  scan->al = s[3 + 2 * ns] & 15;
  scan->sequential = !frame->progressive;
  if (scan->sequential) {
    // libjpeg only warns about other values here; leave such files to it.
    if (scan->ss != 0 || scan->se != 63 || scan->ah != 0 || scan->al != 0) {
      return Unsupported("JPEG sequential scan has progression parameters");
    }
  }
  const Status bad = Corrupt("JPEG progression parameters are invalid");
  if (scan->sequential) {
  } else if (scan->ss == 0) {
    if (scan->se != 0) return bad;
  } else {
    if (scan->se < scan->ss || scan->se > 63 || ns != 1) return bad;
  }
  if ((scan->ah != 0 && scan->al != scan->ah - 1) || scan->al > kMaxAl) return bad;
  int blocks_in_mcu = 0;
  for (int i = 0; i < ns; ++i) {
    const int id = s[1 + 2 * i];
    const int dc_id = s[2 + 2 * i] >> 4, ac_id = s[2 + 2 * i] & 15;
    ComponentCoefficients* c = nullptr;
    for (ComponentCoefficients& candidate : frame->components) {
      if (candidate.id == id) c = &candidate;
    }
    if (c == nullptr) return Corrupt("JPEG scan names an unknown component");
    for (int k = 0; k < i; ++k) {
      if (scan->comps[k].component == c) return Corrupt("JPEG scan repeats a component");
    }
    if (dc_id > 3 || ac_id > 3) return Corrupt("JPEG scan names an invalid Huffman table");
    if (scan->ss == 0 && scan->ah == 0 && !dc_tables[dc_id].defined) {
      return Corrupt("JPEG scan uses an undefined Huffman table");
    }
    if ((scan->ss != 0 || scan->sequential) && !ac_tables[ac_id].defined) {
      return Corrupt("JPEG scan uses an undefined Huffman table");
    }
    if (!c->quant_latched) {
      if (!quant_defined[c->quant_table]) return Corrupt("JPEG quantisation table is undefined");
      c->quant = quant[c->quant_table];
      c->quant_latched = true;
    }
    blocks_in_mcu += ns > 1 ? c->h_samp * c->v_samp : 1;
    scan->comps[i] =
        ScanComponent{c, &jpeg_internal::CornerFor(c->side), &dc_tables[dc_id], &ac_tables[ac_id], 0};
  }
  if (blocks_in_mcu > kMaxBlocksInMcu) return Corrupt("JPEG MCU holds too many blocks");
  return Status::Ok();
}

// N values as one vector (GCC's vector extension: SSE on x86-64, NEON on arm64).
template <int N>
struct Vectors;
template <>
struct Vectors<2> {
  typedef float Row __attribute__((vector_size(8)));
  typedef int32_t IntRow __attribute__((vector_size(8)));
  typedef int16_t ShortRow __attribute__((vector_size(4)));
  typedef uint8_t ByteRow __attribute__((vector_size(2)));
};
template <>
struct Vectors<3> {  // four lanes, the last unused (only the SSE2 path uses N = 3 rows)
  typedef float Row __attribute__((vector_size(16)));
  typedef int32_t IntRow __attribute__((vector_size(16)));
  typedef int16_t ShortRow __attribute__((vector_size(8)));
  typedef uint8_t ByteRow __attribute__((vector_size(4)));
};
template <>
struct Vectors<4> {
  typedef float Row __attribute__((vector_size(16)));
  typedef int32_t IntRow __attribute__((vector_size(16)));
  typedef int16_t ShortRow __attribute__((vector_size(8)));
  typedef uint8_t ByteRow __attribute__((vector_size(4)));
};

// The n-point inverse DCT (n = 2 or 4) of a block's n x n lowest frequencies,
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
    const __m128 level = _mm_set1_ps(128.5f);  // the level shift; truncation rounds
    const __m128i bytes = _mm_packus_epi16(
        _mm_packs_epi32(_mm_cvttps_epi32(_mm_add_ps(f[0], level)),
                        _mm_cvttps_epi32(_mm_add_ps(f[1], level))),
        _mm_packs_epi32(_mm_cvttps_epi32(_mm_add_ps(f[2], level)), _mm_setzero_si128()));
    const int32_t rows_out[3] = {_mm_cvtsi128_si32(bytes),
                                 _mm_cvtsi128_si32(_mm_srli_si128(bytes, 4)),
                                 _mm_cvtsi128_si32(_mm_srli_si128(bytes, 8))};
    for (int y = 0; y < 3; ++y) std::memcpy(out + y * stride, &rows_out[y], 3);
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
    const __m128 level = _mm_set1_ps(128.5f);  // the level shift; truncation rounds
    __m128i pixels[4];
    for (int y = 0; y < 4; ++y) pixels[y] = _mm_cvttps_epi32(_mm_add_ps(f[y], level));
    // Signed saturation to int16, then unsigned to uint8: the clamp to 0..255.
    const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(pixels[0], pixels[1]),
                                           _mm_packs_epi32(pixels[2], pixels[3]));
    const int32_t rows_out[4] = {_mm_cvtsi128_si32(bytes),
                                 _mm_cvtsi128_si32(_mm_srli_si128(bytes, 4)),
                                 _mm_cvtsi128_si32(_mm_srli_si128(bytes, 8)),
                                 _mm_cvtsi128_si32(_mm_srli_si128(bytes, 12))};
    for (int y = 0; y < 4; ++y) std::memcpy(out + y * stride, &rows_out[y], 4);
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

bool WriteScaledPlanes(const JpegCoefficients& f, Image* image) {
  for (size_t i = 0; i < f.components.size(); ++i) {
    const int side = f.components[i].side;
    const bool ok = side == 4   ? WriteScaledPlane<4>(f, static_cast<int>(i), image)
                    : side == 3 ? WriteScaledPlane<3>(f, static_cast<int>(i), image)
                    : side == 2 ? WriteScaledPlane<2>(f, static_cast<int>(i), image)
                                : false;
    if (!ok) return false;
  }
  image->model = f.components.size() == 1 ? ColorModel::kGray : ColorModel::kYCbCr;
  image->width = image->planes[0].width();
  image->height = image->planes[0].height();
  return true;
}

}  // namespace

namespace jpeg_internal {

#if defined(APPLIANCE_SCAN_VARIANTS)
namespace {

// AMD before Zen 3 (and Hygon) runs pdep in microcode, hundreds of cycles.
bool PdepIsSlow() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return true;
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  if (std::strcmp(vendor, "AuthenticAMD") != 0 && std::strcmp(vendor, "HygonGenuine") != 0) {
    return false;
  }
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return true;
  int family = (eax >> 8) & 0xF;
  if (family == 0xF) family += (eax >> 20) & 0xFF;
  return family < 0x19;
}

}  // namespace
#endif

const Corner& CornerFor(int side) {
  static const Corner corners[] = {Corner(1), Corner(2), Corner(3), Corner(4), Corner(8)};
  return corners[side <= 4 ? side - 1 : 4];
}

ScanDecoder ChooseScanDecoder() {
  static const ScanDecoder chosen = [] {
    const char* name = std::getenv("APPLIANCE_SCAN_DECODER");
    const std::string wanted = name != nullptr ? name : "";
#if defined(APPLIANCE_SCAN_VARIANTS)
    __builtin_cpu_init();
    const bool popcnt = __builtin_cpu_supports("popcnt");
    const bool bmi2 = popcnt && __builtin_cpu_supports("bmi2");
    if (wanted == "bmi2" && bmi2) return DecodeScanBmi2;
    if (wanted == "popcnt" && popcnt) return DecodeScanPopcnt;
    if (wanted.empty() && bmi2 && !PdepIsSlow()) return DecodeScanBmi2;
    if (wanted.empty() && popcnt) return DecodeScanPopcnt;
#endif
    return DecodeScanPortable;
  }();
  return chosen;
}

}  // namespace jpeg_internal

Status DecodeCoefficients(const uint8_t* data, size_t size,
                                     JpegCoefficients* out, const Limits& limits,
                                     int side, int chroma_side) {
  if (chroma_side == 0) chroma_side = side;
  for (int n : {side, chroma_side}) {
    if (n != 1 && n != 2 && n != 3 && n != 4 && n != 8) {
      return Unsupported("coefficient corner must be 1, 2, 3, 4 or 8 wide");
    }
  }
  if (data == nullptr || size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
    return Corrupt("not a JPEG");
  }
  const uint8_t* p = data + 2;
  const uint8_t* end = data + size;
  JpegCoefficients& frame = *out;
  bool have_frame = false;
  std::array<std::array<uint16_t, kDctBlockSize>, 4> quant{};
  std::array<bool, 4> quant_defined{};
  HuffmanTable dc_tables[4];
  HuffmanTable ac_tables[4];
  const jpeg_internal::ScanDecoder decode_scan = jpeg_internal::ChooseScanDecoder();
  int restart_interval = 0;
  int scans = 0;
  const Status truncated = Corrupt("JPEG is truncated");

  while (true) {
    if (end - p < 2) return truncated;
    if (p[0] != 0xFF) return Corrupt("JPEG marker expected");
    const uint8_t marker = p[1];
    if (marker == 0xFF) {  // fill byte
      ++p;
      continue;
    }
    if (marker == 0xD9) break;  // EOI
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      return Corrupt("JPEG has a marker out of place");
    }
    if (end - p < 4) return truncated;
    const size_t length = Read16(p + 2);
    if (length < 2) return Corrupt("JPEG marker length is invalid");
    if (static_cast<size_t>(end - p) < 2 + length) return truncated;
    const uint8_t* s = p + 4;
    const size_t n = length - 2;
    const uint8_t* next = p + 2 + length;
    switch (marker) {
      case 0xC0:  // SOF0: baseline
      case 0xC1:  // SOF1: extended sequential, Huffman
      case 0xC2:  // SOF2: progressive, Huffman
        if (have_frame) return Corrupt("JPEG has two frame headers");
        APPLIANCE_RETURN_IF_ERROR(ParseFrame(s, n, limits, side, chroma_side, &frame));
        frame.progressive = marker == 0xC2;
        have_frame = true;
        break;
      case 0xC3: case 0xC5: case 0xC6: case 0xC7:
      case 0xC9: case 0xCA: case 0xCB: case 0xCD: case 0xCE: case 0xCF:
        return Unsupported("JPEG is lossless, hierarchical or arithmetic-coded");
      case 0xDB: {  // DQT
        size_t i = 0;
        while (i < n) {
          const int precision = s[i] >> 4, id = s[i] & 15;
          const size_t entries = precision ? 128 : 64;
          if (id > 3 || precision > 1 || i + 1 + entries > n) {
            return Corrupt("JPEG quantisation table is invalid");
          }
          for (int k = 0; k < kDctBlockSize; ++k) {
            quant[id][kNaturalOrder[k]] =
                precision ? Read16(s + i + 1 + 2 * k) : s[i + 1 + k];
          }
          quant_defined[id] = true;
          i += 1 + entries;
        }
        break;
      }
      case 0xC4: {  // DHT
        size_t i = 0;
        while (i < n) {
          if (i + 17 > n) return Corrupt("JPEG Huffman table is short");
          const int table_class = s[i] >> 4, id = s[i] & 15;
          int total = 0;
          for (int k = 0; k < 16; ++k) total += s[i + 1 + k];
          if (id > 3 || table_class > 1 || i + 17 + total > n) {
            return Corrupt("JPEG Huffman table is invalid");
          }
          HuffmanTable& table = table_class == 0 ? dc_tables[id] : ac_tables[id];
          if (!table.Build(s + i + 1, s + i + 17, total, /*ac=*/table_class == 1)) {
            return Corrupt("JPEG Huffman table is invalid");
          }
          i += 17 + static_cast<size_t>(total);
        }
        break;
      }
      case 0xDD:  // DRI
        if (n < 2) return Corrupt("JPEG restart interval is short");
        restart_interval = Read16(s);
        break;
      case 0xDA: {  // SOS
        if (!have_frame) return Corrupt("JPEG scan before the frame header");
        if (++scans > kMaxJpegScans) return Corrupt("JPEG has too many scans");
        Scan scan;
        APPLIANCE_RETURN_IF_ERROR(ParseScan(s, n, &frame, dc_tables, ac_tables, quant,
                                            quant_defined, &scan));
        APPLIANCE_RETURN_IF_ERROR(
            decode_scan(next, end, frame, &scan, restart_interval, &next));
        break;
      }
      default:  // APPn, COM and the rest
        break;
    }
    p = next;
  }
  if (!have_frame || scans == 0) return Corrupt("JPEG has no image data");
  return Status::Ok();
}

bool DecodeScaled(const uint8_t* data, size_t size, int n, int chroma_n, const Limits& limits,
                  Image* image) {
  if (n < 2 || n > 4 || chroma_n < 2 || chroma_n > 4) return false;
  // Each thread keeps its coefficient arrays for the next decode, up to a bound:
  // allocating them afresh costs more page faults than the decode of most scans.
  static thread_local JpegCoefficients frame;
  const bool ok = DecodeCoefficients(data, size, &frame, limits, n, chroma_n).ok() &&
                  (frame.components.size() == 1 || frame.components.size() == 3) &&
                  std::all_of(frame.components.begin(), frame.components.end(),
                              // a component no scan carried: libjpeg's business
                              [](const ComponentCoefficients& c) { return c.quant_latched; }) &&
                  WriteScaledPlanes(frame, image);
  size_t kept_bytes = 0;
  for (const ComponentCoefficients& c : frame.components) {
    kept_bytes += c.coefficients.capacity() * sizeof(int16_t) + c.nonzero.capacity() * sizeof(uint64_t);
  }
  if (kept_bytes > kKeptArrayBytes) frame = JpegCoefficients();
  return ok;
}

}  // namespace appliance
