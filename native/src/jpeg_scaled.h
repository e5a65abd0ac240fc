// Our own JPEG decoder for scaled decodes (1/4, 1/2): baseline, extended and
// progressive Huffman-coded files (ITU T.81 Annexes F and G); see
// docs/decisions/0011.
//
// libjpeg decodes a progressive file in two steps: every scan into a buffer of
// all 64 coefficients of every block, then an IDCT per block. Its entropy
// decoder walks every coefficient of the band for each refinement bit, and its
// buffer is 128 bytes a block. This one keeps, per block, a 64-bit mask of the
// nonzero coefficients (which is all a refinement scan needs to know about the
// ones it does not keep) and only the low-frequency corner that the scaled IDCT
// reads: 4x4 for a 1/2 decode. DecodeCoefficients with the whole 8x8 kept
// matches libjpeg-turbo's jpeg_read_coefficients() coefficient for coefficient
// (native/tests/jpeg_coefficients.cc checks it).
#ifndef APPLIANCE_SRC_JPEG_SCALED_H_
#define APPLIANCE_SRC_JPEG_SCALED_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "appliance/image.h"
#include "appliance/options.h"
#include "appliance/status.h"

namespace appliance {

constexpr int kDctBlockSize = 64;

struct ComponentCoefficients {
  int id = 0;
  int h_samp = 1, v_samp = 1;
  int quant_table = 0;
  // libjpeg's comp_info[c].width_in_blocks / height_in_blocks: the blocks that
  // cover the image.
  int width_in_blocks = 0, height_in_blocks = 0;
  // The stored grid, padded to whole MCUs (h_samp x v_samp blocks each), as
  // libjpeg pads its coefficient arrays.
  int blocks_wide = 0, blocks_high = 0;
  // The quantiser, natural order, latched at the component's first scan as
  // libjpeg does; all zero if no scan contained the component.
  std::array<uint16_t, kDctBlockSize> quant{};
  bool quant_latched = false;
  // Each block keeps the side x side corner of its lowest frequencies, row by
  // row (side 8: all 64 coefficients in natural order).
  int side = 8;
  // blocks_high rows of blocks_wide blocks, side * side coefficients each.
  std::vector<int16_t> coefficients;
  // Per block, bit k set when the coefficient k in zigzag order is nonzero
  // (all 64 of them, kept or not).
  std::vector<uint64_t> nonzero;

  int16_t* Block(int bx, int by) { return coefficients.data() + Index(bx, by) * side * side; }
  const int16_t* Block(int bx, int by) const {
    return coefficients.data() + Index(bx, by) * side * side;
  }
  size_t Index(int bx, int by) const {
    return static_cast<size_t>(by) * static_cast<size_t>(blocks_wide) + static_cast<size_t>(bx);
  }
};

struct JpegCoefficients {
  bool progressive = true;  // false: sequential (baseline or extended)
  int width = 0, height = 0;
  int max_h_samp = 1, max_v_samp = 1;
  int mcus_per_row = 0, mcu_rows = 0;
  std::vector<ComponentCoefficients> components;
};

// Decodes every scan of a Huffman-coded, 8-bit JPEG, progressive (SOF2) or
// sequential (SOF0, SOF1), with one to four components, keeping the side x
// side lowest frequencies of each block of the first component and the
// chroma_side x chroma_side ones of the others (1, 2, 4 or 8; 0: side).
// kUnsupported for any other kind of JPEG, kCorrupt for damaged or truncated
// data, kTooLarge past `limits` (checked before the coefficient arrays are
// allocated). `out` may hold the arrays of an earlier decode: they are reused.
// On failure its contents are unspecified. A progressive file's scans are
// decoded in lanes that may run on helper threads (docs/decisions/0012).
Status DecodeCoefficients(const uint8_t* data, size_t size, JpegCoefficients* out,
                          const Limits& limits = Limits(), int side = 8, int chroma_side = 0);

// Decodes a Huffman-coded, 8-bit gray or Y/Cb/Cr JPEG into planes: luma at
// scale n/8 and chroma at chroma_n/8 (each 2 or 4), each block through an
// n-point inverse DCT of its n x n lowest frequencies, each component with its
// own sampling. Returns false, leaving the work to libjpeg, for anything else
// or for damaged data.
bool DecodeScaled(const uint8_t* data, size_t size, int n, int chroma_n, const Limits& limits,
                  Image* image);

}  // namespace appliance

#endif  // APPLIANCE_SRC_JPEG_SCALED_H_
