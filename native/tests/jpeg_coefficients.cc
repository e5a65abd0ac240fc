// Checks DecodeCoefficients against libjpeg-turbo's
// jpeg_read_coefficients, coefficient for coefficient, on each file given, and
// the planes of DecodeScaled at 1/4, 3/8 and 1/2 scale (chroma at the same
// scale or at 1/4 under the others) against an inverse DCT in double precision of
// libjpeg-turbo's coefficients. Baseline files are checked as well:
//   jpeg_coefficients [--checks-only] FILE...
// Prints "ok N blocks" or the first mismatch per file, and (without
// --checks-only) the decode times, median of 5, for information. Exits non-zero
// on any mismatch or failure.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// jpeglib.h needs FILE and size_t first.
#include <jpeglib.h>

#include "jpeg_scaled.h"

namespace appliance {
namespace {

constexpr int kTimingRuns = 5;

struct ErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jump;
};

void OnError(j_common_ptr cinfo) {
  longjmp(reinterpret_cast<ErrorManager*>(cinfo->err)->jump, 1);
}
void OnMessage(j_common_ptr) {}

// libjpeg's view: per component, its block grid and its coefficients copied
// out of the virtual arrays into the same layout as ours.
struct Reference {
  struct Component {
    int width_in_blocks = 0, height_in_blocks = 0;
    bool has_quant = false;
    uint16_t quant[64] = {};
    std::vector<int16_t> coefficients;  // height_in_blocks x width_in_blocks x 64
  };
  std::vector<Component> components;
};

// RAII for a decompressor; the error manager must outlive it.
class Decompressor {
 public:
  explicit Decompressor(ErrorManager* err) {
    cinfo_.err = jpeg_std_error(&err->pub);
    err->pub.error_exit = OnError;
    err->pub.output_message = OnMessage;
    jpeg_create_decompress(&cinfo_);
  }
  ~Decompressor() { jpeg_destroy_decompress(&cinfo_); }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
  jpeg_decompress_struct* get() { return &cinfo_; }

