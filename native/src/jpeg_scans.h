// The entropy decoding of one JPEG scan, sequential (T.81 Annex F) or
// progressive (Annex G), into the coefficient corners of jpeg_scaled.h.
// Internal to the core.
//
// The scan decoder comes portable, and on x86-64 also built for CPUs with
// popcount and with BMI2 (whose pdep finds the n-th zero of a block in one
// instruction); ChooseScanDecoder() picks one for the CPU at hand
// (docs/decisions/0011).
#ifndef APPLIANCE_SRC_JPEG_SCANS_H_
#define APPLIANCE_SRC_JPEG_SCANS_H_

#include <array>
#include <cstdint>

#include "appliance/status.h"
#include "jpeg_bits.h"
#include "jpeg_scaled.h"

namespace appliance {
namespace jpeg_internal {

constexpr int kMaxScanComponents = 4;  // T.81 B.2.3

// Zigzag index -> natural (row-major) index (T.81 Figure A.6).
inline constexpr uint8_t kNaturalOrder[kDctBlockSize] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

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
  const Corner* corner;  // the component's
  const HuffmanTable* dc_table;
  const HuffmanTable* ac_table;
  int predictor;
};

struct Scan {
  int ns = 0;
  ScanComponent comps[kMaxScanComponents];
  bool sequential = false;  // a baseline (or extended) scan: every coefficient of each block
  int ss = 0, se = 0, ah = 0, al = 0;
  int eobrun = 0;  // blocks left in an end-of-band run (AC scans)
};

// Decodes one scan's entropy-coded data at `p`; on success `*next` is the
// first marker after it.
using ScanDecoder = Status (*)(const uint8_t* p, const uint8_t* end,
                               const JpegCoefficients& frame, Scan* scan,
                               int restart_interval, const uint8_t** next);

// The variants in jpeg_scans.cc: portable, and on x86-64 (GCC or Clang) also
// built for CPUs with popcount and with BMI2.
Status DecodeScanPortable(const uint8_t* p, const uint8_t* end,
                          const JpegCoefficients& frame, Scan* scan, int restart_interval,
                          const uint8_t** next);
#if defined(__x86_64__) && defined(__GNUC__)
#define APPLIANCE_SCAN_VARIANTS 1
Status DecodeScanPopcnt(const uint8_t* p, const uint8_t* end,
                        const JpegCoefficients& frame, Scan* scan, int restart_interval,
                        const uint8_t** next);
Status DecodeScanBmi2(const uint8_t* p, const uint8_t* end, const JpegCoefficients& frame,
                      Scan* scan, int restart_interval, const uint8_t** next);
#endif

// The corner of a side (1, 2, 4 or 8).
const Corner& CornerFor(int side);

// The fastest variant this CPU runs well, or the one APPLIANCE_SCAN_DECODER
// names (portable, popcnt or bmi2; for tests and benchmarks).
ScanDecoder ChooseScanDecoder();

}  // namespace jpeg_internal
}  // namespace appliance

#endif  // APPLIANCE_SRC_JPEG_SCANS_H_
