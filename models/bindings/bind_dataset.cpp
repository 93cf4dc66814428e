// Recorded data sets (sim_detector/recorded/include/ptypilot/recorded/recorded_dataset.hpp): the
// readers of `ptypilot replay`, so that Python (`ptypilot eval --dataset-dir`, the tests) reads
// every format through the same code as the replayed frames.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "numpy_convert.hpp"
#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/recorded/recorded_dataset.hpp"

namespace py = pybind11;
using namespace ptypilot;
using ptypilot::bindings::positions_to_numpy;

namespace {

py::array_t<float> read_frames(RecordedDataset& d, const std::vector<std::size_t>& indices) {
  const RecordedDatasetInfo& info = d.info();
  py::array_t<float> out({static_cast<py::ssize_t>(indices.size()),
                          static_cast<py::ssize_t>(info.frame_rows),
                          static_cast<py::ssize_t>(info.frame_cols)});
  float* data = out.mutable_data();
  const std::size_t pixels = d.frame_pixels();
  for (std::size_t i = 0; i < indices.size(); ++i) {
    // The GIL stays held: HDF5 here is not thread-safe, and h5py in the same process uses it.
    const Status s = d.read_frame(indices[i], std::span<float>(data + i * pixels, pixels));
    if (!s.ok()) throw std::runtime_error(s.message());
  }
  return out;
}

py::array_t<float> read_reconstructor_frames(RecordedDataset& d,
                                             const std::vector<std::size_t>& indices) {
  const FrameGeometryMap map(d.info().geometry, d.info().frame_rows);
  const auto side = static_cast<py::ssize_t>(map.out_side());
  py::array_t<float> out({static_cast<py::ssize_t>(indices.size()), side, side});
  float* data = out.mutable_data();
  const std::size_t pixels = map.out_pixels();
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const Status s =
        d.read_reconstructor_frame(indices[i], std::span<float>(data + i * pixels, pixels));
    if (!s.ok()) throw std::runtime_error(s.message());
  }
  return out;
}

py::dict geometry_dict(const FrameGeometry& g) {
  return py::dict(
      py::arg("layout") = std::string(to_string(g.layout)),
      py::arg("disk_offset_px") = py::make_tuple(g.disk_offset_y_px, g.disk_offset_x_px),
      py::arg("rotation_deg") = g.rotation_deg, py::arg("flip") = g.flip,
      py::arg("crop_px") = g.crop_px, py::arg("bin") = g.bin);
}

// frames (n, D, D) or (D, D) as the detector sends them -> (the reconstructor's frames in FFT
// layout, the reconstructor's detector_mask or None).
py::tuple apply_frame_geometry(
    py::array_t<float, py::array::c_style | py::array::forcecast> frames, const std::string& layout,
    std::pair<double, double> disk_offset_px, double rotation_deg, bool flip, int crop_px, int bin,
    bool rotation_in_positions, std::optional<py::array_t<float, py::array::c_style | py::array::forcecast>> mask,
    std::optional<py::array_t<float, py::array::c_style | py::array::forcecast>> flat_field) {
  if (frames.ndim() != 2 && frames.ndim() != 3)
    throw std::invalid_argument("frames: expected (n, D, D) or (D, D)");
  const py::ssize_t n = frames.ndim() == 3 ? frames.shape(0) : 1;
  const py::ssize_t rows = frames.shape(frames.ndim() - 2), cols = frames.shape(frames.ndim() - 1);
  if (rows != cols) throw std::invalid_argument("frames: not square");
  FrameGeometry g;
  g.layout = parse_frame_layout(layout);
  g.disk_offset_y_px = disk_offset_px.first;
  g.disk_offset_x_px = disk_offset_px.second;
  g.rotation_deg = rotation_deg;
  g.flip = flip;
  g.rotation_in_positions = rotation_in_positions;
  g.crop_px = crop_px;
  g.bin = bin;
  if (mask) g.mask.assign(mask->data(), mask->data() + mask->size());
  if (flat_field) g.flat_field.assign(flat_field->data(), flat_field->data() + flat_field->size());
  const FrameGeometryMap map(std::move(g), static_cast<int>(rows));
  const auto side = static_cast<py::ssize_t>(map.out_side());
  py::array_t<float> out =
      frames.ndim() == 3 ? py::array_t<float>({n, side, side}) : py::array_t<float>({side, side});
  for (py::ssize_t i = 0; i < n; ++i)
    map.apply(std::span<const float>(frames.data() + i * map.raw_pixels(), map.raw_pixels()),
              std::span<float>(out.mutable_data() + i * map.out_pixels(), map.out_pixels()));
  py::object weights = py::none();
  if (!map.reconstructor_mask().empty()) {
    py::array_t<float> w({side, side});
    std::copy(map.reconstructor_mask().begin(), map.reconstructor_mask().end(), w.mutable_data());
    weights = w;
  }
  return py::make_tuple(out, weights);
}

}  // namespace

