#include "jpeg_progressive.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "codecs.h"
#include "jpeg_bits.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// The scan decoders count bits with popcount; on x86-64 they are also built for
// CPUs that have the instruction (every x86-64 server since 2008) and chosen at
// load time, as the portable build cannot assume it.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define APPLIANCE_POPCOUNT_CLONES __attribute__((target_clones("default", "popcnt")))
#else
#define APPLIANCE_POPCOUNT_CLONES
#endif
// Inlined into the clones above, so that they are built for each target too.
#define APPLIANCE_INLINE inline __attribute__((always_inline))

namespace appliance {
namespace {

using jpeg_internal::BitReader;
using jpeg_internal::DecodeRefilled;
using jpeg_internal::Extend;
using jpeg_internal::HuffmanTable;

constexpr int kMaxComponents = 4;      // the most a scan can hold (T.81 B.2.3)
constexpr int kMaxBlocksInMcu = 10;    // T.81 B.2.3
constexpr int kMaxAl = 13;             // libjpeg's limit for 8-bit data
// The coefficient arrays of the largest image the limits admit stay far below
// this; it guards the arithmetic, not the policy.
constexpr uint64_t kMaxCoefficientBytes = uint64_t{4} << 30;
// What each thread keeps between scaled decodes: a 12 MP 4:2:0 photo's arrays.
constexpr size_t kKeptArrayBytes = size_t{16} << 20;

// Zigzag index -> natural (row-major) index (T.81 Figure A.6).
constexpr uint8_t kNaturalOrder[kDctBlockSize] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

uint16_t Read16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
int DivUp(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

// libjpeg keeps coefficients as 16-bit JCOEF and shifts before it narrows.
int16_t ShiftToCoef(int value, int al) {
  return static_cast<int16_t>(static_cast<uint32_t>(value) << al);
}

// Zigzag positions k.. (none past 63).
uint64_t From(int k) { return k >= 64 ? 0 : ~uint64_t{0} << k; }

// Where each zigzag coefficient is kept in a block's side x side corner.
struct Corner {
  explicit Corner(int side) {
    for (int k = 0; k < kDctBlockSize; ++k) {
      const int row = kNaturalOrder[k] / 8, col = kNaturalOrder[k] % 8;
      slot[k] = static_cast<int8_t>(row < side && col < side ? row * side + col : -1);
      if (slot[k] >= 0) kept |= uint64_t{1} << k;
    }
  }
  std::array<int8_t, kDctBlockSize> slot{};  // -1: not kept
  uint64_t kept = 0;                         // zigzag bits of the kept ones
};

struct ScanComponent {
  ComponentCoefficients* component;
  const HuffmanTable* dc_table;
  const HuffmanTable* ac_table;
  int predictor;
};

struct Scan {
  int ns = 0;
  ScanComponent comps[kMaxComponents];
  int ss = 0, se = 0, ah = 0, al = 0;
  int eobrun = 0;  // blocks left in an end-of-band run (AC scans)
};

// The per-block decoders. Each returns false for data that cannot be valid.
APPLIANCE_INLINE bool DecodeDcFirst(BitReader* reader, ScanComponent* sc, int al,
                                    int16_t* block) {
  reader->Refill();
  const int s = DecodeRefilled(reader, *sc->dc_table);
  if (s < 0 || s > 16) return false;
  const int diff = s ? Extend(static_cast<int>(reader->Take(s)), s) : 0;
  const int64_t sum = static_cast<int64_t>(sc->predictor) + diff;
  if (sum > INT32_MAX || sum < INT32_MIN) return false;
  sc->predictor = static_cast<int>(sum);
  block[0] = ShiftToCoef(sc->predictor, al);
  return true;
}

APPLIANCE_INLINE void DecodeDcRefine(BitReader* reader, int al, int16_t* block) {
  reader->Refill();
  if (reader->Take(1)) block[0] = static_cast<int16_t>(block[0] | (1 << al));
}

APPLIANCE_INLINE bool DecodeAcFirst(BitReader* reader, const HuffmanTable& table,
                                    const Scan& scan, const Corner& corner, int* eobrun,
                                    int16_t* block, uint64_t* nonzero) {
  if (*eobrun > 0) {
    --*eobrun;
    return true;
  }
  uint64_t nz = *nonzero;
  for (int k = scan.ss; k <= scan.se; ++k) {
    reader->Refill();
    const int rs = DecodeRefilled(reader, table);
    if (rs < 0) return false;
    const int r = rs >> 4, s = rs & 15;
    if (s != 0) {
      k += r;
      if (k > scan.se) return false;
      const int16_t coef = ShiftToCoef(Extend(static_cast<int>(reader->Take(s)), s), scan.al);
      const uint64_t bit = uint64_t{1} << k;
      nz = coef != 0 ? nz | bit : nz & ~bit;
      const int slot = corner.slot[k];
      if (slot >= 0) block[slot] = coef;
    } else if (r == 15) {
      k += 15;  // ZRL: sixteen zeros, the loop adds the last
    } else {
      // EOBr: this block and 2^r - 1 + (r bits) more end here.
      *eobrun = (1 << r) + static_cast<int>(reader->Take(r)) - 1;
      break;
    }
  }
  *nonzero = nz;
  return true;
}

// Reads one correction bit for each already-nonzero coefficient in `targets`
// (zigzag bits, in order; G.1.2.3) and applies those of the kept ones.
APPLIANCE_INLINE void Correct(BitReader* reader, uint64_t targets, const Corner& corner, int p1,
                              int16_t* block) {
  int n = __builtin_popcountll(targets);
  while (n > 0) {
    const int take = std::min(n, 32);
    uint64_t chunk = targets;
    if (take < n) {  // the first 32 of them now, the rest next
      uint64_t rest = targets;
      for (int i = 0; i < take; ++i) rest &= rest - 1;
      chunk = targets & ~rest;
    }
    reader->Refill();
    const uint32_t bits = reader->Take(take);
    for (uint64_t kept = chunk & corner.kept; kept != 0; kept &= kept - 1) {
      const int k = __builtin_ctzll(kept);
      const int index = __builtin_popcountll(chunk & ((uint64_t{1} << k) - 1));
      if ((bits >> (take - 1 - index)) & 1) {
        int16_t& coef = block[corner.slot[k]];
        if ((coef & p1) == 0) coef = static_cast<int16_t>(coef >= 0 ? coef + p1 : coef - p1);
      }
    }
    targets &= ~chunk;
    n -= take;
  }
}

APPLIANCE_INLINE bool DecodeAcRefine(BitReader* reader, const HuffmanTable& table,
                                     const Scan& scan, const Corner& corner, int* eobrun,
                                     int16_t* block, uint64_t* nonzero) {
  const int p1 = 1 << scan.al;
  const uint64_t band = From(scan.ss) & ~From(scan.se + 1);
  uint64_t nz = *nonzero;
  int k = scan.ss;
  if (*eobrun == 0) {
    while (k <= scan.se) {
      reader->Refill();
      const int rs = DecodeRefilled(reader, table);
      if (rs < 0) return false;
      int r = rs >> 4;
      int value = 0;
      if ((rs & 15) != 0) {
        // A new coefficient of magnitude 1 << Al. Sizes other than 1 are
        // invalid; libjpeg warns and reads them as 1, and so do we.
        value = reader->Take(1) ? p1 : -p1;
      } else if (r != 15) {
        *eobrun = (1 << r) + static_cast<int>(reader->Take(r));
        break;  // the rest of the band gets correction bits below
      }
      // Skip r coefficients that are still zero (correcting the nonzero ones
      // passed on the way) and place the new one, if any, on the next zero; a
      // ZRL (r = 15, no value) passes sixteen zeros.
      uint64_t zeros = ~nz & band & From(k);
      for (; r > 0 && zeros != 0; --r) zeros &= zeros - 1;
      const int target = zeros != 0 ? __builtin_ctzll(zeros) : scan.se + 1;
      const uint64_t passed = nz & band & From(k) & ~From(target);
      if (passed != 0) Correct(reader, passed, corner, p1, block);
      if (value != 0) {
        if (target > scan.se) return false;
        nz |= uint64_t{1} << target;
        const int slot = corner.slot[target];
        if (slot >= 0) block[slot] = static_cast<int16_t>(value);
      }
      k = target + 1;
    }
  }
  if (*eobrun > 0) {
    const uint64_t rest = nz & band & From(k);
    if (rest != 0) Correct(reader, rest, corner, p1, block);
    --*eobrun;
  }
  *nonzero = nz;
  return true;
}

enum class ScanKind { kDcFirst, kDcRefine, kAcFirst, kAcRefine };

// Restart markers: every `interval` units (MCUs or blocks) the entropy coder
// starts afresh after an RSTn marker.
class Restarts {
 public:
  explicit Restarts(int interval) : interval_(interval), until_(interval) {}

  // Before each unit; false when the expected marker is missing.
  APPLIANCE_INLINE bool Next(BitReader* reader, Scan* scan) {
    if (interval_ == 0) return true;
    if (until_ == 0) {
      if (reader->overrun() || !reader->Restart(marker_)) return false;
      marker_ = (marker_ + 1) & 7;
      until_ = interval_;
      scan->eobrun = 0;
      for (int i = 0; i < scan->ns; ++i) scan->comps[i].predictor = 0;
    }
    --until_;
    return true;
  }

 private:
  int interval_;
  int until_;
  int marker_ = 0;
};

// One scan of one kind; the kinds get a loop each so that each is tight.
template <ScanKind kKind>
APPLIANCE_INLINE Status DecodeScanOf(BitReader* reader, const ProgressiveCoefficients& frame,
                                     const Corner& corner, Scan* scan, int restart_interval) {
  const Status corrupt = Corrupt("JPEG scan data is damaged");
  const Status truncated = Corrupt("JPEG scan data is truncated");
  Restarts restarts(restart_interval);
  if (scan->ns > 1) {  // interleaved: DC only (T.81 G.1.1.1.1), MCU by MCU
    for (int my = 0; my < frame.mcu_rows; ++my) {
      for (int mx = 0; mx < frame.mcus_per_row; ++mx) {
        if (!restarts.Next(reader, scan)) return corrupt;
        for (int i = 0; i < scan->ns; ++i) {
          ScanComponent& sc = scan->comps[i];
          ComponentCoefficients& c = *sc.component;
          for (int by = 0; by < c.v_samp; ++by) {
            for (int bx = 0; bx < c.h_samp; ++bx) {
              int16_t* block = c.Block(mx * c.h_samp + bx, my * c.v_samp + by);
              if constexpr (kKind == ScanKind::kDcFirst) {
                if (!DecodeDcFirst(reader, &sc, scan->al, block)) return corrupt;
              } else {
                DecodeDcRefine(reader, scan->al, block);
              }
            }
          }
        }
      }
      // Past the data the reader feeds zeros, which decode safely; it is
      // enough to notice once a row.
      if (reader->overrun()) return truncated;
    }
    return Status::Ok();
  }
  ScanComponent& sc = scan->comps[0];
  ComponentCoefficients& c = *sc.component;
  const int block_size = c.side * c.side;
  for (int by = 0; by < c.height_in_blocks; ++by) {
    int16_t* block = c.Block(0, by);
    uint64_t* nonzero = &c.nonzero[c.Index(0, by)];
    for (int bx = 0; bx < c.width_in_blocks; ++bx, block += block_size, ++nonzero) {
      if (!restarts.Next(reader, scan)) return corrupt;
      if constexpr (kKind == ScanKind::kDcFirst) {
        if (!DecodeDcFirst(reader, &sc, scan->al, block)) return corrupt;
      } else if constexpr (kKind == ScanKind::kDcRefine) {
        DecodeDcRefine(reader, scan->al, block);
      } else if constexpr (kKind == ScanKind::kAcFirst) {
        if (!DecodeAcFirst(reader, *sc.ac_table, *scan, corner, &scan->eobrun, block, nonzero)) {
          return corrupt;
        }
      } else {
        if (!DecodeAcRefine(reader, *sc.ac_table, *scan, corner, &scan->eobrun, block,
                            nonzero)) {
          return corrupt;
        }
      }
    }
    if (reader->overrun()) return truncated;
  }
  return Status::Ok();
}

// Decodes one scan's entropy-coded data at `p`; on success `*next` is the
// first marker after it.
APPLIANCE_POPCOUNT_CLONES
Status DecodeScan(const uint8_t* p, const uint8_t* end, const ProgressiveCoefficients& frame,
                  const Corner& corner, Scan* scan, int restart_interval, const uint8_t** next) {
  BitReader reader(p, end);
  Status status;
  if (scan->ss == 0) {
    status = scan->ah == 0
                 ? DecodeScanOf<ScanKind::kDcFirst>(&reader, frame, corner, scan, restart_interval)
                 : DecodeScanOf<ScanKind::kDcRefine>(&reader, frame, corner, scan, restart_interval);
  } else {
    status = scan->ah == 0
                 ? DecodeScanOf<ScanKind::kAcFirst>(&reader, frame, corner, scan, restart_interval)
                 : DecodeScanOf<ScanKind::kAcRefine>(&reader, frame, corner, scan, restart_interval);
  }
  if (status.ok()) *next = reader.NextMarker();
  return status;
}

Status ParseFrame(const uint8_t* s, size_t length, const Limits& limits, int side,
                  ProgressiveCoefficients* f) {
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
    c.side = side;
    total_bytes += static_cast<uint64_t>(c.blocks_wide) * static_cast<uint64_t>(c.blocks_high) *
                   (static_cast<uint64_t>(side * side) * sizeof(int16_t) + sizeof(uint64_t));
  }
  if (total_bytes > kMaxCoefficientBytes || total_bytes > SIZE_MAX) {
    return TooLarge("JPEG coefficient arrays would need " + std::to_string(total_bytes) + " bytes");
  }
  for (ComponentCoefficients& c : f->components) {
    const size_t blocks = static_cast<size_t>(c.blocks_wide) * static_cast<size_t>(c.blocks_high);
    c.coefficients.assign(blocks * static_cast<size_t>(side * side), 0);
    c.nonzero.assign(blocks, 0);
  }
  return Status::Ok();
}

// Validates a progressive SOS header against T.81 G.1.1.1 (the checks libjpeg
// treats as fatal) and binds its components and tables.
Status ParseScan(const uint8_t* s, size_t n, ProgressiveCoefficients* frame,
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
  const Status bad = Corrupt("JPEG progression parameters are invalid");
  if (scan->ss == 0) {
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
    if (scan->ss != 0 && !ac_tables[ac_id].defined) {
      return Corrupt("JPEG scan uses an undefined Huffman table");
    }
    if (!c->quant_latched) {
      if (!quant_defined[c->quant_table]) return Corrupt("JPEG quantisation table is undefined");
      c->quant = quant[c->quant_table];
      c->quant_latched = true;
    }
    blocks_in_mcu += ns > 1 ? c->h_samp * c->v_samp : 1;
    scan->comps[i] = ScanComponent{c, &dc_tables[dc_id], &ac_tables[ac_id], 0};
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
    float values[N][N];
    for (int v = 0; v < N; ++v) {
      for (int u = 0; u < N; ++u) values[v][u] = quant[v * 8 + u];
    }
    std::memcpy(rows, values, sizeof(values));
  }

  // `coef` is N x N, row by row; each row is one vector.
  void Block(const int16_t* coef, const Row* dequantiser, uint8_t* out, ptrdiff_t stride) const {
#if defined(__SSE2__)
    if constexpr (N == 4) return Block4Sse2(coef, dequantiser, out, stride);
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
#if defined(__SSE2__)
  // The same for N = 4 in SSE2, which x86-64 always has: the conversions in and
  // out a vector at a time, the clamp by saturating packs.
  void Block4Sse2(const int16_t* coef, const Row* dequantiser, uint8_t* out,
                  ptrdiff_t stride) const {
    const __m128i rows01 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(coef));
    const __m128i rows23 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(coef + 8));
    // int16 to int32 by shifting the sign in from the high half.
    const __m128i quantized[4] = {_mm_srai_epi32(_mm_unpacklo_epi16(rows01, rows01), 16),
                                  _mm_srai_epi32(_mm_unpackhi_epi16(rows01, rows01), 16),
                                  _mm_srai_epi32(_mm_unpacklo_epi16(rows23, rows23), 16),
                                  _mm_srai_epi32(_mm_unpackhi_epi16(rows23, rows23), 16)};
    Row rows[4];
    for (int v = 0; v < 4; ++v) {
      const Row f = reinterpret_cast<Row>(_mm_cvtepi32_ps(quantized[v])) * dequantiser[v];
      rows[v] = f[0] * by_frequency_[0] + f[1] * by_frequency_[1] + f[2] * by_frequency_[2] +
                f[3] * by_frequency_[3];
    }
    __m128i pixels[4];
    for (int y = 0; y < 4; ++y) {
      const Row sum = rows[0] * by_position_[y][0] + rows[1] * by_position_[y][1] +
                      rows[2] * by_position_[y][2] + rows[3] * by_position_[y][3] + 128.5f;
      pixels[y] = _mm_cvttps_epi32(reinterpret_cast<__m128>(sum));
    }
    // Signed saturation to int16, then unsigned to uint8: the clamp to 0..255.
    const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(pixels[0], pixels[1]),
                                           _mm_packs_epi32(pixels[2], pixels[3]));
    const int32_t rows_out[4] = {_mm_cvtsi128_si32(bytes),
                                 _mm_cvtsi128_si32(_mm_srli_si128(bytes, 4)),
                                 _mm_cvtsi128_si32(_mm_srli_si128(bytes, 8)),
                                 _mm_cvtsi128_si32(_mm_srli_si128(bytes, 12))};
    for (int y = 0; y < 4; ++y) std::memcpy(out + y * stride, &rows_out[y], 4);
  }
#endif

