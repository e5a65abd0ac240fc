#include "jpeg_dc.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <vector>

namespace appliance {
namespace {

constexpr int kMaxComponents = 3;

// A canonical Huffman table (JPEG Annex C), decoded a bit at a time past an
// 8-bit lookahead table.
struct HuffmanTable {
  bool defined = false;
  std::array<uint8_t, 256> symbols{};
  std::array<int32_t, 18> max_code{};   // largest code of each length, -1 if none
  std::array<int32_t, 17> val_offset{};
  std::array<uint16_t, 256> lookahead{};  // (length << 8) | symbol; 0 = longer than 8 bits

  bool Build(const uint8_t counts[16], const uint8_t* values, int total) {
    if (total > 256) return false;
    std::memcpy(symbols.data(), values, static_cast<size_t>(total));
    int code = 0, k = 0;
    lookahead.fill(0);
    for (int length = 1; length <= 16; ++length) {
      const int n = counts[length - 1];
      val_offset[length] = k - code;
      for (int i = 0; i < n; ++i, ++k, ++code) {
        if (length <= 8) {
          const int shift = 8 - length;
          for (int fill = 0; fill < (1 << shift); ++fill) {
            lookahead[(code << shift) | fill] =
                static_cast<uint16_t>(length << 8 | symbols[k]);
          }
        }
      }
      max_code[length] = n > 0 ? code - 1 : -1;
      if (code > (1 << length)) return false;  // over-subscribed
      code <<= 1;
    }
    max_code[17] = std::numeric_limits<int32_t>::max();
    defined = true;
    return true;
  }
};

// Reads entropy-coded bits, unstuffing 0xFF00 and stopping at markers; past a
// marker it feeds zeros but remembers that the data ran out.
class BitReader {
 public:
  BitReader(const uint8_t* p, const uint8_t* end) : p_(p), end_(end) {}

  // Peeks 16 bits (zero-padded).
  uint32_t Peek16() {
    Fill();
    return static_cast<uint32_t>(acc_ >> (bits_ - 16)) & 0xFFFF;
  }
  void Skip(int n) {
    bits_ -= n;
    if (bits_ < padding_) overrun_ = true;
  }
  int GetBits(int n) {
    if (n == 0) return 0;
    Fill();
    const int v = static_cast<int>((acc_ >> (bits_ - n)) & ((1u << n) - 1));
    Skip(n);
    return v;
  }

  // At a restart marker: drop the partial byte, expect RSTn, reset. Bytes
  // between the data and the marker are skipped, as libjpeg does.
  bool Restart(int expected) {
    acc_ = 0;
    bits_ = 0;
    padding_ = 0;
    const uint8_t* q = p_;
    while (q + 1 < end_ && !(q[0] == 0xFF && q[1] != 0 && q[1] != 0xFF)) ++q;
    if (q + 1 >= end_ || q[1] != 0xD0 + expected) return false;
    p_ = q + 2;
    at_marker_ = false;
    return true;
  }

  bool overrun() const { return overrun_; }

  // The position of the next marker after the scan.
  const uint8_t* NextMarker() const {
    const uint8_t* p = p_;
    while (p + 1 < end_ && !(p[0] == 0xFF && p[1] != 0 && !(p[1] >= 0xD0 && p[1] <= 0xD7))) ++p;
    return p;
  }

 private:
  void Fill() {
    while (bits_ <= 56) {
      uint8_t byte = 0;
      if (!at_marker_ && p_ < end_) {
        byte = *p_;
        if (byte == 0xFF) {
          const uint8_t next = p_ + 1 < end_ ? p_[1] : 0xD9;
          if (next == 0x00) {
            p_ += 2;
          } else {
            at_marker_ = true;  // leave p_ on the marker
            byte = 0;
          }
        } else {
          ++p_;
        }
      } else {
        at_marker_ = true;
      }
      if (at_marker_) padding_ += 8;
      acc_ = (acc_ << 8) | byte;
      bits_ += 8;
    }
  }

