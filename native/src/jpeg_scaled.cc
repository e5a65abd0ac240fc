#include "jpeg_scaled.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "codecs.h"
#include "jpeg_bits.h"
#include "jpeg_idct.h"
#include "jpeg_scans.h"
#include "parallel.h"

#if defined(APPLIANCE_SCAN_VARIANTS)
#include <cpuid.h>
#endif

namespace appliance {
namespace {

using jpeg_internal::Corner;
using jpeg_internal::DivUp;
using jpeg_internal::HuffmanTable;
using jpeg_internal::kNaturalOrder;
using jpeg_internal::Read16;
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
// Huffman tables defined while scans wait to be decoded (each keeps its own):
// past this many, the waiting scans are decoded first.
constexpr size_t kMaxWaitingTables = 64;

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

// Validates an SOS header (a progressive one against T.81 G.1.1.1, the checks
// libjpeg treats as fatal) and binds its components and tables.
Status ParseScan(const uint8_t* s, size_t n, JpegCoefficients* frame,
                 const HuffmanTable* const* dc_tables, const HuffmanTable* const* ac_tables,
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
  const Status bad = Corrupt("JPEG progression parameters are invalid");
  if (scan->sequential) {
    // libjpeg only warns about other values here; leave such files to it.
    if (scan->ss != 0 || scan->se != 63 || scan->ah != 0 || scan->al != 0) {
      return Unsupported("JPEG sequential scan has progression parameters");
    }
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
    if (scan->ss == 0 && scan->ah == 0 && !dc_tables[dc_id]->defined) {
      return Corrupt("JPEG scan uses an undefined Huffman table");
    }
    if ((scan->ss != 0 || scan->sequential) && !ac_tables[ac_id]->defined) {
      return Corrupt("JPEG scan uses an undefined Huffman table");
    }
    if (!c->quant_latched) {
      if (!quant_defined[c->quant_table]) return Corrupt("JPEG quantisation table is undefined");
      c->quant = quant[c->quant_table];
      c->quant_latched = true;
    }
    blocks_in_mcu += ns > 1 ? c->h_samp * c->v_samp : 1;
    scan->comps[i] =
        ScanComponent{c, &jpeg_internal::CornerFor(c->side), dc_tables[dc_id], ac_tables[ac_id], 0};
  }
  if (blocks_in_mcu > kMaxBlocksInMcu) return Corrupt("JPEG MCU holds too many blocks");
  return Status::Ok();
}

// The Huffman tables in force, by class and id. A table that a scan waiting
// to be decoded refers to is not redefined in place: the new definition gets a
// table of its own.
class HuffmanTables {
 public:
  HuffmanTables() : all_(8) {
    for (int i = 0; i < 8; ++i) current_[i] = &all_[static_cast<size_t>(i)];
  }
  HuffmanTables(const HuffmanTables&) = delete;
  HuffmanTables& operator=(const HuffmanTables&) = delete;

  const HuffmanTable* const* dc() const { return current_; }
  const HuffmanTable* const* ac() const { return current_ + 4; }
  size_t size() const { return all_.size(); }

  // The table to build as class `table_class` (0: DC, 1: AC), number `id`.
  HuffmanTable* Define(int table_class, int id, bool in_use) {
    HuffmanTable*& slot = current_[table_class * 4 + id];
    if (in_use) slot = &all_.emplace_back();
    return slot;
  }

  // Drops every table but those in force; none may be in use.
  void Compact() {
    std::deque<HuffmanTable> kept;
    for (HuffmanTable*& table : current_) table = &kept.emplace_back(std::move(*table));
    all_.swap(kept);  // the elements stay where they are
  }

