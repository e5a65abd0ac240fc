#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "appliance/options.h"
#include "register.h"

namespace py = pybind11;

namespace appliance::bindings {

void RegisterOptions(py::module_& m) {
  py::enum_<Format>(m, "Format")
      .value("SAME", Format::kSame)
      .value("JPEG", Format::kJpeg)
      .value("PNG", Format::kPng)
      .value("WEBP", Format::kWebp)
      .value("AVIF", Format::kAvif)
      .value("GIF", Format::kGif);
  py::enum_<Fit>(m, "Fit")
      .value("INSIDE", Fit::kInside)
      .value("COVER", Fit::kCover)
      .value("PAD", Fit::kPad)
      .value("STRETCH", Fit::kStretch);
  py::enum_<Gravity>(m, "Gravity")
      .value("CENTER", Gravity::kCenter)
      .value("TOP", Gravity::kTop)
      .value("BOTTOM", Gravity::kBottom)
      .value("LEFT", Gravity::kLeft)
      .value("RIGHT", Gravity::kRight);
  py::enum_<IccMode>(m, "IccMode")
      .value("KEEP", IccMode::kKeep)
      .value("SRGB", IccMode::kSrgb)
      .value("STRIP", IccMode::kStrip);
  py::enum_<Chroma>(m, "Chroma")
      .value("AUTO", Chroma::kAuto)
      .value("C420", Chroma::k420)
      .value("C444", Chroma::k444);

  // Plain values; appliance.native validates them before they get here.
  py::class_<TranscodeOptions>(m, "TranscodeOptions")
      .def(py::init<>())
      .def_readwrite("width", &TranscodeOptions::width)
      .def_readwrite("height", &TranscodeOptions::height)
      .def_readwrite("fit", &TranscodeOptions::fit)
      .def_readwrite("gravity", &TranscodeOptions::gravity)
      .def_property(
          "rect",
          [](const TranscodeOptions& o) {
            return py::make_tuple(o.rect.x, o.rect.y, o.rect.width, o.rect.height);
          },
          [](TranscodeOptions& o, std::tuple<int, int, int, int> r) {
            o.rect = Rect{std::get<0>(r), std::get<1>(r), std::get<2>(r), std::get<3>(r)};
          })
      .def_readwrite("upscale", &TranscodeOptions::upscale)
      .def_readwrite("autorotate", &TranscodeOptions::autorotate)
      .def_readwrite("format", &TranscodeOptions::format)
      .def_readwrite("quality", &TranscodeOptions::quality)
      .def_readwrite("progressive", &TranscodeOptions::progressive)
      .def_readwrite("optimize", &TranscodeOptions::optimize)
      .def_readwrite("chroma", &TranscodeOptions::chroma)
      .def_readwrite("lossless", &TranscodeOptions::lossless)
      .def_readwrite("effort", &TranscodeOptions::effort)
      .def_readwrite("icc", &TranscodeOptions::icc)
      .def_property(
          "background",
          [](const TranscodeOptions& o) {
            return py::make_tuple(o.background[0], o.background[1], o.background[2],
                                  o.background[3]);
          },
          [](TranscodeOptions& o, std::tuple<uint8_t, uint8_t, uint8_t, uint8_t> c) {
            o.background[0] = std::get<0>(c);
            o.background[1] = std::get<1>(c);
            o.background[2] = std::get<2>(c);
            o.background[3] = std::get<3>(c);
          })
      .def_property(
          "max_source_pixels", [](const TranscodeOptions& o) { return o.limits.max_source_pixels; },
          [](TranscodeOptions& o, uint64_t v) { o.limits.max_source_pixels = v; })
      .def_property(
          "max_output_pixels", [](const TranscodeOptions& o) { return o.limits.max_output_pixels; },
          [](TranscodeOptions& o, uint64_t v) { o.limits.max_output_pixels = v; });
}

}  // namespace appliance::bindings