  const uint8_t* p_;
  const uint8_t* end_;
  uint64_t acc_ = 0;
  int bits_ = 0;
  int padding_ = 0;  // how many of the low bits in acc_ are made-up zeros
  bool at_marker_ = false;
  bool overrun_ = false;
};

// Returns the symbol, or -1 for a code that is not in the table.
int DecodeSymbol(BitReader* reader, const HuffmanTable& table) {
  const uint32_t peek = reader->Peek16();
  const uint16_t fast = table.lookahead[peek >> 8];
  if (fast != 0) {
    reader->Skip(fast >> 8);
    return fast & 0xFF;
  }
  for (int length = 9; length <= 16; ++length) {
    const int32_t code = static_cast<int32_t>(peek >> (16 - length));
    if (code <= table.max_code[length]) {
      reader->Skip(length);
      const int index = code + table.val_offset[length];
      return index >= 0 && index < 256 ? table.symbols[index] : -1;
    }
  }
  return -1;
}

int Extend(int value, int bits) {
  return value < (1 << (bits - 1)) ? value - (1 << bits) + 1 : value;
}

struct Component {
  int id = 0;
  int h = 1, v = 1;
  int quant_table = 0;
  int quant = 0;  // DC quantiser, latched at the component's first scan
  bool latched = false;
  int width_in_blocks = 0, height_in_blocks = 0;
  int stride = 0;  // blocks per row of `dc` (the MCU-padded grid)
  std::vector<int16_t> dc;
};

struct Frame {
  int width = 0, height = 0;
  int count = 0;
  Component components[kMaxComponents];
  int max_h = 1, max_v = 1;
  int mcus_per_row = 0, mcu_rows = 0;
};

uint16_t Read16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
int DivUp(long long a, long long b) { return static_cast<int>((a + b - 1) / b); }

bool ParseFrame(const uint8_t* s, size_t length, Frame* f) {
  if (length < 6 || s[0] != 8) return false;  // 8-bit precision only
  f->height = Read16(s + 1);
  f->width = Read16(s + 3);
  f->count = s[5];
  if (f->width == 0 || f->height == 0) return false;
  if ((f->count != 1 && f->count != 3) || length != 6 + 3 * static_cast<size_t>(f->count)) {
    return false;
  }
  for (int i = 0; i < f->count; ++i) {
    Component& c = f->components[i];
    c.id = s[6 + 3 * i];
    c.h = s[7 + 3 * i] >> 4;
    c.v = s[7 + 3 * i] & 15;
    c.quant_table = s[8 + 3 * i];
    if (c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.quant_table > 3) return false;
    f->max_h = std::max(f->max_h, c.h);
    f->max_v = std::max(f->max_v, c.v);
  }
  f->mcus_per_row = DivUp(f->width, 8LL * f->max_h);
  f->mcu_rows = DivUp(f->height, 8LL * f->max_v);
  for (int i = 0; i < f->count; ++i) {
    Component& c = f->components[i];
    c.width_in_blocks = DivUp(static_cast<long long>(f->width) * c.h, 8LL * f->max_h);
    c.height_in_blocks = DivUp(static_cast<long long>(f->height) * c.v, 8LL * f->max_v);
    c.stride = f->mcus_per_row * c.h;
    c.dc.assign(static_cast<size_t>(c.stride) * f->mcu_rows * c.v, 0);
  }
  return true;
}

struct ScanComponent {
  Component* component;
  const HuffmanTable* table;
  int predictor;
};

// Decodes one DC block: the first pass (Ah == 0) or a refinement bit.
bool DecodeBlock(BitReader* reader, ScanComponent* sc, int16_t* coef, int ah, int al) {
  if (ah == 0) {
    const int s = DecodeSymbol(reader, *sc->table);
    if (s < 0 || s > 16) return false;
    const int diff = s ? Extend(reader->GetBits(s), s) : 0;
    sc->predictor += diff;
    // libjpeg stores the shifted value into a 16-bit coefficient, and so do we.
    *coef = static_cast<int16_t>(static_cast<unsigned>(sc->predictor) << al);
  } else if (reader->GetBits(1)) {
    *coef = static_cast<int16_t>(*coef | (1 << al));
  }
  return true;
}

// Decodes one DC scan; returns the position after its entropy-coded data.
const uint8_t* DecodeScan(const uint8_t* p, const uint8_t* end, Frame* f, ScanComponent* sc,
                          int ns, int ah, int al, int restart_interval) {
  BitReader reader(p, end);
  const bool interleaved = ns > 1;
  const int units_w = interleaved ? f->mcus_per_row : sc[0].component->width_in_blocks;
  const int units_h = interleaved ? f->mcu_rows : sc[0].component->height_in_blocks;
  int until_restart = restart_interval;
  int next_restart = 0;
  for (int my = 0; my < units_h; ++my) {
    for (int mx = 0; mx < units_w; ++mx) {
      if (restart_interval > 0) {
        if (until_restart == 0) {
          if (!reader.Restart(next_restart)) return nullptr;
          next_restart = (next_restart + 1) & 7;
          until_restart = restart_interval;
          for (int i = 0; i < ns; ++i) sc[i].predictor = 0;
        }
        --until_restart;
      }
      for (int i = 0; i < ns; ++i) {
        Component& c = *sc[i].component;
        const int bh = interleaved ? c.h : 1, bv = interleaved ? c.v : 1;
        for (int by = 0; by < bv; ++by) {
          for (int bx = 0; bx < bh; ++bx) {
            const int x = interleaved ? mx * c.h + bx : mx;
            const int y = interleaved ? my * c.v + by : my;
            int16_t* coef = &c.dc[static_cast<size_t>(y) * c.stride + x];
            if (!DecodeBlock(&reader, &sc[i], coef, ah, al)) return nullptr;
          }
        }
      }
      if (reader.overrun()) return nullptr;
    }
  }
  return reader.NextMarker();
}

// libjpeg-turbo's post-IDCT range limit: clamps [-384, 640) and wraps beyond.
uint8_t RangeLimit(int x) {
  const int i = x & 1023;
  if (i < 128) return static_cast<uint8_t>(i + 128);
  if (i < 512) return 255;
  if (i < 896) return 0;
  return static_cast<uint8_t>(i - 896);
}

// libjpeg scales chroma up through a larger IDCT where the subsampling allows
// (jdmaster.c); at 1/8 scale the IDCT size of a component is 1, 2 or 4.
int IdctSize(const Frame& f, const Component& c) {
  int size = 1;
  while (size < 8 && (f.max_h % (c.h * size * 2)) == 0 && (f.max_v % (c.v * size * 2)) == 0) {
    size *= 2;
  }
  return size;
}

bool WritePlanes(const Frame& f, Image* image) {
  for (int i = 0; i < f.count; ++i) {
    const Component& c = f.components[i];
    const int size = IdctSize(f, c);
    const int w = DivUp(static_cast<long long>(f.width) * c.h * size, 8LL * f.max_h);
    const int h = DivUp(static_cast<long long>(f.height) * c.v * size, 8LL * f.max_v);
    Plane& plane = image->planes[i];
    image->scale_x[i] = static_cast<double>(c.h * size) / (8 * f.max_h);
    image->scale_y[i] = static_cast<double>(c.v * size) / (8 * f.max_v);
    if (!plane.Allocate(w, h).ok()) return false;
    std::vector<uint8_t> row(static_cast<size_t>(c.width_in_blocks));
    for (int y = 0; y < h; ++y) {
      if (y % size == 0) {
        const int16_t* dc = &c.dc[static_cast<size_t>(y / size) * c.stride];
        for (int x = 0; x < c.width_in_blocks; ++x) {
          row[x] = RangeLimit((dc[x] * c.quant + 4) >> 3);
        }
      }
      uint8_t* out = plane.row(y);
      if (size == 1) {
        std::memcpy(out, row.data(), static_cast<size_t>(w));
      } else {
        for (int x = 0; x < w; ++x) out[x] = row[x / size];
      }
    }
  }
  image->model = f.count == 1 ? ColorModel::kGray : ColorModel::kYCbCr;
  image->width = image->planes[0].width();
  image->height = image->planes[0].height();
  return true;
}

}  // namespace

bool DecodeProgressiveDc(const uint8_t* data, size_t size, Image* image) {
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return false;
  const uint8_t* p = data + 2;
  const uint8_t* end = data + size;
  Frame frame;
  bool have_frame = false;
  std::array<int, 4> quant{};
  std::array<bool, 4> quant_defined{};
  HuffmanTable dc_tables[4];
  int restart_interval = 0;
  bool any_scan = false;
  bool ended = false;

  while (p + 2 <= end) {
    if (p[0] != 0xFF) return false;
    const uint8_t marker = p[1];
    if (marker == 0xFF) {
      ++p;
      continue;
    }
    if (marker == 0xD9) {  // EOI
      ended = true;
      break;
    }
    if (end - p < 4) return false;
    const size_t length = Read16(p + 2);
    if (length < 2 || static_cast<size_t>(end - p) < 2 + length) return false;
    const uint8_t* s = p + 4;
    const size_t n = length - 2;
    const uint8_t* next = p + 2 + length;
    switch (marker) {
      case 0xC2:  // SOF2: progressive, Huffman
        if (have_frame || !ParseFrame(s, n, &frame)) return false;
        // Where libjpeg scales chroma up through a larger IDCT (4:2:0), its 1/8
        // decode reads chroma AC coefficients too; leave those files to it.
        for (int i = 0; i < frame.count; ++i) {
          if (IdctSize(frame, frame.components[i]) != 1) return false;
        }
        have_frame = true;
        break;
      case 0xC0: case 0xC1: case 0xC3: case 0xC5: case 0xC6: case 0xC7:
      case 0xC9: case 0xCA: case 0xCB: case 0xCD: case 0xCE: case 0xCF:
        return false;  // another kind of frame
      case 0xDB: {  // DQT: only the DC entry of each table matters
        size_t i = 0;
        while (i < n) {
          const int precision = s[i] >> 4, id = s[i] & 15;
          const size_t entries = precision ? 128 : 64;
          if (id > 3 || precision > 1 || i + 1 + entries > n) return false;
          quant[id] = precision ? Read16(s + i + 1) : s[i + 1];
          quant_defined[id] = true;
          i += 1 + entries;
        }
        break;
      }
      case 0xC4: {  // DHT: keep the DC tables
        size_t i = 0;
        while (i < n) {
          if (i + 17 > n) return false;
          const int table_class = s[i] >> 4, id = s[i] & 15;
          int total = 0;
          for (int k = 0; k < 16; ++k) total += s[i + 1 + k];
          if (id > 3 || table_class > 1 || i + 17 + total > n) return false;
          if (table_class == 0 && !dc_tables[id].Build(s + i + 1, s + i + 17, total)) return false;
          i += 17 + static_cast<size_t>(total);
        }
        break;
      }
      case 0xDD:  // DRI
        if (n < 2) return false;
        restart_interval = Read16(s);
        break;
      case 0xDA: {  // SOS
        if (!have_frame || n < 1) return false;
        const int ns = s[0];
        if (ns < 1 || ns > frame.count || n != 4 + 2 * static_cast<size_t>(ns)) return false;
        const int ss = s[1 + 2 * ns], se = s[2 + 2 * ns];
        const int ah = s[3 + 2 * ns] >> 4, al = s[3 + 2 * ns] & 15;
        if (ss != 0) {  // an AC scan: skip its data unread
          next = BitReader(next, end).NextMarker();
          break;
        }
        if (se != 0 || al > 13) return false;
        ScanComponent sc[kMaxComponents];
        for (int i = 0; i < ns; ++i) {
          const int id = s[1 + 2 * i], table = s[2 + 2 * i] >> 4;
          Component* c = nullptr;
          for (int k = 0; k < frame.count; ++k) {
            if (frame.components[k].id == id) c = &frame.components[k];
          }
          if (c == nullptr || table > 3) return false;
          if (ah == 0 && !dc_tables[table].defined) return false;
          if (!c->latched) {
            if (!quant_defined[c->quant_table]) return false;
            // libjpeg keeps quantisers as 16-bit signed multipliers.
            c->quant = static_cast<int16_t>(quant[c->quant_table]);
            c->latched = true;
          }
          sc[i] = ScanComponent{c, &dc_tables[table], 0};
        }
        next = DecodeScan(next, end, &frame, sc, ns, ah, al, restart_interval);
        if (next == nullptr) return false;
        any_scan = true;
        break;
      }
      default:  // APPn, COM and the rest
        break;
    }
    p = next;
  }
  // A file cut short goes to libjpeg, which reports it as damaged.
  return ended && have_frame && any_scan && WritePlanes(frame, image);
}

}  // namespace appliance
