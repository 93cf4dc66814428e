// The daemon's Safety (daemon/core/include/ptypilot/core/safety.hpp) and safety_config_for, the
// one place that derives its settings from the raster, so that training runs exactly the rules
// a session runs: the same class, not a copy of it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "numpy_convert.hpp"
#include "ptypilot/core/safety.hpp"

namespace py = pybind11;
using namespace ptypilot;
using ptypilot::bindings::DoubleArray;
using ptypilot::bindings::positions_from_numpy;
using ptypilot::bindings::positions_to_numpy;

void bind_safety(py::module_& m) {
  py::class_<ScanRaster>(m, "ScanRaster", "rows x cols positions, step_A apart.")
      .def(py::init([](int rows, int cols, double step_A) { return ScanRaster{rows, cols, step_A}; }),
           py::arg("rows"), py::arg("cols"), py::arg("step_A"))
      .def_readonly("rows", &ScanRaster::rows)
      .def_readonly("cols", &ScanRaster::cols)
      .def_readonly("step_A", &ScanRaster::step_A)
      .def_property_readonly("height_A", &ScanRaster::height_A)
      .def_property_readonly("width_A", &ScanRaster::width_A);

  py::class_<SafetyConfig>(m, "SafetyConfig")
      .def(py::init([](double fov_height_A, double fov_width_A, double min_distance_A,
                       int position_budget, double snap_step_A) {
             return SafetyConfig{fov_height_A, fov_width_A, min_distance_A, position_budget,
                                 snap_step_A};
           }),
           py::arg("fov_height_A") = 0.0, py::arg("fov_width_A") = 0.0,
           py::arg("min_distance_A") = 0.0, py::arg("position_budget") = 0,
           py::arg("snap_step_A") = 0.0)
      .def_readwrite("fov_height_A", &SafetyConfig::fov_height_A)
      .def_readwrite("fov_width_A", &SafetyConfig::fov_width_A)
      .def_readwrite("min_distance_A", &SafetyConfig::min_distance_A)
      .def_readwrite("position_budget", &SafetyConfig::position_budget)
      .def_readwrite("snap_step_A", &SafetyConfig::snap_step_A);

  m.def("safety_config_for", &safety_config_for, py::arg("raster"), py::arg("position_budget"),
        "The usual configuration, the daemon's default: the raster's FOV, snapping to the "
        "raster, dedupe at half a step.");

  py::class_<SafetyReport>(m, "SafetyReport")
      .def_readonly("requested", &SafetyReport::requested)
      .def_readonly("approved", &SafetyReport::approved)
      .def_readonly("non_finite", &SafetyReport::non_finite)
      .def_readonly("clamped", &SafetyReport::clamped)
      .def_readonly("snapped", &SafetyReport::snapped)
      .def_readonly("deduplicated", &SafetyReport::deduplicated)
      .def_readonly("over_budget", &SafetyReport::over_budget);

  py::enum_<SafetyVerdict>(m, "SafetyVerdict", "What Safety.check did with one proposal.")
      .value("approved", SafetyVerdict::kApproved)
      .value("non_finite", SafetyVerdict::kNonFinite)
      .value("deduplicated", SafetyVerdict::kDeduplicated)
      .value("over_budget", SafetyVerdict::kOverBudget);

  py::class_<Safety>(m, "Safety",
                     "The gate every scan position passes: the daemon's class (safety.hpp says "
                     "its rules). Positions in Angstrom from the FOV origin, (y, x).")
      .def(py::init<SafetyConfig>(), py::arg("config"))
      .def(
          "check",
          [](Safety& s, const DoubleArray& proposed) {
            const std::vector<Vec2> in = positions_from_numpy(proposed);
            SafetyReport report;
            std::vector<SafetyOutcome> outcomes;
            const std::vector<Vec2> approved = s.check(in, &report, &outcomes);
            std::vector<Vec2> placed;
            py::array_t<std::int8_t> verdict(static_cast<py::ssize_t>(outcomes.size()));
            auto v = verdict.mutable_unchecked<1>();
            for (std::size_t i = 0; i < outcomes.size(); ++i) {
              placed.push_back(outcomes[i].placed);
              v(static_cast<py::ssize_t>(i)) = static_cast<std::int8_t>(outcomes[i].verdict);
            }
            return py::make_tuple(positions_to_numpy(approved), positions_to_numpy(placed),
                                  verdict, report);
          },
          py::arg("proposed"),
          "Applies the rules to (n, 2) proposals, as the daemon does to a policy's proposal. "
          "Returns (approved (m, 2), placed (n, 2), verdict (n,) int8, SafetyReport): placed[i] "
          "is proposal i after the clamp and snap, verdict[i] its SafetyVerdict value.")
      .def(
          "place",
          [](const Safety& s, const DoubleArray& positions) {
            std::vector<Vec2> out = positions_from_numpy(positions);
            for (Vec2& p : out) p = s.place(p);
            return positions_to_numpy(out);
          },
          py::arg("positions"),
          "(n, 2) positions clamped into the FOV and snapped (the rules that move a position, "
          "not those that drop it); changes nothing.")
      .def_property_readonly("visited", [](const Safety& s) { return positions_to_numpy(s.visited()); },
                             "(m, 2) every approved position, in order")
      .def_property_readonly("remaining", &Safety::remaining)
      .def_property_readonly("config", &Safety::config);
}