void bind_dataset(py::module_& m) {
  m.def("apply_frame_geometry", &apply_frame_geometry, py::arg("frames"),
        py::arg("layout") = "centred", py::arg("disk_offset_px") = std::pair<double, double>{0, 0},
        py::arg("rotation_deg") = 0.0, py::arg("flip") = false, py::arg("crop_px") = 0,
        py::arg("bin") = 1, py::arg("rotation_in_positions") = false, py::arg("mask") = py::none(),
        py::arg("flat_field") = py::none(),
        "The frame geometry (kernels/include/ptypilot/frame_geometry.hpp), as the daemon applies "
        "it at ingest: frames as a detector sends them -> (the reconstructor's frames, FFT "
        "layout; its detector_mask, or None when every weight is 1).");
  m.def(
      "position_rotation_deg",
      [](double rotation_deg) {
        FrameGeometry g;
        g.rotation_deg = rotation_deg;
        g.rotation_in_positions = true;
        return position_rotation_deg(g);
      },
      py::arg("rotation_deg"),
      "The part of detector.geometry.rotation_deg a session turns the positions by (beyond the "
      "nearest quarter turn, which the frames get): frame_geometry.hpp, scan_rotation.hpp.");
  m.def(
      "fftshift_frame",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> a) {
        if (a.ndim() != 2) throw std::invalid_argument("expected a 2-D frame");
        py::array_t<float> out({a.shape(0), a.shape(1)});
        fftshift_image({a.data(), std::size_t(a.size())}, int(a.shape(0)), int(a.shape(1)),
                       {out.mutable_data(), std::size_t(a.size())});
        return out;
      },
      py::arg("frame"), "numpy.fft.fftshift of one frame: FFT layout -> centred.");

  py::class_<RecordedDataset>(m, "RecordedDataset",
                              "A recorded 4D-STEM data set, read lazily, as `ptypilot replay` "
                              "plays it (.npy + sidecar, Merlin .mib, DECTRIS, EMD / py4DSTEM, "
                              "ptypilot recordings).")
      .def(py::init([](const std::string& path) { return open_recorded_dataset(path); }),
           py::arg("path"), "Opens the data set; RuntimeError naming the file if it cannot.")
      .def("__len__", &RecordedDataset::frame_count)
      .def_property_readonly("path",
                             [](const RecordedDataset& d) { return d.info().path.string(); })
      .def_property_readonly("format", [](const RecordedDataset& d) { return d.info().format; })
      .def_property_readonly("frame_shape",
                             [](const RecordedDataset& d) {
                               return py::make_tuple(d.info().frame_rows, d.info().frame_cols);
                             })
      .def_property_readonly(
          "dtype", [](const RecordedDataset& d) { return std::string(to_string(d.info().dtype)); },
          "what the frames go out as on the wire")
      .def_property_readonly("stored_dtype",
                             [](const RecordedDataset& d) { return d.info().stored_dtype; })
      .def_property_readonly("probe", [](const RecordedDataset& d) { return d.info().probe; })
      .def_property_readonly("raster",
                             [](const RecordedDataset& d) {
                               const ScanRaster& r = d.info().raster;
                               return py::dict(py::arg("rows") = r.rows, py::arg("cols") = r.cols,
                                               py::arg("step_A") = r.step_A);
                             })
      .def_property_readonly("rotation_deg",
                             [](const RecordedDataset& d) { return d.info().rotation_deg; })
      .def_property_readonly("dose_e_per_A2",
                             [](const RecordedDataset& d) { return d.info().dose_e_per_A2; })
      .def_property_readonly(
          "true_potential_path",
          [](const RecordedDataset& d) -> std::optional<std::string> {
            if (!d.info().true_potential) return std::nullopt;
            return d.info().true_potential->string();
          },
          "the sidecar's true_potential (a .npy of the true phase), None without one")
      .def_property_readonly("electrons_per_frame",
                             [](const RecordedDataset& d) { return d.info().electrons_per_frame; })
      .def_property_readonly(
          "positions_A",
          [](const RecordedDataset& d) { return positions_to_numpy(d.positions_A()); },
          "(n, 2) [y, x] in Angstrom from the FOV origin: where each frame was recorded")
      .def(
          "frame",
          [](RecordedDataset& d, std::size_t index) {
            py::array_t<float> out({static_cast<py::ssize_t>(d.info().frame_rows),
                                    static_cast<py::ssize_t>(d.info().frame_cols)});
            const Status s =
                d.read_frame(index, std::span<float>(out.mutable_data(), d.frame_pixels()));
            if (!s.ok()) throw std::runtime_error(s.message());
            return out;
          },
          py::arg("index"), "Frame `index` as a (rows, cols) float32 array.")
      .def("frames", &read_frames, py::arg("indices"),
           "The frames at `indices` as an (n, rows, cols) float32 array, as stored.")
      .def("reconstructor_frames", &read_reconstructor_frames, py::arg("indices"),
           "The frames at `indices` as the reconstructor takes them: the data set's frame "
           "geometry applied (FFT layout), as an (n, side, side) float32 array.")
      .def_property_readonly(
          "scan_rotation_deg",
          [](const RecordedDataset& d) { return position_rotation_deg(d.info().geometry); },
          "The rotation reconstructor_frames leaves to the positions (beyond quarter turns, which "
          "the frames get): reconstruct on ScanRotation(scan_rotation_deg, grid, window)'s "
          "detector_grid at to_detector(positions), as a session does.")
      .def_property_readonly(
          "geometry", [](const RecordedDataset& d) { return geometry_dict(d.info().geometry); },
          "the frame geometry: layout (the sidecar's frame_layout; centred when absent), "
          "disk_offset_px, rotation_deg, flip, crop_px, bin")
      .def(
          "session_config_json",
          [](const RecordedDataset& d) { return session_config_fragment(d.info()).dump(); },
          "The session config fragment (probe, raster, detector dtype) as JSON text, as "
          "`ptypilot replay --print-config` prints it.");
}