 private:
  std::deque<HuffmanTable> all_;  // a deque: its elements never move
  HuffmanTable* current_[8];
};

// The scans of a progressive frame, waiting to be decoded together in lanes:
// one for the DC scans, one per component for its AC scans. Lanes write
// disjoint data (a DC scan writes coefficient 0 of its blocks; an AC scan,
// which holds one component, that component's others and nonzero masks; no
// progressive scan reads what another lane writes), so they run at once, on
// helper threads when there are idle cores (docs/decisions/0012). Within a
// lane, scans keep their order in the file.
class WaitingScans {
 public:
  bool empty() const { return scans_.empty(); }

  void Add(const Scan& scan, int restart_interval, const uint8_t* data, const uint8_t* end) {
    scans_.push_back(Waiting{scan, restart_interval, data, end});
  }

  // Decodes every waiting scan. On failure, the status of the first in the
  // file that failed.
  Status DecodeAll(const JpegCoefficients& frame, jpeg_internal::ScanDecoder decode) {
    constexpr int kLanes = 1 + kMaxComponents;
    std::array<std::vector<Waiting*>, kLanes> lanes;
    std::array<size_t, kLanes> bytes{};
    for (Waiting& w : scans_) {
      const ComponentCoefficients* first = w.scan.comps[0].component;
      const int lane = w.scan.ss == 0 ? 0 : 1 + static_cast<int>(first - frame.components.data());
      lanes[lane].push_back(&w);
      bytes[lane] += static_cast<size_t>(w.end - w.data);
    }
    // The longest lanes (by their bytes) start first, so none is started late.
    std::array<int, kLanes> order;
    for (int i = 0; i < kLanes; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return bytes[a] > bytes[b]; });
    const int busy = static_cast<int>(
        std::count_if(lanes.begin(), lanes.end(), [](const auto& lane) { return !lane.empty(); }));
    std::array<Status, kLanes> status;
    std::array<size_t, kLanes> failed{};  // the index of the scan that failed
    RunParts(busy, [&](int part) {
      const int lane = order[part];
      for (Waiting* w : lanes[lane]) {
        const uint8_t* next = nullptr;
        status[lane] = decode(w->data, w->end, frame, &w->scan, w->restart_interval, &next);
        if (!status[lane].ok()) {
          failed[lane] = static_cast<size_t>(w - scans_.data());
          return;
        }
      }
    });
    scans_.clear();
    int first = -1;
    for (int lane = 0; lane < kLanes; ++lane) {
      if (!status[lane].ok() && (first < 0 || failed[lane] < failed[first])) first = lane;
    }
    return first < 0 ? Status::Ok() : status[first];
  }

 private:
  struct Waiting {
    Scan scan;
    int restart_interval;
    const uint8_t* data;  // the entropy-coded data, up to
    const uint8_t* end;   // the marker after it
  };
  std::vector<Waiting> scans_;
};

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

Status DecodeCoefficients(const uint8_t* data, size_t size, JpegCoefficients* out,
                          const Limits& limits, int side, int chroma_side) {
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
  HuffmanTables tables;
  WaitingScans waiting;
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
          if (tables.size() >= kMaxWaitingTables) {
            APPLIANCE_RETURN_IF_ERROR(waiting.DecodeAll(frame, decode_scan));
            tables.Compact();
          }
          HuffmanTable& table = *tables.Define(table_class, id, /*in_use=*/!waiting.empty());
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
        APPLIANCE_RETURN_IF_ERROR(ParseScan(s, n, &frame, tables.dc(), tables.ac(), quant,
                                            quant_defined, &scan));
        if (frame.progressive) {
          const uint8_t* scan_end = jpeg_internal::SkipEntropyCodedData(next, end);
          waiting.Add(scan, restart_interval, next, scan_end);
          next = scan_end;
        } else {
          APPLIANCE_RETURN_IF_ERROR(
              decode_scan(next, end, frame, &scan, restart_interval, &next));
        }
        break;
      }
      default:  // APPn, COM and the rest
        break;
    }
    p = next;
  }
  if (!have_frame || scans == 0) return Corrupt("JPEG has no image data");
  return waiting.DecodeAll(frame, decode_scan);
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
