#include "jpeg_dc.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "codecs.h"
#include "jpeg_bits.h"

namespace appliance {
namespace {

constexpr int kMaxComponents = 3;

using jpeg_internal::BitReader;
using jpeg_internal::DecodeSymbol;
using jpeg_internal::DivUp;
using jpeg_internal::Extend;
using jpeg_internal::HuffmanTable;
using jpeg_internal::Read16;
using jpeg_internal::ScanData;

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
  ScanData data(p, end);
  BitReader reader = data.Start();
  const bool interleaved = ns > 1;
  const int units_w = interleaved ? f->mcus_per_row : sc[0].component->width_in_blocks;
  const int units_h = interleaved ? f->mcu_rows : sc[0].component->height_in_blocks;
  int until_restart = restart_interval;
  int next_restart = 0;
  for (int my = 0; my < units_h; ++my) {
    for (int mx = 0; mx < units_w; ++mx) {
      if (restart_interval > 0) {
        if (until_restart == 0) {
          if (!data.Restart(next_restart, &reader)) return nullptr;
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
  return data.NextMarker();
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
  int scans = 0;
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
        if (!have_frame || n < 1 || ++scans > kMaxJpegScans) return false;
        const int ns = s[0];
        if (ns < 1 || ns > frame.count || n != 4 + 2 * static_cast<size_t>(ns)) return false;
        const int ss = s[1 + 2 * ns], se = s[2 + 2 * ns];
        const int ah = s[3 + 2 * ns] >> 4, al = s[3 + 2 * ns] & 15;
        if (ss != 0) {  // an AC scan: skip its data unread
          next = jpeg_internal::SkipEntropyCodedData(next, end);
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