  Row by_frequency_[N];    // [u][x] = a(x, u)
  float by_position_[N][N];  // [x][u] = a(x, u)
};

// Every component through the N-point IDCT into its plane, laid out as
// libjpeg's raw decode at scale N/8 would be with each component's own
// sampling (no IDCT upscaling of chroma).
template <int N>
bool WriteScaledPlanes(const ProgressiveCoefficients& f, Image* image) {
  const ScaledIdct<N> idct;
  for (size_t i = 0; i < f.components.size(); ++i) {
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
      for (int bx = 0; bx < c.width_in_blocks; ++bx) {
        idct.Block(c.Block(bx, by), dequantiser, row + bx * N, plane.stride());
      }
    }
  }
  image->model = f.components.size() == 1 ? ColorModel::kGray : ColorModel::kYCbCr;
  image->width = image->planes[0].width();
  image->height = image->planes[0].height();
  return true;
}

}  // namespace

Status DecodeProgressiveCoefficients(const uint8_t* data, size_t size,
                                     ProgressiveCoefficients* out, const Limits& limits,
                                     int side) {
  if (side != 1 && side != 2 && side != 4 && side != 8) {
    return Unsupported("coefficient corner must be 1, 2, 4 or 8 wide");
  }
  if (data == nullptr || size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
    return Corrupt("not a JPEG");
  }
  const uint8_t* p = data + 2;
  const uint8_t* end = data + size;
  ProgressiveCoefficients& frame = *out;
  bool have_frame = false;
  std::array<std::array<uint16_t, kDctBlockSize>, 4> quant{};
  std::array<bool, 4> quant_defined{};
  HuffmanTable dc_tables[4];
  HuffmanTable ac_tables[4];
  const Corner corner(side);
  int restart_interval = 0;
  bool any_scan = false;
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
      case 0xC2:  // SOF2: progressive, Huffman
        if (have_frame) return Corrupt("JPEG has two frame headers");
        APPLIANCE_RETURN_IF_ERROR(ParseFrame(s, n, limits, side, &frame));
        have_frame = true;
        break;
      case 0xC0: case 0xC1: case 0xC3: case 0xC5: case 0xC6: case 0xC7:
      case 0xC9: case 0xCA: case 0xCB: case 0xCD: case 0xCE: case 0xCF:
        return Unsupported("JPEG is not progressive Huffman-coded");
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
          if (!table.Build(s + i + 1, s + i + 17, total)) {
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
        Scan scan;
        APPLIANCE_RETURN_IF_ERROR(ParseScan(s, n, &frame, dc_tables, ac_tables, quant,
                                            quant_defined, &scan));
        APPLIANCE_RETURN_IF_ERROR(
            DecodeScan(next, end, frame, corner, &scan, restart_interval, &next));
        any_scan = true;
        break;
      }
      default:  // APPn, COM and the rest
        break;
    }
    p = next;
  }
  if (!have_frame || !any_scan) return Corrupt("JPEG has no image data");
  return Status::Ok();
}

bool DecodeProgressiveScaled(const uint8_t* data, size_t size, int n, const Limits& limits,
                             Image* image) {
  if (n != 2 && n != 4) return false;
  // Each thread keeps its coefficient arrays for the next decode, up to a bound:
  // allocating them afresh costs more page faults than the decode of most scans.
  static thread_local ProgressiveCoefficients frame;
  const bool ok = DecodeProgressiveCoefficients(data, size, &frame, limits, n).ok() &&
                  (frame.components.size() == 1 || frame.components.size() == 3) &&
                  std::all_of(frame.components.begin(), frame.components.end(),
                              // a component no scan carried: libjpeg's business
                              [](const ComponentCoefficients& c) { return c.quant_latched; }) &&
                  (n == 2 ? WriteScaledPlanes<2>(frame, image) : WriteScaledPlanes<4>(frame, image));
  size_t kept_bytes = 0;
  for (const ComponentCoefficients& c : frame.components) {
    kept_bytes += c.coefficients.capacity() * sizeof(int16_t) + c.nonzero.capacity() * sizeof(uint64_t);
  }
  if (kept_bytes > kKeptArrayBytes) frame = ProgressiveCoefficients();
  return ok;
}

}  // namespace appliance