 private:
  jpeg_decompress_struct cinfo_{};
};

// Decodes with libjpeg; `copy` false measures the decode alone.
bool DecodeReference(const std::vector<uint8_t>& file, bool copy, Reference* ref) {
  ErrorManager err;
  Decompressor d(&err);
  jpeg_decompress_struct* cinfo = d.get();
  if (setjmp(err.jump)) return false;
  jpeg_mem_src(cinfo, file.data(), static_cast<unsigned long>(file.size()));
  jpeg_read_header(cinfo, TRUE);
  jvirt_barray_ptr* arrays = jpeg_read_coefficients(cinfo);
  if (!copy) return true;
  ref->components.assign(static_cast<size_t>(cinfo->num_components), Reference::Component());
  for (int c = 0; c < cinfo->num_components; ++c) {
    const jpeg_component_info& info = cinfo->comp_info[c];
    Reference::Component& rc = ref->components[c];
    rc.width_in_blocks = static_cast<int>(info.width_in_blocks);
    rc.height_in_blocks = static_cast<int>(info.height_in_blocks);
    if (info.quant_table != nullptr) {
      rc.has_quant = true;
      for (int k = 0; k < 64; ++k) rc.quant[k] = info.quant_table->quantval[k];
    }
    rc.coefficients.resize(static_cast<size_t>(rc.width_in_blocks) * rc.height_in_blocks * 64);
    for (int by = 0; by < rc.height_in_blocks; ++by) {
      JBLOCKARRAY row = (*cinfo->mem->access_virt_barray)(
          reinterpret_cast<j_common_ptr>(cinfo), arrays[c], static_cast<JDIMENSION>(by), 1, FALSE);
      for (int bx = 0; bx < rc.width_in_blocks; ++bx) {
        std::memcpy(&rc.coefficients[(static_cast<size_t>(by) * rc.width_in_blocks + bx) * 64],
                    row[0][bx], 64 * sizeof(int16_t));
      }
    }
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

double MedianMs(std::vector<double> times) {
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

template <typename F>
double TimeMs(F&& f) {
  std::vector<double> times;
  for (int i = 0; i < kTimingRuns; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    times.push_back(std::chrono::duration<double, std::milli>(elapsed).count());
  }
  return MedianMs(times);
}

// Returns true when every coefficient (and block grid and quantiser) matches.
bool Compare(const char* path, const JpegCoefficients& ours, const Reference& ref,
             long long* blocks) {
  if (ours.components.size() != ref.components.size()) {
    std::printf("%s: MISMATCH component count ours %zu theirs %zu\n", path,
                ours.components.size(), ref.components.size());
    return false;
  }
  *blocks = 0;
  for (size_t c = 0; c < ours.components.size(); ++c) {
    const ComponentCoefficients& oc = ours.components[c];
    const Reference::Component& rc = ref.components[c];
    if (oc.width_in_blocks != rc.width_in_blocks || oc.height_in_blocks != rc.height_in_blocks) {
      std::printf("%s: MISMATCH component %zu grid ours %dx%d theirs %dx%d\n", path, c,
                  oc.width_in_blocks, oc.height_in_blocks, rc.width_in_blocks,
                  rc.height_in_blocks);
      return false;
    }
    if (rc.has_quant != oc.quant_latched ||
        (rc.has_quant && std::memcmp(rc.quant, oc.quant.data(), sizeof(rc.quant)) != 0)) {
      std::printf("%s: MISMATCH component %zu quantiser\n", path, c);
      return false;
    }
    for (int by = 0; by < rc.height_in_blocks; ++by) {
      for (int bx = 0; bx < rc.width_in_blocks; ++bx) {
        const int16_t* a = oc.Block(bx, by);
        const int16_t* b =
            &rc.coefficients[(static_cast<size_t>(by) * rc.width_in_blocks + bx) * 64];
        for (int k = 0; k < 64; ++k) {
          if (a[k] != b[k]) {
            std::printf(
                "%s: MISMATCH component %zu block (%d,%d) coefficient %d ours %d theirs %d\n",
                path, c, bx, by, k, a[k], b[k]);
            return false;
          }
        }
      }
    }
    *blocks += static_cast<long long>(rc.width_in_blocks) * rc.height_in_blocks;
  }
  return true;
}

// Returns true when each block's kept corner holds the same coefficients as
// the whole block decoded alongside.
bool CompareCorner(const char* path, const JpegCoefficients& corner,
                   const JpegCoefficients& whole) {
  for (size_t c = 0; c < whole.components.size(); ++c) {
    const ComponentCoefficients& cc = corner.components[c];
    const ComponentCoefficients& wc = whole.components[c];
    for (int by = 0; by < wc.height_in_blocks; ++by) {
      for (int bx = 0; bx < wc.width_in_blocks; ++bx) {
        if (cc.nonzero[cc.Index(bx, by)] != wc.nonzero[wc.Index(bx, by)]) {
          std::printf("%s: MISMATCH component %zu block (%d,%d) nonzero mask\n", path, c, bx, by);
          return false;
        }
        for (int k = 0; k < cc.side * cc.side; ++k) {
          const int natural = (k / cc.side) * 8 + k % cc.side;
          if (cc.Block(bx, by)[k] != wc.Block(bx, by)[natural]) {
            std::printf("%s: MISMATCH component %zu block (%d,%d) corner coefficient %d\n", path,
                        c, bx, by, natural);
            return false;
          }
        }
      }
    }
  }
  return true;
}

// The pixel of the n-point inverse DCT (jpeg_scaled.h) at (x, y) of a
// block, from libjpeg's coefficients and quantiser, in double precision.
int ReferencePixel(const int16_t* coef, const uint16_t* quant, int n, int x, int y) {
  auto a = [n](int pos, int freq) {
    const double c = freq == 0 ? std::sqrt(0.5) : 1.0;
    return c / 2 * std::cos((2 * pos + 1) * freq * M_PI / (2 * n));
  };
  double sum = 128;
  for (int v = 0; v < n; ++v) {
    for (int u = 0; u < n; ++u) sum += a(x, u) * a(y, v) * coef[v * 8 + u] * quant[v * 8 + u];
  }
  return std::clamp(static_cast<int>(std::floor(sum + 0.5)), 0, 255);
}

// Returns true when every pixel of the scaled decode is within 1 of the
// reference (float against double rounding), on planes of the expected size.
bool CompareScaled(const char* path, const std::vector<uint8_t>& file, const Reference& ref,
                   const JpegCoefficients& frame, int luma_n, int chroma_n) {
  if (ref.components.size() != 1 && ref.components.size() != 3) return true;  // not ours
  Image image;
  if (!DecodeScaled(file.data(), file.size(), luma_n, chroma_n, Limits(), &image)) {
    std::printf("%s: FAIL the %d/8 decode declined\n", path, luma_n);
    return false;
  }
  for (size_t c = 0; c < ref.components.size(); ++c) {
    const int n = c == 0 ? luma_n : chroma_n;
    const Reference::Component& rc = ref.components[c];
    const ComponentCoefficients& fc = frame.components[c];
    const Plane& plane = image.planes[c];
    const long long w = (static_cast<long long>(frame.width) * fc.h_samp * n +
                         8LL * frame.max_h_samp - 1) / (8LL * frame.max_h_samp);
    const long long h = (static_cast<long long>(frame.height) * fc.v_samp * n +
                         8LL * frame.max_v_samp - 1) / (8LL * frame.max_v_samp);
    if (plane.width() != w || plane.height() != h) {
      std::printf("%s: MISMATCH %d/8 plane %zu is %dx%d, not %lldx%lld\n", path, n, c,
                  plane.width(), plane.height(), w, h);
      return false;
    }
    for (int y = 0; y < plane.height(); ++y) {
      for (int x = 0; x < plane.width(); ++x) {
        const int16_t* block =
            &rc.coefficients[(static_cast<size_t>(y / n) * rc.width_in_blocks + x / n) * 64];
        const int expected = ReferencePixel(block, rc.quant, n, x % n, y % n);
        const int got = plane.row(y)[x];
        if (std::abs(got - expected) > 1) {
          std::printf("%s: MISMATCH %d/8 plane %zu pixel (%d,%d) ours %d reference %d\n", path,
                      n, c, x, y, got, expected);
          return false;
        }
      }
    }
  }
  return true;
}

int Run(int argc, char** argv) {
  // --checks-only: no timings (under a sanitizer they take long and mean nothing).
  const bool timed = !(argc > 1 && std::strcmp(argv[1], "--checks-only") == 0);
  const int first = timed ? 1 : 2;
  if (argc <= first) {
    std::fprintf(stderr, "usage: %s [--checks-only] FILE.jpg...\n", argv[0]);
    return 2;
  }
  int failures = 0;
  for (int i = first; i < argc; ++i) {
    const char* path = argv[i];
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::printf("%s: FAIL cannot read\n", path);
      ++failures;
      continue;
    }
    JpegCoefficients ours;
    const Status status = DecodeCoefficients(file.data(), file.size(), &ours);
    Reference ref;
    const bool ref_ok = DecodeReference(file, true, &ref);
    if (!status.ok() || !ref_ok) {
      std::printf("%s: FAIL ours: %s, libjpeg: %s\n", path,
                  status.ok() ? "ok" : status.message().c_str(), ref_ok ? "ok" : "error");
      ++failures;
      continue;
    }
    long long blocks = 0;
    if (!Compare(path, ours, ref, &blocks)) {
      ++failures;
      continue;
    }
    const double ours_ms = !timed ? 0 : TimeMs([&] {
      JpegCoefficients scratch;
      (void)DecodeCoefficients(file.data(), file.size(), &scratch);
    });
    if (!CompareScaled(path, file, ref, ours, 4, 4) || !CompareScaled(path, file, ref, ours, 3, 3) ||
        !CompareScaled(path, file, ref, ours, 2, 2) || !CompareScaled(path, file, ref, ours, 4, 2) ||
        !CompareScaled(path, file, ref, ours, 3, 2)) {
      ++failures;
      continue;
    }
    // The 4x4 corner a 1/2-scale decode keeps must be those same coefficients.
    JpegCoefficients corner;
    if (!DecodeCoefficients(file.data(), file.size(), &corner, Limits(), 4).ok() ||
        !CompareCorner(path, corner, ours)) {
      ++failures;
      continue;
    }
    if (!timed) {
      std::printf("%s: ok %lld blocks\n", path, blocks);
      continue;
    }
    const double corner_ms = TimeMs([&] {
      JpegCoefficients scratch;
      (void)DecodeCoefficients(file.data(), file.size(), &scratch, Limits(), 4);
    });
    const double theirs_ms = TimeMs([&] { (void)DecodeReference(file, false, nullptr); });
    std::printf(
        "%s: ok %lld blocks; ours %.2f ms (4x4 corner %.2f ms), libjpeg-turbo %.2f ms, "
        "ratio %.2f\n",
        path, blocks, ours_ms, corner_ms, theirs_ms, ours_ms / theirs_ms);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace appliance

int main(int argc, char** argv) { return appliance::Run(argc, argv); }
