// A decoder of a progressive JPEG's entropy-coded data into quantized DCT
// coefficients (ITU T.81 Annex G.1.2), the first step of a scaled decoder that
// can skip what libjpeg must do in full. Its output matches libjpeg-turbo's
// jpeg_read_coefficients() coefficient for coefficient.
#ifndef APPLIANCE_SRC_JPEG_PROGRESSIVE_H_
#define APPLIANCE_SRC_JPEG_PROGRESSIVE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

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
  // blocks_high rows of blocks_wide blocks, each 64 coefficients in natural
  // (row-major) order.
  std::vector<int16_t> coefficients;

  int16_t* Block(int bx, int by) {
    return coefficients.data() +
           (static_cast<size_t>(by) * static_cast<size_t>(blocks_wide) + static_cast<size_t>(bx)) *
               kDctBlockSize;
  }
  const int16_t* Block(int bx, int by) const {
    return coefficients.data() +
           (static_cast<size_t>(by) * static_cast<size_t>(blocks_wide) + static_cast<size_t>(bx)) *
               kDctBlockSize;
  }
};

struct ProgressiveCoefficients {
  int width = 0, height = 0;
  int max_h_samp = 1, max_v_samp = 1;
  int mcus_per_row = 0, mcu_rows = 0;
  std::vector<ComponentCoefficients> components;
};

// Decodes every scan of a progressive (SOF2), Huffman-coded, 8-bit JPEG with
// one to four components. kUnsupported for any other kind of JPEG, kCorrupt for
// damaged or truncated data, kTooLarge past `limits` (checked before the
// coefficient arrays are allocated).
Status DecodeProgressiveCoefficients(const uint8_t* data, size_t size,
                                     ProgressiveCoefficients* out,
                                     const Limits& limits = Limits());

}  // namespace appliance

#endif  // APPLIANCE_SRC_JPEG_PROGRESSIVE_H_
