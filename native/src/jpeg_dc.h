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

#include <cstddef>
#include <cstdint>

#include "appliance/image.h"

namespace appliance {

// Decodes a progressive, Huffman-coded, 8-bit JPEG with one (gray) or three
// (Y/Cb/Cr) components at 1/8 scale into `image`. Returns false, leaving the
// work to libjpeg, for anything else or for damaged data.
bool DecodeProgressiveDc(const uint8_t* data, size_t size, Image* image);

}  // namespace appliance

#endif  // APPLIANCE_SRC_JPEG_DC_H_
