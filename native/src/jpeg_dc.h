// A decoder for the DC coefficients of progressive JPEGs, for 1/8-scale decodes.
//
// At 1/8 scale each 8x8 block becomes one pixel, its DC coefficient over 8, so a
// thumbnail needs the DC scans alone: usually a fifth of the file. libjpeg cannot
// stop there, and for a progressive file it also fills a coefficient buffer for the
// whole image first. This decoder reads only the DC scans (first and refinement),
// keeps one int16 per block, and writes planes with exactly the pixels and the
// layout of libjpeg-turbo's own 1/8-scale raw decode.
#ifndef APPLIANCE_SRC_JPEG_DC_H_
#define APPLIANCE_SRC_JPEG_DC_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "appliance/image.h"

namespace appliance {

// The entropy-decoding pieces, shared with the full progressive decoder
// (jpeg_progressive.cc). Internal to the core.
namespace jpeg_internal {

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
inline int DecodeSymbol(BitReader* reader, const HuffmanTable& table) {
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

inline int Extend(int value, int bits) {
  return value < (1 << (bits - 1)) ? value - (1 << bits) + 1 : value;
}

}  // namespace jpeg_internal

// Decodes a progressive, Huffman-coded, 8-bit JPEG with one (gray) or three
// (Y/Cb/Cr) components at 1/8 scale into `image`. Returns false, leaving the
// work to libjpeg, for anything else or for damaged data.
bool DecodeProgressiveDc(const uint8_t* data, size_t size, Image* image);

}  // namespace appliance

#endif  // APPLIANCE_SRC_JPEG_DC_H_
