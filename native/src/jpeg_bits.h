// Entropy-decoding pieces shared by our own JPEG scan decoders (jpeg_dc.cc,
// jpeg_scaled.cc): a bit reader over entropy-coded data and canonical
// Huffman tables. Internal to the core.
//
// ScanData copies a scan's entropy-coded data once, without its stuffed bytes
// and split at its restart markers; BitReader then keeps up to 64 bits of it,
// most significant first, and refills eight bytes at a time with no test for
// 0xFF. Huffman tables decode short codes, and for AC and refinement scans
// whole coefficients, with one lookup.
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

// A big-endian 16-bit field of a marker segment.
inline uint16_t Read16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// a / b rounded up, for block and MCU counts (which fit an int: at most
// 65535 * 4 * 8 over 8).
inline int DivUp(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

// Codes of up to this many bits decode with one table lookup.
constexpr int kLookaheadBits = 9;
// AC coefficients whose code and value bits together take up to this many
// decode, value and all, with one lookup in an AC table's `coefficients`.
constexpr int kCoefficientBits = 11;

// A canonical Huffman table (T.81 Annex C).
struct HuffmanTable {
  bool defined = false;
  std::array<uint8_t, 256> symbols{};
  std::array<int32_t, 18> max_code{};   // largest code of each length, -1 if none
  std::array<int32_t, 17> val_offset{};
  // (length << 8) | symbol for the codes of up to kLookaheadBits bits, indexed
  // by the next kLookaheadBits bits; 0 = a longer code.
  std::array<uint16_t, 1 << kLookaheadBits> lookahead{};
  // For AC tables: indexed by the next kCoefficientBits bits, a coefficient
  // that fits in them whole, as (value << 16) | (run << 8) | bits taken, or an
  // end of block (value 0, run 0) or a run of sixteen zeros (value 0, run 15);
  // 0 for anything else (a longer code, an end-of-band run).
  std::vector<int32_t> coefficients;
  // The same for a refinement scan, where a new coefficient is a code (run,
  // size 1) and a sign bit: (kPositive if so) | (run << 8) | bits taken.
  static constexpr int32_t kPositive = 1 << 16;
  std::vector<int32_t> refinements;

  bool Build(const uint8_t counts[16], const uint8_t* values, int total, bool ac = false) {
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
    if (ac) BuildCoefficients(counts);
    defined = true;
    return true;
  }

 private:
  void BuildCoefficients(const uint8_t counts[16]) {
    coefficients.assign(size_t{1} << kCoefficientBits, 0);
    refinements.assign(size_t{1} << kCoefficientBits, 0);
    int code = 0, k = 0;
    for (int length = 1; length <= kCoefficientBits; ++length) {
      for (int i = 0; i < counts[length - 1]; ++i, ++k, ++code) {
        const int run = symbols[k] >> 4, size = symbols[k] & 15;
        if (size != 0 && length < kCoefficientBits) {
          // Any size reads one sign bit in a refinement scan, as libjpeg reads it.
          const int filler = kCoefficientBits - length - 1;
          for (int sign = 0; sign < 2; ++sign) {
            const int32_t entry = (sign ? kPositive : 0) | run << 8 | (length + 1);
            const int base = ((code << 1) | sign) << filler;
            for (int fill = 0; fill < (1 << filler); ++fill) refinements[base | fill] = entry;
          }
        }
        if (size == 0) {
          // An end of block (EOB0) or sixteen zeros (ZRL): value 0, run 0 or 15.
          if ((run == 0 || run == 15) && length <= kCoefficientBits) {
            const int filler = kCoefficientBits - length;
            for (int fill = 0; fill < (1 << filler); ++fill) {
              coefficients[(code << filler) | fill] = run << 8 | length;
            }
          }
          continue;
        }
        if (length + size > kCoefficientBits) continue;
        // Every continuation of the code by `size` value bits, then filler.
        const int filler = kCoefficientBits - length - size;
        for (int bits = 0; bits < (1 << size); ++bits) {
          const int half = 1 << (size - 1);
          const int value = bits < half ? bits - (1 << size) + 1 : bits;
          const int32_t entry = static_cast<int32_t>(static_cast<uint32_t>(value) << 16) |
                                run << 8 | (length + size);
          const int base = ((code << size) | bits) << filler;
          for (int fill = 0; fill < (1 << filler); ++fill) coefficients[base | fill] = entry;
        }
      }
      code <<= 1;
    }
  }
};

// Reads the bits of one restart interval of a scan (all of it when there are no
// restart markers), from a ScanData: without stuffed bytes, and followed by
// zeros, so that a refill is a load, a shift and an or, with no branch for the
// CPU to mispredict (the 0xFF test of a reader that unstuffs as it goes fails
// in one refill of 30). Reading past the data gives zeros, as libjpeg does,
// and overrun() says so. A value: the decoders keep it in registers.
class BitReader {
 public:
  // After Refill() at least this many bits can be peeked and taken: a Huffman
  // code and the bits of its value.
  static constexpr int kRefilledBits = 32;
  // After RefillFully(), this many.
  static constexpr int kFullyRefilledBits = 56;

  BitReader() = default;
  // `data` must be followed by 16 readable bytes, zeros.
  BitReader(const uint8_t* data, size_t bytes)
      : cur_(data), limit_(data + bytes + 8), data_(data), bytes_(bytes) {}

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

  // Whether more bits were taken than the data had.
  bool overrun() const {
    return (cur_ - data_) * 8 - bits_ > static_cast<ptrdiff_t>(bytes_) * 8;
  }

 private:
  uint64_t acc_ = 0;  // valid bits from the top; below them, zeros or the stream's next bits
  int bits_ = 0;
  const uint8_t* cur_ = nullptr;    // the next byte to load
  const uint8_t* limit_ = nullptr;  // where cur_ stops: 8 bytes into the zeros
  const uint8_t* data_ = nullptr;
  size_t bytes_ = 0;
};

// The entropy-coded data of one scan, copied without the stuffed zero bytes
// (0xFF00) and split at its restart markers into intervals, each followed by
// zeros. One scan's data is read a second time this way, a memchr() and a
// memcpy() apart from the decode, a small cost against it.
class ScanData {
 public:
  ScanData(const uint8_t* p, const uint8_t* end);
  ~ScanData();
  ScanData(const ScanData&) = delete;
  ScanData& operator=(const ScanData&) = delete;

  // A reader of the first interval.
  BitReader Start() const { return ReaderOf(0); }

  // At a restart marker: the reader of the next interval, if it follows an
  // RSTn marker numbered `expected` (libjpeg finds it past any bytes left in
  // the interval before).
  bool Restart(int expected, BitReader* reader) {
    if (interval_ + 1 >= intervals_.size() || intervals_[interval_ + 1].marker != expected) {
      return false;
    }
    *reader = ReaderOf(++interval_);
    return true;
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
  BitReader ReaderOf(size_t index) const {
    return BitReader(buffer_.data() + intervals_[index].start, intervals_[index].bytes);
  }

  std::vector<uint8_t> buffer_;
  std::vector<Interval> intervals_;
  size_t interval_ = 0;
  const uint8_t* next_marker_ = nullptr;
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
