// JPEG through libjpeg-turbo's raw-data interface: decode straight into the
// file's Y/Cb/Cr planes at a DCT scale, encode straight from planes.
//
// libjpeg reports fatal errors through error_exit, which must not return; ours
// longjmps back to the guarded call. Every function that calls libjpeg keeps only
// trivially destructible locals between setjmp and the call, and all state that
// must survive a longjmp lives behind pointers (Image, JpegSession).
#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <jpeglib.h>  // NOLINT: needs <cstdio> first
#include <jerror.h>

#include "codecs.h"
#include "jpeg_dc.h"
#include "jpeg_markers.h"
#include "jpeg_scaled.h"

namespace appliance {
namespace {

// libjpeg's own allocations (progressive coefficient buffers) stop here.
constexpr long kMaxLibjpegMemory = 1024L * 1024 * 1024;

struct ErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool corrupt_warning;
};

[[noreturn]] void OnErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  err->pub.format_message(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings that mean the data is damaged make the decode fail: a truncated or
// corrupt photo must not be served as a half-grey image and cached.
void OnEmitMessage(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (level >= 0) return;  // trace messages
  switch (err->pub.msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_MUST_RESYNC:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
      err->corrupt_warning = true;
      OnErrorExit(cinfo);
    default:
      err->pub.num_warnings++;
  }
}

void OnOutputMessage(j_common_ptr) {}

struct ProgressManager {
  jpeg_progress_mgr pub;
  ErrorManager* err;
};

void OnProgress(j_common_ptr cinfo) {
  auto* dinfo = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (dinfo->input_scan_number > kMaxJpegScans) {
    auto* progress = reinterpret_cast<ProgressManager*>(cinfo->progress);
    std::snprintf(progress->err->message, sizeof progress->err->message,
                  "more than %d progressive scans", kMaxJpegScans);
    std::longjmp(progress->err->jump, 1);
  }
}

void InitErrorManager(ErrorManager* err) {
  jpeg_std_error(&err->pub);
  err->pub.error_exit = OnErrorExit;
  err->pub.emit_message = OnEmitMessage;
  err->pub.output_message = OnOutputMessage;
  err->message[0] = '\0';
  err->corrupt_warning = false;
}

Status FailedDecode(const ErrorManager& err) {
  const int code = err.pub.msg_code;
  if (code == JERR_OUT_OF_MEMORY || code == JERR_NO_BACKING_STORE) {
    return TooLarge(std::string("JPEG needs too much memory: ") + err.message);
  }
  if (code == JERR_NOT_COMPILED || code == JERR_ARITH_NOTIMPL ||
      code == JERR_BAD_PRECISION) {
    return Unsupported(std::string("unsupported JPEG: ") + err.message);
  }
  return Corrupt(std::string("corrupt JPEG: ") + err.message);
}

// A decompressor with its error handling; destroyed on every path.
struct JpegSession {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  ProgressManager progress;
  bool created = false;

  JpegSession() { InitErrorManager(&err); }
  ~JpegSession() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
  JpegSession(const JpegSession&) = delete;
  JpegSession& operator=(const JpegSession&) = delete;
};

// Creates the decompressor and reads the header with APP1/APP2 saved. Returns
// false on a libjpeg error (message in session->err).
bool ReadHeader(JpegSession* s, const uint8_t* data, size_t size) {
  if (setjmp(s->err.jump)) return false;
  s->cinfo.err = &s->err.pub;
  jpeg_create_decompress(&s->cinfo);
  s->created = true;
  s->cinfo.mem->max_memory_to_use = kMaxLibjpegMemory;
  s->progress.pub.progress_monitor = OnProgress;
  s->progress.err = &s->err;
  s->cinfo.progress = &s->progress.pub;
  jpeg_mem_src(&s->cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&s->cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_save_markers(&s->cinfo, JPEG_APP0 + 2, 0xFFFF);
  jpeg_read_header(&s->cinfo, TRUE);
  return true;
}

int OrientationOf(const jpeg_decompress_struct& cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != nullptr; m = m->next) {
    if (m->marker == JPEG_APP0 + 1) {
      const int o = ExifOrientation(m->data, m->data_length);
      if (o != 1) return o;
    }
  }
  return 1;
}

bool HasIcc(const jpeg_decompress_struct& cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != nullptr; m = m->next) {
    if (m->marker == JPEG_APP0 + 2 && m->data_length >= 14 &&
        std::memcmp(m->data, "ICC_PROFILE", 12) == 0) {
      return true;
    }
  }
  return false;
}

Subsampling SubsamplingOf(const jpeg_decompress_struct& cinfo) {
  if (cinfo.jpeg_color_space == JCS_GRAYSCALE) return Subsampling::kGray;
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    return Subsampling::kCmyk;
  }
  if (cinfo.num_components != 3) return Subsampling::kOther;
  const jpeg_component_info* c = cinfo.comp_info;
  if (c[1].h_samp_factor != 1 || c[1].v_samp_factor != 1 ||
      c[2].h_samp_factor != 1 || c[2].v_samp_factor != 1) {
    return Subsampling::kOther;
  }
  const int h = c[0].h_samp_factor, v = c[0].v_samp_factor;
  if (h == 1 && v == 1) return Subsampling::k444;
  if (h == 2 && v == 1) return Subsampling::k422;
  if (h == 2 && v == 2) return Subsampling::k420;
  if (h == 1 && v == 2) return Subsampling::k440;
  if (h == 4 && v == 1) return Subsampling::k411;
  return Subsampling::kOther;
}

