// One scan's entropy decoding; see jpeg_scans.h.
#include "jpeg_scans.h"

#include <algorithm>

#include "codecs.h"

// The variants are built function by function (the target attribute), not by
// compiling this file with other flags: that way no inline code shared with the
// rest of the core is ever built for an instruction set the CPU may lack.
// Everything a variant calls in its loops is always_inline, so it is compiled
// into the variant.

#define APPLIANCE_INLINE inline __attribute__((always_inline))

namespace appliance {
namespace jpeg_internal {
namespace {

constexpr int kMaxBlocksInMcu = 10;  // T.81 B.2.3

// libjpeg keeps coefficients as 16-bit JCOEF and shifts before it narrows.
int16_t ShiftToCoef(int value, int al) {
  return static_cast<int16_t>(static_cast<uint32_t>(value) << al);
}

// Zigzag positions k.. (none past 63).
uint64_t From(int k) { return k >= 64 ? 0 : ~uint64_t{0} << k; }

// The zero in `zeros` (a mask of them) that has `rank` zeros before it, as a
// mask of that one bit; 0 if there are not that many. With kPdep, one BMI2
// instruction instead of a loop whose exit the CPU cannot predict.
template <bool kPdep>
APPLIANCE_INLINE uint64_t NthZero(uint64_t zeros, int rank) {
#if defined(APPLIANCE_SCAN_VARIANTS)
  if constexpr (kPdep) {
    // pdep deposits the bit at `rank` of its source into the rank-th set bit of
    // its mask. As inline assembly: the intrinsic would need BMI2 enabled for
    // the whole file.
    uint64_t zero;
    asm("pdep %2, %1, %0" : "=r"(zero) : "r"(uint64_t{1} << rank), "rm"(zeros));
    return zero;
  }
#endif
  for (; rank > 0 && zeros != 0; --rank) zeros &= zeros - 1;
  return zeros & (~zeros + 1);
}

// Where a coefficient goes: its slot in the block's kept corner, or `discarded`
// (slot -1). Chosen without a branch: whether a position is kept is as good as
// random from one coefficient to the next.
APPLIANCE_INLINE int16_t* KeptOrDiscarded(int16_t* block, int slot, int16_t* discarded) {
  const uintptr_t kept = static_cast<uintptr_t>(0) - static_cast<uintptr_t>(slot >= 0);
  const uintptr_t in_block = reinterpret_cast<uintptr_t>(block) +
                             static_cast<uintptr_t>(static_cast<intptr_t>(slot)) * sizeof(int16_t);
  return reinterpret_cast<int16_t*>((in_block & kept) |
                                    (reinterpret_cast<uintptr_t>(discarded) & ~kept));
}

// The per-block decoders. Each returns false for data that cannot be valid.
APPLIANCE_INLINE bool DecodeDcFirst(BitReader* reader, ScanComponent* sc, int al,
                                    int16_t* block) {
  reader->Refill();
  const int s = DecodeRefilled(reader, *sc->dc_table);
  if (s < 0 || s > 16) return false;
  const int diff = Extend(static_cast<int>(reader->Take(s)), s);  // 0 when s is 0
  if (__builtin_add_overflow(sc->predictor, diff, &sc->predictor)) return false;
  block[0] = ShiftToCoef(sc->predictor, al);
  return true;
}

APPLIANCE_INLINE void DecodeDcRefine(BitReader* reader, int al, int16_t* block) {
  reader->Refill();
  // Without a branch: the bit is as good as random.
  block[0] = static_cast<int16_t>(block[0] | static_cast<int>(reader->Take(1)) << al);
}

// The AC coefficients of a block, first pass (G.1.2.2), or all of them in a
// sequential scan (kSequential: no end-of-band runs, and no nonzero mask to
// keep, as nothing refines them).
template <bool kSequential = false>
APPLIANCE_INLINE bool DecodeAcFirst(BitReader* reader, const HuffmanTable& table, int ss, int se,
                                    int al, const Corner& corner, int* eobrun, int16_t* block,
                                    uint64_t* nonzero) {
  if (*eobrun > 0) {
    --*eobrun;
    return true;
  }
  uint64_t nz = *nonzero;
  int16_t discarded;  // where coefficients outside the kept corner go
  for (int k = ss; k <= se; ++k) {
    reader->Refill();
    int16_t coef;
    const int32_t whole = table.coefficients[reader->Peek(kCoefficientBits)];
    if (whole != 0) {  // most symbols: code and value in one lookup
      reader->Skip(whole & 0xFF);
      const int run = (whole >> 8) & 15, value = whole >> 16;
      if (value == 0) {  // no coefficient: an end of block, or sixteen zeros
        if (run != 15) break;
        k += 15;  // the loop adds the last
        continue;
      }
      k += run;
      if (k > se) return false;
      coef = ShiftToCoef(value, al);
    } else {
      const int rs = DecodeRefilled(reader, table);
      if (rs < 0) return false;
      const int r = rs >> 4, s = rs & 15;
      if (s == 0) {
        if (r == 15) {
          k += 15;  // ZRL: sixteen zeros, the loop adds the last
          continue;
        }
        if constexpr (!kSequential) {
          // EOBr: this block and 2^r - 1 + (r bits) more end here.
          *eobrun = (1 << r) + static_cast<int>(reader->Take(r)) - 1;
        }
        break;  // in a sequential scan an end of block, whatever r says, as libjpeg reads it
      }
      k += r;
      if (k > se) return false;
      coef = ShiftToCoef(Extend(static_cast<int>(reader->Take(s)), s), al);
    }
    if constexpr (!kSequential) {
      const uint64_t bit = uint64_t{1} << k;
      nz = coef != 0 ? nz | bit : nz & ~bit;
    }
    *KeptOrDiscarded(block, corner.slot[k], &discarded) = coef;
  }
  *nonzero = nz;
  return true;
}

// A block of a sequential scan: its DC difference, then its AC coefficients
// up to an end of block (T.81 F.2.2).
APPLIANCE_INLINE bool DecodeSequential(BitReader* reader, ScanComponent* sc, const Corner& corner,
                                       int16_t* block, uint64_t* nonzero) {
  int eobrun = 0;
  return DecodeDcFirst(reader, sc, 0, block) &&
         DecodeAcFirst<true>(reader, *sc->ac_table, 1, 63, 0, corner, &eobrun, block, nonzero);
}

// A refinement scan gives every coefficient of its band that is already
// nonzero one correction bit (G.1.2.3), in zigzag order, wherever the symbols
// for new coefficients fall between them. A block has at most 63, so they are
// gathered into one word as they come and applied once the block is done.
APPLIANCE_INLINE uint64_t ReadCorrections(BitReader* reader, int n, uint64_t bits) {
  // After a refill and a symbol at least 15 bits are left: enough, mostly.
  static_assert(BitReader::kRefilledBits - kCoefficientBits >= 15 &&
                BitReader::kRefilledBits - 17 >= 15);
  if (n > 15) {
    reader->RefillFully();
    if (n > BitReader::kFullyRefilledBits) {  // only in a pathological block
      bits = (bits << 32) | reader->Take(32);
      n -= 32;
      reader->RefillFully();
    }
  }
  return (bits << n) | reader->TakeWide(n);
}

// Applies the correction bits (`bits`, one per coefficient of `corrected`, the
// first in the highest bit) to the kept coefficients.
APPLIANCE_INLINE void ApplyCorrections(uint64_t corrected, uint64_t bits, const Corner& corner,
                                       int p1, int16_t* block) {
  const int count = __builtin_popcountll(corrected);
  for (uint64_t kept = corrected & corner.kept; kept != 0; kept &= kept - 1) {
    const int k = __builtin_ctzll(kept);
    const int index = __builtin_popcountll(corrected & ((uint64_t{1} << k) - 1));
    // A set bit adds 1 << Al away from zero, unless that bit is set already;
    // without a branch, as the bits are as good as random.
    const int bit = static_cast<int>((bits >> (count - 1 - index)) & 1);
    int16_t& coef = block[corner.slot[k]];
    const int step = (coef >= 0 ? p1 : -p1) * (bit & ((coef & p1) == 0));
    coef = static_cast<int16_t>(coef + step);
  }
}

template <bool kPdep>
APPLIANCE_INLINE bool DecodeAcRefine(BitReader* reader, const HuffmanTable& table,
                                     const Scan& scan, const Corner& corner, int* eobrun,
                                     int16_t* block, uint64_t* nonzero) {
  const int p1 = 1 << scan.al;
  uint64_t nz = *nonzero;
  // The band's positions not passed yet, from the start of the band.
  uint64_t remaining = From(scan.ss) & ~From(scan.se + 1);
  const uint64_t corrected = nz & remaining;  // the coefficients that get a correction bit
  uint64_t corrections = 0;
  int16_t discarded;  // where new coefficients outside the kept corner go
  if (*eobrun == 0) {
    while (remaining != 0) {
      reader->Refill();
      int r, value = 0;
      const int32_t coefficient = table.refinements[reader->Peek(kCoefficientBits)];
      if (coefficient != 0) {  // most symbols: a new coefficient, code and sign in one lookup
        reader->Skip(coefficient & 0xFF);
        r = (coefficient >> 8) & 15;
        value = coefficient & HuffmanTable::kPositive ? p1 : -p1;
      } else {
        const int rs = DecodeRefilled(reader, table);
        if (rs < 0) return false;
        r = rs >> 4;
        if ((rs & 15) != 0) {
          // A new coefficient of magnitude 1 << Al. Sizes other than 1 are
          // invalid; libjpeg warns and reads them as 1, and so do we.
          value = reader->Take(1) ? p1 : -p1;
        } else if (r != 15) {
          *eobrun = (1 << r) + static_cast<int>(reader->Take(r));
          break;  // the rest of the band gets correction bits below
        }
      }
      // Skip r coefficients that are still zero (reading the correction bits of
      // the nonzero ones passed on the way) and place the new one, if any, on
      // the next zero; a ZRL (r = 15, no value) passes sixteen zeros. Where the
      // band runs out of zeros first, all the rest is passed.
      const uint64_t target = NthZero<kPdep>(~nz & remaining, r);
      // Most symbols pass no nonzero coefficient: then the CPU can go on to the
      // next symbol on a predicted branch instead of waiting for the count.
      const uint64_t passed = nz & remaining & (target - 1);
      if (passed != 0) {
        corrections = ReadCorrections(reader, __builtin_popcountll(passed), corrections);
      }
      if (value != 0) {
        if (target == 0) return false;
        nz |= target;
        *KeptOrDiscarded(block, corner.slot[__builtin_ctzll(target)], &discarded) =
            static_cast<int16_t>(value);
      }
      remaining &= ~(target << 1) + 1;  // past the target (none left if there was none)
    }
  }
  if (*eobrun > 0) {
    reader->Refill();
    corrections = ReadCorrections(reader, __builtin_popcountll(nz & remaining), corrections);
    --*eobrun;
  }
  ApplyCorrections(corrected, corrections, corner, p1, block);
  *nonzero = nz;
  return true;
}

enum class ScanKind { kSequential, kDcFirst, kDcRefine, kAcFirst, kAcRefine };

// Restart markers: every `interval` units (MCUs or blocks) the entropy coder
// starts afresh after an RSTn marker.
class Restarts {
 public:
  explicit Restarts(int interval) : interval_(interval), until_(interval) {}

