// Entropy-decoding pieces shared by our own JPEG scan decoders (jpeg_dc.cc,
// jpeg_scaled.cc): a bit reader over entropy-coded data and canonical
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
#include <vector>

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

// Reads the entropy-coded data of one scan. The constructor first copies it,
// without the stuffed zero bytes (0xFF00) and split at its restart markers,
// into a buffer where each restart interval's data is followed by zeros; then a
// refill is a load, a shift and an or, with no branch for the CPU to mispredict
// (the 0xFF test of a reader that unstuffs as it goes fails in one refill of
// 30). Reading past an interval's data gives zeros, as libjpeg does, and is
// reported by overrun(). One scan's data is read a second time this way, a
// memchr() and a memcpy() apart from the decode, a small cost against it.
class BitReader {
 public:
  // After Refill() at least this many bits can be peeked and taken: a Huffman
  // code and the bits of its value.
  static constexpr int kRefilledBits = 32;
  // After RefillFully(), this many.
  static constexpr int kFullyRefilledBits = 56;

  BitReader(const uint8_t* p, const uint8_t* end);
  ~BitReader();
  BitReader(const BitReader&) = delete;
  BitReader& operator=(const BitReader&) = delete;

  // Refills only when short: the refill's load would otherwise sit on the
  // chain from one symbol to the next, where a well-predicted branch does not.
  void Refill() {
    if (bits_ < kRefilledBits) RefillFully();
  }
  void RefillFully() {
    uint64_t word;
    std::memcpy(&word, cur_, 8);
    acc_ |= __builtin_bswap64(word) >> bits_;
    // The whole bytes that fit; the bits of the next one, below them, are the
    // same as the next refill puts there.
    cur_ += (63 - bits_) >> 3;
    bits_ |= kFullyRefilledBits;
    cur_ = cur_ < limit_ ? cur_ : limit_;  // past the data: zeros, not past the buffer
  }

  // The next n bits (1..32), after Refill() made them available.
  uint32_t Peek(int n) const { return static_cast<uint32_t>(acc_ >> (64 - n)); }
  void Skip(int n) {
    acc_ <<= n;
    bits_ -= n;
  }
  // Takes n bits (0..32) that Refill() made available.
  uint32_t Take(int n) { return static_cast<uint32_t>(TakeWide(n)); }
  // Takes n bits (0..kFullyRefilledBits) that RefillFully() made available.
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

  // At a restart marker: drop the partial byte, expect RSTn (which libjpeg
  // finds past any bytes left in the interval), start the next interval.
  bool Restart(int expected);

  // Whether more bits were taken than the data had.
  bool overrun() const {
    return overrun_ || (cur_ - segment_) * 8 - bits_ > static_cast<ptrdiff_t>(segment_bytes_) * 8;
  }

  // The position of the marker that ends the scan.
  const uint8_t* NextMarker() const { return next_marker_; }

 private:
  // Where an interval's data starts in buffer_, how long it is, and the number
  // of the RSTn marker before it (-1 for the first).
  struct Interval {
    size_t start;
    size_t bytes;
    int marker;
  };
  void StartInterval(size_t index);

  std::vector<uint8_t> buffer_;
  std::vector<Interval> intervals_;
  size_t interval_ = 0;
  const uint8_t* next_marker_ = nullptr;
  const uint8_t* segment_ = nullptr;  // the current interval's data
  size_t segment_bytes_ = 0;
  const uint8_t* cur_ = nullptr;    // the next byte to load
  const uint8_t* limit_ = nullptr;  // where cur_ stops: 8 bytes into the zeros
  uint64_t acc_ = 0;  // valid bits from the top; below them, zeros or the stream's next bits
  int bits_ = 0;
  bool overrun_ = false;
};

// The position of the marker that ends the entropy-coded data at `p` (of a
// scan not decoded), or `end`.
const uint8_t* SkipEntropyCodedData(const uint8_t* p, const uint8_t* end);

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

// T.81 F.2.2.1: a magnitude category's bits to a signed value; 0 for no bits.
// Without a branch: whether the value is negative is as good as random.
inline int Extend(int value, int bits) {
  const int half = (1 << bits) >> 1;
  return value - (value < half ? (1 << bits) - 1 : 0);
}

}  // namespace jpeg_internal
}  // namespace appliance

#endif  // APPLIANCE_SRC_JPEG_BITS_H_
