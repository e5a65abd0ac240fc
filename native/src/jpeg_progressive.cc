#include "jpeg_progressive.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "codecs.h"
#include "jpeg_dc.h"

namespace appliance {
namespace {

using jpeg_internal::BitReader;
using jpeg_internal::DecodeSymbol;
using jpeg_internal::Extend;
using jpeg_internal::HuffmanTable;

constexpr int kMaxComponents = 4;      // the most a scan can hold (T.81 B.2.3)
constexpr int kMaxBlocksInMcu = 10;    // T.81 B.2.3
constexpr int kMaxAl = 13;             // libjpeg's limit for 8-bit data
// The coefficient arrays of the largest image the limits admit stay far below
// this; it guards the arithmetic, not the policy.
constexpr uint64_t kMaxCoefficientBytes = uint64_t{4} << 30;

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
};

// The per-block decoders. Each returns false for data that cannot be valid.
bool DecodeDcFirst(BitReader* reader, ScanComponent* sc, int al, int16_t* block) {
  const int s = DecodeSymbol(reader, *sc->dc_table);
  if (s < 0 || s > 16) return false;
  const int diff = s ? Extend(reader->GetBits(s), s) : 0;
  const int64_t sum = static_cast<int64_t>(sc->predictor) + diff;
  if (sum > INT32_MAX || sum < INT32_MIN) return false;
  sc->predictor = static_cast<int>(sum);
  block[0] = ShiftToCoef(sc->predictor, al);
  return true;
}

void DecodeDcRefine(BitReader* reader, int al, int16_t* block) {
  if (reader->GetBits(1)) block[0] = static_cast<int16_t>(block[0] | (1 << al));
}

bool DecodeAcFirst(BitReader* reader, const HuffmanTable& table, const Scan& scan,
                   int* eobrun, int16_t* block) {
  if (*eobrun > 0) {
    --*eobrun;
    return true;
  }
  for (int k = scan.ss; k <= scan.se; ++k) {
    const int rs = DecodeSymbol(reader, table);
    if (rs < 0) return false;
    const int r = rs >> 4, s = rs & 15;
    if (s != 0) {
      k += r;
      if (k > scan.se) return false;
      block[kNaturalOrder[k]] = ShiftToCoef(Extend(reader->GetBits(s), s), scan.al);
    } else if (r == 15) {
      k += 15;  // ZRL: sixteen zeros, the loop adds the last
    } else {
      // EOBr: this block and 2^r - 1 + (r bits) more end here.
      *eobrun = (1 << r) + reader->GetBits(r) - 1;
      break;
    }
  }
  return true;
}

// Adds a correction bit to an already-nonzero coefficient (G.1.2.3).
inline void Refine(BitReader* reader, int p1, int16_t* coef) {
  if (reader->GetBits(1) && (*coef & p1) == 0) {
    *coef = static_cast<int16_t>(*coef >= 0 ? *coef + p1 : *coef - p1);
  }
}

bool DecodeAcRefine(BitReader* reader, const HuffmanTable& table, const Scan& scan,
                    int* eobrun, int16_t* block) {
  const int p1 = 1 << scan.al;
  int k = scan.ss;
  if (*eobrun == 0) {
    for (; k <= scan.se; ++k) {
      const int rs = DecodeSymbol(reader, table);
      if (rs < 0) return false;
      int r = rs >> 4;
      int value = 0;
      if ((rs & 15) != 0) {
        // A new coefficient of magnitude 1 << Al. Sizes other than 1 are
        // invalid; libjpeg warns and reads them as 1, and so do we.
        value = reader->GetBits(1) ? p1 : -p1;
      } else if (r != 15) {
        *eobrun = (1 << r) + reader->GetBits(r);
        break;  // the rest of the band gets correction bits below
      }
      // Skip r zero coefficients (correcting the nonzero ones passed on the
      // way), then place the new one, if any, on the next zero.
      for (; k <= scan.se; ++k) {
        int16_t* coef = &block[kNaturalOrder[k]];
        if (*coef != 0) {
          Refine(reader, p1, coef);
        } else {
          if (r == 0) break;
          --r;
        }
      }
      if (value != 0) {
        if (k > scan.se) return false;
        block[kNaturalOrder[k]] = static_cast<int16_t>(value);
      }
    }
  }
  if (*eobrun > 0) {
    for (; k <= scan.se; ++k) {
      int16_t* coef = &block[kNaturalOrder[k]];
      if (*coef != 0) Refine(reader, p1, coef);
    }
    --*eobrun;
  }
  return true;
}

// Decodes one scan's entropy-coded data at `p`; on success `*next` is the
// first marker after it.
Status DecodeScan(const uint8_t* p, const uint8_t* end, const ProgressiveCoefficients& frame,
                  Scan* scan, int restart_interval, const uint8_t** next) {
  BitReader reader(p, end);
  const bool interleaved = scan->ns > 1;
  const bool dc = scan->ss == 0;
  const int units_w = interleaved ? frame.mcus_per_row : scan->comps[0].component->width_in_blocks;
  const int units_h = interleaved ? frame.mcu_rows : scan->comps[0].component->height_in_blocks;
  int until_restart = restart_interval;
  int next_restart = 0;
  int eobrun = 0;
  const Status corrupt = Corrupt("JPEG scan data is damaged");
  for (int my = 0; my < units_h; ++my) {
    for (int mx = 0; mx < units_w; ++mx) {
      if (restart_interval > 0) {
        if (until_restart == 0) {
          if (reader.overrun() || !reader.Restart(next_restart)) return corrupt;
          next_restart = (next_restart + 1) & 7;
          until_restart = restart_interval;
          eobrun = 0;
          for (int i = 0; i < scan->ns; ++i) scan->comps[i].predictor = 0;
        }
        --until_restart;
      }
      if (!interleaved) {
        ScanComponent& sc = scan->comps[0];
        int16_t* block = sc.component->Block(mx, my);
        bool ok = true;
        if (dc) {
          if (scan->ah == 0) {
            ok = DecodeDcFirst(&reader, &sc, scan->al, block);
          } else {
            DecodeDcRefine(&reader, scan->al, block);
          }
        } else if (scan->ah == 0) {
          ok = DecodeAcFirst(&reader, *sc.ac_table, *scan, &eobrun, block);
        } else {
          ok = DecodeAcRefine(&reader, *sc.ac_table, *scan, &eobrun, block);
        }
        if (!ok) return corrupt;
        continue;
      }
      // Interleaved scans are DC only (T.81 G.1.1.1.1).
      for (int i = 0; i < scan->ns; ++i) {
        ScanComponent& sc = scan->comps[i];
        ComponentCoefficients& c = *sc.component;
        for (int by = 0; by < c.v_samp; ++by) {
          for (int bx = 0; bx < c.h_samp; ++bx) {
            int16_t* block = c.Block(mx * c.h_samp + bx, my * c.v_samp + by);
            if (scan->ah == 0) {
              if (!DecodeDcFirst(&reader, &sc, scan->al, block)) return corrupt;
            } else {
              DecodeDcRefine(&reader, scan->al, block);
            }
          }
        }
      }
    }
    // Past the data the reader feeds zeros, which decode safely; it is enough
    // to notice once a row.
    if (reader.overrun()) return Corrupt("JPEG scan data is truncated");
  }
  *next = reader.NextMarker();
  return Status::Ok();
}

Status ParseFrame(const uint8_t* s, size_t length, const Limits& limits,
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
  f->components.assign(static_cast<size_t>(count), ComponentCoefficients());
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
    total_bytes += static_cast<uint64_t>(c.blocks_wide) * static_cast<uint64_t>(c.blocks_high) *
                   kDctBlockSize * sizeof(int16_t);
  }
  if (total_bytes > kMaxCoefficientBytes || total_bytes > SIZE_MAX) {
    return TooLarge("JPEG coefficient arrays would need " + std::to_string(total_bytes) + " bytes");
  }
  for (ComponentCoefficients& c : f->components) {
    c.coefficients.assign(static_cast<size_t>(c.blocks_wide) * static_cast<size_t>(c.blocks_high) *
                              kDctBlockSize,
                          0);
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

}  // namespace

Status DecodeProgressiveCoefficients(const uint8_t* data, size_t size,
                                     ProgressiveCoefficients* out, const Limits& limits) {
  if (data == nullptr || size < 4 || data[0] != 0xFF || data[1] != 0xD8) {
    return Corrupt("not a JPEG");
  }
  const uint8_t* p = data + 2;
  const uint8_t* end = data + size;
  ProgressiveCoefficients frame;
  bool have_frame = false;
  std::array<std::array<uint16_t, kDctBlockSize>, 4> quant{};
  std::array<bool, 4> quant_defined{};
  HuffmanTable dc_tables[4];
  HuffmanTable ac_tables[4];
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
        APPLIANCE_RETURN_IF_ERROR(ParseFrame(s, n, limits, &frame));
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
        APPLIANCE_RETURN_IF_ERROR(DecodeScan(next, end, frame, &scan, restart_interval, &next));
        any_scan = true;
        break;
      }
      default:  // APPn, COM and the rest
        break;
    }
    p = next;
  }
  if (!have_frame || !any_scan) return Corrupt("JPEG has no image data");
  *out = std::move(frame);
  return Status::Ok();
}

}  // namespace appliance
