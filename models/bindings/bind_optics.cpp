// Optics, scan geometry and experiment presets.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "numpy_convert.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/presets.hpp"

namespace py = pybind11;
using namespace ptypilot;
using ptypilot::bindings::positions_to_numpy;

void bind_optics(py::module_& m) {
  py::class_<ProbeConfig>(m, "ProbeConfig")
      .def(py::init([](double energy_keV, double semiangle_mrad, int window_px,
                       double detector_pixel_mrad, double defocus_A, double Cs_mm,
                       double aperture_edge_mrad, int detector_px) {
             ProbeConfig c;
             c.detector_px = detector_px;
             c.energy_keV = energy_keV;
             c.semiangle_mrad = semiangle_mrad;
             c.window_px = window_px;
             c.detector_pixel_mrad = detector_pixel_mrad;
             c.defocus_A = defocus_A;
             c.Cs_mm = Cs_mm;
             c.aperture_edge_mrad = aperture_edge_mrad;
             return c;
           }),
           py::arg("energy_keV") = 60.0, py::arg("semiangle_mrad") = 33.0,
           py::arg("window_px") = 64, py::arg("detector_pixel_mrad") = 4.937,
           py::arg("defocus_A") = 0.0, py::arg("Cs_mm") = 0.0,
           py::arg("aperture_edge_mrad") = -1.0, py::arg("detector_px") = 0)
      .def_readwrite("energy_keV", &ProbeConfig::energy_keV)
      .def_readwrite("semiangle_mrad", &ProbeConfig::semiangle_mrad)
      .def_readwrite("window_px", &ProbeConfig::window_px)
      .def_readwrite("detector_pixel_mrad", &ProbeConfig::detector_pixel_mrad)
      // 0: window_px; detector_side is the frames' size either way.
      .def_readwrite("detector_px", &ProbeConfig::detector_px)
      .def_property_readonly("detector_side", &ProbeConfig::detector_side_px)
      .def_readwrite("defocus_A", &ProbeConfig::defocus_A)
      .def_readwrite("Cs_mm", &ProbeConfig::Cs_mm)
      .def_readwrite("aperture_edge_mrad", &ProbeConfig::aperture_edge_mrad)
      // The disk's centre from the zero frequency (px): frame_geometry.hpp's sub-pixel offset.
      .def_readwrite("tilt_y_px", &ProbeConfig::tilt_y_px)
      .def_readwrite("tilt_x_px", &ProbeConfig::tilt_x_px)
      .def_property_readonly("pixel_A", [](const ProbeConfig& c) { return real_space_pixel_A(c); });

  py::class_<ObjectGrid>(m, "ObjectGrid")
      .def(py::init([](int rows, int cols, double pixel_A, double origin_y_A, double origin_x_A,
                       double fov_height_A, double fov_width_A) {
             ObjectGrid g;
             g.rows = rows;
             g.cols = cols;
             g.pixel_A = pixel_A;
             g.fov_origin_A = {origin_y_A, origin_x_A};
             g.fov_height_A = fov_height_A;
             g.fov_width_A = fov_width_A;
             return g;
           }),
           py::arg("rows"), py::arg("cols"), py::arg("pixel_A"), py::arg("origin_y_A"),
           py::arg("origin_x_A"), py::arg("fov_height_A"), py::arg("fov_width_A"))
      .def_readonly("rows", &ObjectGrid::rows)
      .def_readonly("cols", &ObjectGrid::cols)
      .def_readonly("pixel_A", &ObjectGrid::pixel_A)
      .def_readonly("fov_height_A", &ObjectGrid::fov_height_A)
      .def_readonly("fov_width_A", &ObjectGrid::fov_width_A)
      .def_property_readonly("fov_origin_A", [](const ObjectGrid& g) {
        return py::make_tuple(g.fov_origin_A.y, g.fov_origin_A.x);
      });

  m.def("object_grid_for_fov", &object_grid_for_fov, py::arg("fov_height_A"),
        py::arg("fov_width_A"), py::arg("pixel_A"), py::arg("window_px"), py::arg("margin_px") = 2);
  m.def("wavelength_A", &wavelength_A, py::arg("energy_keV"),
        "Relativistic electron wavelength in Angstrom.");
  m.def("interaction_constant_rad_per_VA", &interaction_constant_rad_per_VA, py::arg("energy_keV"));
  m.def("aperture", &aperture, py::arg("alpha_mrad"), py::arg("probe"));
  m.def("make_probe", [](const ProbeConfig& c) { return bindings::to_numpy(make_probe(c)); },
        py::arg("probe"), "Real-space probe, centred at (N/2, N/2), sum |psi|^2 = 1.");
  m.def("make_probe_fourier",
        [](const ProbeConfig& c) { return bindings::to_numpy(make_probe_fourier(c)); },
        py::arg("probe"), "Probe in reciprocal space, unshifted FFT layout.");
  m.def("raster_positions",
        [](int rows, int cols, double step_A) {
          return positions_to_numpy(raster_positions(rows, cols, step_A));
        },
        py::arg("rows"), py::arg("cols"), py::arg("step_A"),
        "(rows*cols, 2) array of (y_A, x_A), row by row.");
  m.def("sparse_grid_positions",
        [](int count, int rows, int cols, double step_A) {
          return positions_to_numpy(sparse_grid_positions(count, rows, cols, step_A));
        },
        py::arg("count"), py::arg("rows"), py::arg("cols"), py::arg("step_A"));

  py::class_<sim::ExperimentPreset>(m, "ExperimentPreset")
      .def_readonly("name", &sim::ExperimentPreset::name)
      .def_readonly("description", &sim::ExperimentPreset::description)
      .def_readonly("probe", &sim::ExperimentPreset::probe)
      .def_readonly("scan_rows", &sim::ExperimentPreset::scan_rows)
      .def_readonly("scan_cols", &sim::ExperimentPreset::scan_cols)
      .def_readonly("step_A", &sim::ExperimentPreset::step_A)
      .def_property_readonly("specimen",
                             [](const sim::ExperimentPreset& p) { return sim::to_string(p.specimen); })
      .def("object_grid", &sim::ExperimentPreset::object_grid);
  m.def("experiment_preset", &sim::experiment_preset, py::arg("name"),
        py::return_value_policy::copy);
  m.def("experiment_preset_names", &sim::experiment_preset_names);
}
