// Entropy-decoding pieces shared by our own JPEG scan decoders (jpeg_dc.cc,
// jpeg_progressive.cc): a bit reader over entropy-coded data and canonical
// Huffman tables. Internal to the core.
//
// The bit reader keeps up to 64 bits, most significant first, and refills
// eight bytes at a time whenever none of them is 0xFF (the common case: 0xFF
// starts a stuffed byte or a marker, and is handled a byte at a time).
#ifndef APPLIANCE_SRC_JPEG_BITS_H_
#define APPLIANCE_SRC_JPEG_BITS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

namespace appliance {
namespace jpeg_internal {

// Codes of up to this many bits decode with one table lookup.
constexpr int kLookaheadBits = 9;

// A canonical Huffman table (T.81 Annex C).
struct HuffmanTable {
  bool defined = false;
  std::array<uint8_t, 256> symbols{};
  std::array<int32_t, 18> max_code{};   // largest code of each length, -1 if none
  std::array<int32_t, 17> val_offset{};
  // (length << 8) | symbol for the codes of up to kLookaheadBits bits, indexed
  // by the next kLookaheadBits bits; 0 = a longer code.
  std::array<uint16_t, 1 << kLookaheadBits> lookahead{};

  bool Build(const uint8_t counts[16], const uint8_t* values, int total) {
    if (total > 256) return false;
    std::memcpy(symbols.data(), values, static_cast<size_t>(total));
    int code = 0, k = 0;
    lookahead.fill(0);
    for (int length = 1; length <= 16; ++length) {
      const int n = counts[length - 1];
      val_offset[length] = k - code;
      for (int i = 0; i < n; ++i, ++k, ++code) {
        if (length <= kLookaheadBits) {
          const int shift = kLookaheadBits - length;
          for (int fill = 0; fill < (1 << shift); ++fill) {
            lookahead[(code << shift) | fill] = static_cast<uint16_t>(length << 8 | symbols[k]);
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
  // After Refill() at least this many bits can be peeked and taken.
  static constexpr int kRefilledBits = 56;

  BitReader(const uint8_t* p, const uint8_t* end) : p_(p), end_(end) {}

  void Refill() {
    if (bits_ >= kRefilledBits) return;
    if (end_ - p_ >= 8) {
      uint64_t word;
      std::memcpy(&word, p_, 8);
      word = __builtin_bswap64(word);
      const uint64_t inverted = ~word;  // a 0xFF byte is a zero byte here
      if (((inverted - 0x0101010101010101ULL) & ~inverted & 0x8080808080808080ULL) == 0) {
        // The bits past the whole bytes taken are the stream's next bits too,
        // so leaving them below the valid ones is harmless.
        acc_ |= word >> bits_;
        const int bytes = (63 - bits_) >> 3;
        p_ += bytes;
        bits_ += bytes << 3;
        return;
      }
    }
    RefillSlowly();
  }

  // The next n bits (1..32), after Refill() made them available.
  uint32_t Peek(int n) const { return static_cast<uint32_t>(acc_ >> (64 - n)); }
  void Skip(int n) {
    acc_ <<= n;
    bits_ -= n;
  }
  // Takes n bits (0..32) that Refill() made available.
  uint32_t Take(int n) {
    if (n == 0) return 0;
    const uint32_t v = Peek(n);
    Skip(n);
    return v;
  }
  // Takes n bits (0..kRefilledBits) that Refill() made available.
  uint64_t TakeWide(int n) {
    const uint64_t v = (acc_ >> 1) >> (63 - n);  // no shift by 64 when n is 0
    Skip(n);
    return v;
  }
  // Refills and takes n bits (0..16).
  int GetBits(int n) {
    Refill();
    return static_cast<int>(Take(n));
  }
  uint32_t Peek16() {
    Refill();
    return Peek(16);
  }

  // At a restart marker: drop the partial byte, expect RSTn, reset. Bytes
  // between the data and the marker are skipped, as libjpeg does.
  bool Restart(int expected) {
    if (bits_ < padding_) overrun_ = true;
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

  // Whether more bits were taken than the data had.
  bool overrun() const { return overrun_ || bits_ < padding_; }

  // The position of the next marker after the scan.
  const uint8_t* NextMarker() const {
    const uint8_t* p = p_;
    while (p + 1 < end_ && !(p[0] == 0xFF && p[1] != 0 && !(p[1] >= 0xD0 && p[1] <= 0xD7))) ++p;
    return p;
  }

 private:
  void RefillSlowly() {
    // Clear what a fast refill left below the valid bits: it is appended again here.
    acc_ = bits_ == 0 ? 0 : acc_ & (~uint64_t{0} << (64 - bits_));
    while (bits_ < kRefilledBits) {  // so that bits_ stays below 64
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
      acc_ |= static_cast<uint64_t>(byte) << (56 - bits_);
      bits_ += 8;
    }
  }

  const uint8_t* p_;
  const uint8_t* end_;
  uint64_t acc_ = 0;  // valid bits from the top; below them, zeros or the stream's next bits
  int bits_ = 0;
  int padding_ = 0;  // how many of the valid bits, at their end, are made-up zeros
  bool at_marker_ = false;
  bool overrun_ = false;
};

// Decodes one symbol from bits Refill() made available (a code is at most 16
// bits). Returns the symbol, or -1 for a code that is not in the table.
inline int DecodeRefilled(BitReader* reader, const HuffmanTable& table) {
  const uint16_t fast = table.lookahead[reader->Peek(kLookaheadBits)];
  if (fast != 0) {
    reader->Skip(fast >> 8);
    return fast & 0xFF;
  }
  const uint32_t peek = reader->Peek(16);
  for (int length = kLookaheadBits + 1; length <= 16; ++length) {
    const int32_t code = static_cast<int32_t>(peek >> (16 - length));
    if (code <= table.max_code[length]) {
      reader->Skip(length);
      const int index = code + table.val_offset[length];
      return index >= 0 && index < 256 ? table.symbols[index] : -1;
    }
  }
  return -1;
}

inline int DecodeSymbol(BitReader* reader, const HuffmanTable& table) {
  reader->Refill();
  return DecodeRefilled(reader, table);
}

// T.81 F.2.2.1: a magnitude category's bits to a signed value.
inline int Extend(int value, int bits) {
  return value < (1 << (bits - 1)) ? value - (1 << bits) + 1 : value;
}

}  // namespace jpeg_internal
}  // namespace appliance

#endif  // APPLIANCE_SRC_JPEG_BITS_H_