  // Before each unit; false when the expected marker is missing.
  APPLIANCE_INLINE bool Next(ScanData* data, BitReader* reader, Scan* scan) {
    if (interval_ == 0) return true;
    if (until_ == 0) {
      if (reader->overrun() || !data->Restart(marker_, reader)) return false;
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
template <ScanKind kKind, bool kPdep>
APPLIANCE_INLINE Status DecodeScanOf(ScanData* data, BitReader* reader,
                                     const JpegCoefficients& frame, Scan* scan,
                                     int restart_interval) {
  const Status corrupt = Corrupt("JPEG scan data is damaged");
  const Status truncated = Corrupt("JPEG scan data is truncated");
  Restarts restarts(restart_interval);
  if (scan->ns > 1) {  // interleaved, MCU by MCU: a sequential scan, or DC (T.81 G.1.1.1.1)
    // The blocks of one MCU, in order: their component and where they are from
    // the MCU's first block of that component, in blocks and in coefficients.
    int mcu_blocks = 0;
    int component_of[kMaxBlocksInMcu];
    size_t block_offset[kMaxBlocksInMcu], coefficient_offset[kMaxBlocksInMcu];
    for (int i = 0; i < scan->ns; ++i) {
      const ComponentCoefficients& c = *scan->comps[i].component;
      for (int by = 0; by < c.v_samp; ++by) {
        for (int bx = 0; bx < c.h_samp; ++bx) {
          if (mcu_blocks == kMaxBlocksInMcu) return corrupt;
          component_of[mcu_blocks] = i;
          block_offset[mcu_blocks] = c.Index(bx, by);
          coefficient_offset[mcu_blocks++] = c.Index(bx, by) * static_cast<size_t>(c.side * c.side);
        }
      }
    }
    for (int my = 0; my < frame.mcu_rows; ++my) {
      // Each component's first block in the MCU.
      int16_t* coefficients[kMaxScanComponents];
      uint64_t* nonzero[kMaxScanComponents];
      for (int i = 0; i < scan->ns; ++i) {
        ComponentCoefficients& c = *scan->comps[i].component;
        coefficients[i] = c.Block(0, my * c.v_samp);
        nonzero[i] = &c.nonzero[c.Index(0, my * c.v_samp)];
      }
      for (int mx = 0; mx < frame.mcus_per_row; ++mx) {
        if (!restarts.Next(data, reader, scan)) return corrupt;
        for (int b = 0; b < mcu_blocks; ++b) {
          const int i = component_of[b];
          int16_t* block = coefficients[i] + coefficient_offset[b];
          if constexpr (kKind == ScanKind::kSequential) {
            if (!DecodeSequential(reader, &scan->comps[i], *scan->comps[i].corner, block,
                                  nonzero[i] + block_offset[b])) {
              return corrupt;
            }
          } else if constexpr (kKind == ScanKind::kDcFirst) {
            if (!DecodeDcFirst(reader, &scan->comps[i], scan->al, block)) return corrupt;
          } else {
            DecodeDcRefine(reader, scan->al, block);
          }
        }
        for (int i = 0; i < scan->ns; ++i) {
          const ComponentCoefficients& c = *scan->comps[i].component;
          coefficients[i] += c.h_samp * c.side * c.side;
          nonzero[i] += c.h_samp;
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
  const Corner& corner = *sc.corner;
  const int block_size = c.side * c.side;
  for (int by = 0; by < c.height_in_blocks; ++by) {
    int16_t* block = c.Block(0, by);
    uint64_t* nonzero = &c.nonzero[c.Index(0, by)];
    for (int bx = 0; bx < c.width_in_blocks; ++bx, block += block_size, ++nonzero) {
      if (!restarts.Next(data, reader, scan)) return corrupt;
      if constexpr (kKind == ScanKind::kSequential) {
        if (!DecodeSequential(reader, &sc, corner, block, nonzero)) return corrupt;
      } else if constexpr (kKind == ScanKind::kDcFirst) {
        if (!DecodeDcFirst(reader, &sc, scan->al, block)) return corrupt;
      } else if constexpr (kKind == ScanKind::kDcRefine) {
        DecodeDcRefine(reader, scan->al, block);
      } else if constexpr (kKind == ScanKind::kAcFirst) {
        if (!DecodeAcFirst(reader, *sc.ac_table, scan->ss, scan->se, scan->al, corner,
                           &scan->eobrun, block, nonzero)) {
          return corrupt;
        }
      } else {
        if (!DecodeAcRefine<kPdep>(reader, *sc.ac_table, *scan, corner, &scan->eobrun, block,
                            nonzero)) {
          return corrupt;
        }
      }
    }
    if (reader->overrun()) return truncated;
  }
  return Status::Ok();
}

template <bool kPdep>
APPLIANCE_INLINE Status DecodeScanWith(const uint8_t* p, const uint8_t* end,
                                       const JpegCoefficients& frame, Scan* scan,
                                       int restart_interval, const uint8_t** next) {
  ScanData data(p, end);
  BitReader reader = data.Start();  // a local: the decoders keep it in registers
  Status status;
  if (scan->sequential) {
    status = DecodeScanOf<ScanKind::kSequential, kPdep>(&data, &reader, frame, scan,
                                                        restart_interval);
  } else if (scan->ss == 0) {
    status = scan->ah == 0 ? DecodeScanOf<ScanKind::kDcFirst, kPdep>(&data, &reader, frame, scan,
                                                                      restart_interval)
                           : DecodeScanOf<ScanKind::kDcRefine, kPdep>(&data, &reader, frame, scan, restart_interval);
  } else {
    status = scan->ah == 0 ? DecodeScanOf<ScanKind::kAcFirst, kPdep>(&data, &reader, frame, scan,
                                                                      restart_interval)
                           : DecodeScanOf<ScanKind::kAcRefine, kPdep>(&data, &reader, frame, scan, restart_interval);
  }
  if (status.ok()) *next = data.NextMarker();
  return status;
}

}  // namespace

Status DecodeScanPortable(const uint8_t* p, const uint8_t* end,
                          const JpegCoefficients& frame, Scan* scan, int restart_interval,
                          const uint8_t** next) {
  return DecodeScanWith<false>(p, end, frame, scan, restart_interval, next);
}

#if defined(APPLIANCE_SCAN_VARIANTS)
__attribute__((target("popcnt"))) Status DecodeScanPopcnt(
    const uint8_t* p, const uint8_t* end, const JpegCoefficients& frame,
    Scan* scan, int restart_interval, const uint8_t** next) {
  return DecodeScanWith<false>(p, end, frame, scan, restart_interval, next);
}

__attribute__((target("popcnt,bmi,bmi2"))) Status DecodeScanBmi2(
    const uint8_t* p, const uint8_t* end, const JpegCoefficients& frame,
    Scan* scan, int restart_interval, const uint8_t** next) {
  return DecodeScanWith<true>(p, end, frame, scan, restart_interval, next);
}
#endif
}  // namespace jpeg_internal
}  // namespace appliance