// Reads the whole image into planes with jpeg_read_raw_data. The planes are
// allocated to whole blocks so libjpeg writes straight into them, then trimmed.
bool ReadRawPlanes(JpegSession* s, Image* image, Status* status) {
  j_decompress_ptr cinfo = &s->cinfo;
  if (setjmp(s->err.jump)) return false;
  jpeg_start_decompress(cinfo);
  const int components = cinfo->num_components;
  for (int ci = 0; ci < components; ++ci) {
    const jpeg_component_info& c = cinfo->comp_info[ci];
    const int block = c.DCT_scaled_size;
    const int rows = static_cast<int>(cinfo->total_iMCU_rows) * c.v_samp_factor * block;
    const int stride = static_cast<int>(c.width_in_blocks) * block;
    image->scale_x[ci] = static_cast<double>(c.h_samp_factor * block) / (cinfo->max_h_samp_factor * DCTSIZE);
    image->scale_y[ci] = static_cast<double>(c.v_samp_factor * block) / (cinfo->max_v_samp_factor * DCTSIZE);
    *status = image->planes[ci].Allocate(static_cast<int>(c.downsampled_width),
                                         static_cast<int>(c.downsampled_height),
                                         stride, rows);
    if (!status->ok()) {
      jpeg_abort_decompress(cinfo);
      return true;
    }
  }
  const int max_rows = cinfo->max_v_samp_factor * cinfo->min_DCT_scaled_size;
  // Row pointers for one iMCU row of each component (at most 4 x 16 rows).
  JSAMPROW rows[3][4 * 16];
  JSAMPARRAY arrays[3] = {rows[0], rows[1], rows[2]};
  while (cinfo->output_scanline < cinfo->output_height) {
    const int imcu_row = static_cast<int>(cinfo->output_scanline) / max_rows;
    for (int ci = 0; ci < components; ++ci) {
      const jpeg_component_info& c = cinfo->comp_info[ci];
      const int n = c.v_samp_factor * c.DCT_scaled_size;
      for (int r = 0; r < n; ++r) rows[ci][r] = image->planes[ci].row(imcu_row * n + r);
    }
    if (jpeg_read_raw_data(cinfo, arrays, static_cast<JDIMENSION>(max_rows)) == 0) {
      *status = Corrupt("corrupt JPEG: no data");
      jpeg_abort_decompress(cinfo);
      return true;
    }
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

// The slow path for CMYK and YCCK (Adobe-inverted or not): libjpeg converts
// YCCK to CMYK, we convert CMYK to RGB planes.
bool ReadCmykToRgb(JpegSession* s, Image* image, Status* status) {
  j_decompress_ptr cinfo = &s->cinfo;
  if (setjmp(s->err.jump)) return false;
  jpeg_start_decompress(cinfo);
  const int w = static_cast<int>(cinfo->output_width);
  const int h = static_cast<int>(cinfo->output_height);
  for (int i = 0; i < 3; ++i) {
    Plane& p = image->planes[i];
    image->scale_x[i] = image->scale_y[i] = static_cast<double>(cinfo->scale_num) / cinfo->scale_denom;
    *status = p.Allocate(w, h);
    if (!status->ok()) {
      jpeg_abort_decompress(cinfo);
      return true;
    }
  }
  // Adobe writes CMYK inverted (0 = full ink) and says so with its APP14 marker;
  // libjpeg reports it as saw_Adobe_marker.
  const bool inverted = cinfo->saw_Adobe_marker;
  JSAMPARRAY line = (*cinfo->mem->alloc_sarray)(
      reinterpret_cast<j_common_ptr>(cinfo), JPOOL_IMAGE, static_cast<JDIMENSION>(w) * 4, 1);
  while (cinfo->output_scanline < cinfo->output_height) {
    const int y = static_cast<int>(cinfo->output_scanline);
    if (jpeg_read_scanlines(cinfo, line, 1) != 1) {
      *status = Corrupt("corrupt JPEG: no data");
      jpeg_abort_decompress(cinfo);
      return true;
    }
    uint8_t* r = image->planes[0].row(y);
    uint8_t* g = image->planes[1].row(y);
    uint8_t* b = image->planes[2].row(y);
    const uint8_t* p = line[0];
    for (int x = 0; x < w; ++x, p += 4) {
      int c = p[0], m = p[1], yy = p[2], k = p[3];
      if (!inverted) {
        c = 255 - c; m = 255 - m; yy = 255 - yy; k = 255 - k;
      }
      // Now 255 = no ink: colour = (1 - C)(1 - K).
      r[x] = static_cast<uint8_t>((c * k + 127) / 255);
      g[x] = static_cast<uint8_t>((m * k + 127) / 255);
      b[x] = static_cast<uint8_t>((yy * k + 127) / 255);
    }
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

bool ReadIcc(JpegSession* s, std::vector<uint8_t>* icc) {
  if (setjmp(s->err.jump)) return false;
  JOCTET* buffer = nullptr;
  unsigned int length = 0;
  if (jpeg_read_icc_profile(&s->cinfo, &buffer, &length) && buffer != nullptr) {
    icc->assign(buffer, buffer + length);
  }
  std::free(buffer);
  return true;
}

int DivRoundUp(long long a, long long b) { return static_cast<int>((a + b - 1) / b); }

// The DCT scale for chroma, at most luma's `n`: the smallest (from 2) at which
// each chroma plane still covers the region at the size the pipeline needs.
int ChromaScale(const jpeg_decompress_struct& cinfo, int n, int region_w, int region_h,
                const DecodeRequest& request) {
  const int need_w = request.chroma_min_width > 0 ? request.chroma_min_width : request.min_width;
  const int need_h = request.chroma_min_height > 0 ? request.chroma_min_height : request.min_height;
  for (int chroma_n = 2; chroma_n < n; ++chroma_n) {
    bool enough = true;
    for (int ci = 1; ci < cinfo.num_components; ++ci) {
      const jpeg_component_info& c = cinfo.comp_info[ci];
      enough = enough &&
               DivRoundUp(static_cast<long long>(region_w) * c.h_samp_factor * chroma_n,
                          8LL * cinfo.max_h_samp_factor) >= need_w &&
               DivRoundUp(static_cast<long long>(region_h) * c.v_samp_factor * chroma_n,
                          8LL * cinfo.max_v_samp_factor) >= need_h;
    }
    if (enough) return chroma_n;
  }
  return n;
}

// Whether width x height at scale n/8 is at least min_width x min_height.
bool ScaleCovers(int width, int height, int n, int min_width, int min_height) {
  // A DCT-scaled pixel averages a whole block, padding included: on an image a
  // few pixels across that padding outweighs the picture. Keep 8 pixels a side.
  min_width = std::max(min_width, std::min(width, 8));
  min_height = std::max(min_height, std::min(height, 8));
  return DivRoundUp(static_cast<long long>(width) * n, 8) >= min_width &&
         DivRoundUp(static_cast<long long>(height) * n, 8) >= min_height;
}

}  // namespace

int ChooseJpegScale(int width, int height, int min_width, int min_height) {
  for (int n : {1, 2, 4}) {
    if (ScaleCovers(width, height, n, min_width, min_height)) return n;
  }
  return 8;
}

Status ProbeJpeg(const uint8_t* data, size_t size, ImageInfo* info) {
  JpegSession s;
  if (!ReadHeader(&s, data, size)) return FailedDecode(s.err);
  info->format = Format::kJpeg;
  info->width = static_cast<int>(s.cinfo.image_width);
  info->height = static_cast<int>(s.cinfo.image_height);
  info->orientation = OrientationOf(s.cinfo);
  info->has_alpha = false;
  info->has_icc = HasIcc(s.cinfo);
  info->progressive = s.cinfo.progressive_mode != 0;
  info->subsampling = SubsamplingOf(s.cinfo);
  return Status::Ok();
}

Status DecodeJpeg(const uint8_t* data, size_t size, const DecodeRequest& request,
                  Image* image, int* scale_num) {
  JpegSession s;
  if (!ReadHeader(&s, data, size)) return FailedDecode(s.err);
  const int width = static_cast<int>(s.cinfo.image_width);
  const int height = static_cast<int>(s.cinfo.image_height);
  APPLIANCE_RETURN_IF_ERROR(CheckSourceSize(s.cinfo.image_width, s.cinfo.image_height,
                                            request.limits));
  if (!ReadIcc(&s, &image->icc)) return FailedDecode(s.err);

  // The region the pipeline uses decides the scale: a crop of a quarter of the
  // image needs more resolution than the whole image would.
  const int region_w = request.region.empty() ? width : request.region.width;
  const int region_h = request.region.empty() ? height : request.region.height;
  int n = 8;
  if (request.min_width > 0 || request.min_height > 0) {
    // The region at scale n/8 must still be at least the size needed.
    n = ChooseJpegScale(region_w, region_h, request.min_width, request.min_height);
  }
  *scale_num = n;

  const J_COLOR_SPACE space = s.cinfo.jpeg_color_space;
  const bool cmyk = space == JCS_CMYK || space == JCS_YCCK;
  if (!cmyk && space != JCS_YCbCr && space != JCS_GRAYSCALE && space != JCS_RGB) {
    return Unsupported("unsupported JPEG colour space");
  }

  // A 1/8 decode of a progressive file needs the DC coefficients only (and for
  // 4:2:0, libjpeg's chroma IDCT reads chroma AC too): read just the DC scans
  // with our own decoder, or else hand libjpeg a copy of the file without the
  // scans it will not use (the luma AC scans, most of the file). Either way the
  // pixels are those of libjpeg's 1/8 decode of the whole file.
  const bool own_progressive = request.shortcuts && s.cinfo.progressive_mode &&
                               !s.cinfo.arith_code && !cmyk && space != JCS_RGB;
  const bool dc_only_decode = own_progressive && n == 1;
  if (dc_only_decode && DecodeProgressiveDc(data, size, image)) return Status::Ok();
  // From 1/4 to 1/2 scale our own decoder keeps only the coefficients those
  // scales read, and decodes chroma no larger than the output needs
  // (jpeg_scaled.h, docs/decisions/0011); anything it declines, damaged
  // data included, goes to libjpeg below.
  const bool own_scaled = request.shortcuts && (n == 2 || n == 4) && !s.cinfo.arith_code &&
                          !cmyk && space != JCS_RGB && s.cinfo.data_precision == 8;
  if (own_scaled) {
    // It also has the 3/8 scale that libjpeg-turbo only has in slow C: less to
    // transform and less to resize where 1/2 is more than needed.
    const int own_n =
        n == 4 && ScaleCovers(region_w, region_h, 3, request.min_width, request.min_height) ? 3
                                                                                             : n;
    if (DecodeScaled(data, size, own_n, ChromaScale(s.cinfo, own_n, region_w, region_h, request),
                     request.limits, image)) {
      *scale_num = own_n;
      return Status::Ok();
    }
  }
  std::vector<uint8_t> dc_only;
  if (dc_only_decode && ExtractDcScans(data, size, /*keep_chroma=*/true, &dc_only)) {
    jpeg_destroy_decompress(&s.cinfo);
    s.created = false;
    if (!ReadHeader(&s, dc_only.data(), dc_only.size())) return FailedDecode(s.err);
  }

  s.cinfo.scale_num = static_cast<unsigned int>(n);
  s.cinfo.scale_denom = 8;
  s.cinfo.dct_method = JDCT_ISLOW;
  s.cinfo.do_block_smoothing = FALSE;
  s.cinfo.do_fancy_upsampling = FALSE;

  Status status;
  if (cmyk) {
    s.cinfo.out_color_space = JCS_CMYK;
    image->model = ColorModel::kRgb;
    // The embedded profile describes CMYK, not the RGB we produce.
    image->icc.clear();
    if (!ReadCmykToRgb(&s, image, &status)) return FailedDecode(s.err);
  } else {
    if (s.cinfo.num_components > 3 || s.cinfo.max_v_samp_factor > 4) {
      return Unsupported("unsupported JPEG sampling");
    }
    s.cinfo.raw_data_out = TRUE;
    s.cinfo.out_color_space = space;
    image->model = space == JCS_GRAYSCALE ? ColorModel::kGray
                   : space == JCS_RGB     ? ColorModel::kRgb
                                          : ColorModel::kYCbCr;
    if (!ReadRawPlanes(&s, image, &status)) return FailedDecode(s.err);
  }
  APPLIANCE_RETURN_IF_ERROR(status);
  image->width = image->planes[0].width();
  image->height = image->planes[0].height();
  return Status::Ok();
}

// ---- Encoder -----------------------------------------------------------------

namespace {

struct CompressSession {
  jpeg_compress_struct cinfo;
  ErrorManager err;
  unsigned char* buffer = nullptr;
  unsigned long buffer_size = 0;
  bool created = false;

  CompressSession() { InitErrorManager(&err); }
  ~CompressSession() {
    if (created) jpeg_destroy_compress(&cinfo);
    std::free(buffer);
  }
  CompressSession(const CompressSession&) = delete;
  CompressSession& operator=(const CompressSession&) = delete;
};

// Copies `rows` rows of `plane` starting at `y0` into `dst` (stride `dst_stride`,
// `dst_width` wide), replicating the last column and row into the padding that
// whole JPEG blocks need.
void CopyPadded(const Plane& plane, int y0, int rows, uint8_t* dst, int dst_stride,
                int dst_width) {
  const int w = plane.width();
  for (int r = 0; r < rows; ++r) {
    const int y = y0 + r < plane.height() ? y0 + r : plane.height() - 1;
    const uint8_t* src = plane.row(y);
    uint8_t* out = dst + static_cast<ptrdiff_t>(r) * dst_stride;
    std::memcpy(out, src, static_cast<size_t>(w));
    if (dst_width > w) std::memset(out + w, src[w - 1], static_cast<size_t>(dst_width - w));
  }
}

bool Compress(CompressSession* s, const Image& image, const EncodeParams& params,
              Plane* scratch, Status* status) {
  j_compress_ptr cinfo = &s->cinfo;
  if (setjmp(s->err.jump)) return false;
  cinfo->err = &s->err.pub;
  jpeg_create_compress(cinfo);
  s->created = true;
  jpeg_mem_dest(cinfo, &s->buffer, &s->buffer_size);

  const bool gray = image.model == ColorModel::kGray;
  cinfo->image_width = static_cast<JDIMENSION>(image.width);
  cinfo->image_height = static_cast<JDIMENSION>(image.height);
  cinfo->input_components = gray ? 1 : 3;
  cinfo->in_color_space = gray ? JCS_GRAYSCALE : JCS_YCbCr;
  jpeg_set_defaults(cinfo);
  jpeg_set_colorspace(cinfo, gray ? JCS_GRAYSCALE : JCS_YCbCr);
  const bool subsampled = !gray && image.planes[1].width() < image.width;
  if (!gray) {
    cinfo->comp_info[0].h_samp_factor = subsampled ? 2 : 1;
    cinfo->comp_info[0].v_samp_factor = subsampled ? 2 : 1;
    for (int ci = 1; ci < 3; ++ci) {
      cinfo->comp_info[ci].h_samp_factor = 1;
      cinfo->comp_info[ci].v_samp_factor = 1;
    }
  }
  jpeg_set_quality(cinfo, params.quality, TRUE);
  cinfo->raw_data_in = TRUE;
  cinfo->dct_method = JDCT_ISLOW;
  cinfo->optimize_coding = params.optimize ? TRUE : FALSE;
  if (params.progressive) jpeg_simple_progression(cinfo);
  jpeg_start_compress(cinfo, TRUE);
  if (params.icc != nullptr && !params.icc->empty()) {
    jpeg_write_icc_profile(cinfo, params.icc->data(),
                           static_cast<unsigned int>(params.icc->size()));
  }

  // One iMCU row at a time through a padded scratch buffer per component.
  const int components = cinfo->num_components;
  const int max_rows = cinfo->max_v_samp_factor * DCTSIZE;
  int widths[3], heights[3];
  for (int ci = 0; ci < components; ++ci) {
    const jpeg_component_info& c = cinfo->comp_info[ci];
    widths[ci] = static_cast<int>(c.width_in_blocks) * DCTSIZE;
    heights[ci] = c.v_samp_factor * DCTSIZE;
  }
  for (int ci = 0; ci < components; ++ci) {
    *status = scratch[ci].Allocate(widths[ci], heights[ci]);
    if (!status->ok()) return true;
  }
  JSAMPROW rows[3][2 * DCTSIZE];
  JSAMPARRAY arrays[3] = {rows[0], rows[1], rows[2]};
  for (int imcu = 0; cinfo->next_scanline < cinfo->image_height; ++imcu) {
    for (int ci = 0; ci < components; ++ci) {
      CopyPadded(image.planes[ci], imcu * heights[ci], heights[ci], scratch[ci].data(),
                 scratch[ci].stride(), widths[ci]);
      for (int r = 0; r < heights[ci]; ++r) rows[ci][r] = scratch[ci].row(r);
    }
    jpeg_write_raw_data(cinfo, arrays, static_cast<JDIMENSION>(max_rows));
  }
  jpeg_finish_compress(cinfo);
  return true;
}

}  // namespace

Status EncodeJpeg(const Image& image, const EncodeParams& params,
                  std::vector<uint8_t>* out) {
  if (image.model == ColorModel::kRgb || image.has_alpha()) {
    return InvalidArgument("JPEG encoder needs opaque Y/Cb/Cr or gray planes");
  }
  if (image.width > JPEG_MAX_DIMENSION || image.height > JPEG_MAX_DIMENSION) {
    return TooLarge("output too large for JPEG");
  }
  CompressSession s;
  Plane scratch[3];
  Status status;
  if (!Compress(&s, image, params, scratch, &status)) {
    return Internal(std::string("JPEG encoder: ") + s.err.message);
  }
  APPLIANCE_RETURN_IF_ERROR(status);
  out->assign(s.buffer, s.buffer + s.buffer_size);
  return Status::Ok();
}

}  // namespace appliance
