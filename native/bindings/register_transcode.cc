// transcode(), probe(), decode_floor(): copy arguments into plain structs, release
// the GIL for the whole native call, and turn a failed Status into NativeError.
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>

#include <jpeglib.h>

#include "appliance/transcode.h"
#include "register.h"

namespace py = pybind11;

#define APPLIANCE_STR2(x) #x
#define APPLIANCE_STR(x) APPLIANCE_STR2(x)

namespace appliance::bindings {
namespace {

const char* CodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kCorrupt: return "corrupt";
    case StatusCode::kTooLarge: return "too_large";
    default: return "internal";
  }
}

const char* SubsamplingName(Subsampling s) {
  switch (s) {
    case Subsampling::k444: return "444";
    case Subsampling::k422: return "422";
    case Subsampling::k420: return "420";
    case Subsampling::k440: return "440";
    case Subsampling::k411: return "411";
    case Subsampling::kGray: return "gray";
    case Subsampling::kCmyk: return "cmyk";
    case Subsampling::kOther: return "other";
    default: return "";
  }
}

// A read-only view of any bytes-like object; kept alive by the caller's frame.
struct Input {
  explicit Input(const py::buffer& buffer) : info(buffer.request()) {
    if (info.ndim != 1 && info.size != 0) throw py::value_error("data must be contiguous bytes");
  }
  const uint8_t* data() const { return static_cast<const uint8_t*>(info.ptr); }
  size_t size() const { return static_cast<size_t>(info.size * info.itemsize); }
  py::buffer_info info;
};

}  // namespace

void RegisterTranscode(py::module_& m) {
  // NativeError(code, message): appliance.native maps the code to its error kinds.
  static PyObject* native_error =
      PyErr_NewException("appliance._native.NativeError", PyExc_Exception, nullptr);
  m.add_object("NativeError", py::handle(native_error));
  auto raise = [](const Status& status) {
    PyErr_SetObject(native_error,
                    py::make_tuple(CodeName(status.code()), status.message()).ptr());
    throw py::error_already_set();
  };

  m.def(
      "transcode",
      [raise](const py::buffer& data, const TranscodeOptions& options) {
        Input input(data);
        TranscodeOptions copy = options;
        TranscodeResult result;
        Status status;
        {
          py::gil_scoped_release release;
          status = Transcode(input.data(), input.size(), copy, &result);
        }
        if (!status.ok()) raise(status);
        py::bytes out(reinterpret_cast<const char*>(result.data.data()), result.data.size());
        return py::make_tuple(out, FormatName(result.format), result.width, result.height,
                              py::make_tuple(result.timings.decode, result.timings.resize,
                                             result.timings.encode));
      },
      py::arg("data"), py::arg("options"),
      "Transcodes one image; returns (bytes, format, width, height, (decode, resize, encode)).");

  m.def(
      "probe",
      [raise](const py::buffer& data) {
        Input input(data);
        ImageInfo info;
        Status status;
        {
          py::gil_scoped_release release;
          status = Probe(input.data(), input.size(), &info);
        }
        if (!status.ok()) raise(status);
        py::dict d;
        d["format"] = FormatName(info.format);
        d["width"] = info.width;
        d["height"] = info.height;
        d["orientation"] = info.orientation;
        d["has_alpha"] = info.has_alpha;
        d["has_icc"] = info.has_icc;
        d["progressive"] = info.progressive;
        d["subsampling"] = SubsamplingName(info.subsampling);
        return d;
      },
      py::arg("data"), "Reads an image's header: format, size, orientation, layout.");

  m.def(
      "decode_floor",
      [raise](const py::buffer& data, int width, int height) {
        Input input(data);
        Image image;
        Status status;
        {
          py::gil_scoped_release release;
          status = DecodeJpegPlanes(input.data(), input.size(), width, height, false, &image);
        }
        if (!status.ok()) raise(status);
        return py::make_tuple(image.width, image.height);
      },
      py::arg("data"), py::arg("width"), py::arg("height"),
      "Decodes a JPEG to planes at the DCT scale transcode would use, and nothing else.");

  m.def(
      "decode_planes",
      [raise](const py::buffer& data, int width, int height, bool shortcuts, bool half_chroma) {
        Input input(data);
        Image image;
        Status status;
        {
          py::gil_scoped_release release;
          status = DecodeJpegPlanes(input.data(), input.size(), width, height, shortcuts, &image,
                                    half_chroma);
        }
        if (!status.ok()) raise(status);
        py::list planes;
        for (int i = 0; i < image.plane_count(); ++i) {
          const Plane& p = image.planes[i];
          std::string pixels(static_cast<size_t>(p.width()) * p.height(), '\0');
          for (int y = 0; y < p.height(); ++y) {
            std::memcpy(&pixels[static_cast<size_t>(y) * p.width()], p.row(y),
                        static_cast<size_t>(p.width()));
          }
          planes.append(py::make_tuple(p.width(), p.height(), py::bytes(pixels)));
        }
        return planes;
      },
      py::arg("data"), py::arg("width"), py::arg("height"), py::arg("shortcuts"),
      py::arg("half_chroma") = false, "The decoded planes as [(width, height, bytes)], for tests.");

  m.attr("libjpeg_turbo_version") = APPLIANCE_STR(LIBJPEG_TURBO_VERSION);
}

}  // namespace appliance::bindings
