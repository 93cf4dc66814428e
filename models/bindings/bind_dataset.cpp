// Recorded data sets (sim_detector/recorded/include/ptypilot/recorded/recorded_dataset.hpp): the
// readers of `ptypilot replay`, so that Python (`ptypilot eval --dataset-dir`, the tests) reads
// every format through the same code as the replayed frames.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "numpy_convert.hpp"
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

}  // namespace

void bind_dataset(py::module_& m) {
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
           "The frames at `indices` as an (n, rows, cols) float32 array.")
      .def(
          "session_config_json",
          [](const RecordedDataset& d) { return session_config_fragment(d.info()).dump(); },
          "The session config fragment (probe, raster, detector dtype) as JSON text, as "
          "`ptypilot replay --print-config` prints it.");
}
