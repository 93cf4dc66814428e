// The daemon's built-in policies (make_policy: the fixed patterns, the heuristic, material-density,
// lattice-flank), so that offline studies run the very code a session runs, through the same
// Safety and simulator as the training episodes (ptypilot.data.run_episode). The learned policy
// is not offered here: Python has the model itself, and the LibTorch plugin is the daemon's.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "numpy_convert.hpp"
#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/policy_factory.hpp"

namespace py = pybind11;
using namespace ptypilot;
using ptypilot::bindings::DoubleArray;
using ptypilot::bindings::FloatArray;

void bind_policy(py::module_& m) {
  py::class_<Policy, std::unique_ptr<Policy>>(
      m, "Policy",
      "A built-in policy of the daemon by its config kind (policy.kind), e.g. 'lattice-flank'. "
      "Its state lasts from reset() to the next reset(), like a session's.")
      .def(py::init([](const std::string& kind, const std::string& material_scale) {
             if (kind == "torchscript")
               throw std::invalid_argument(
                   "the learned policy is not offered through ptypilot_core.Policy: load the "
                   "model with torch (ptypilot.policy_model)");
             PolicyConfig config;
             config.kind = kind;
             config.material_scale = material_scale;
             return make_policy(config, PolicyLimits{});
           }),
           py::arg("kind"), py::arg("material_scale") = "brightest",
           "material_scale: policy.material_scale, which material-density reads")
      .def_property_readonly("name", [](const Policy& p) { return std::string(p.name()); })
      .def("reset", &Policy::reset, py::arg("seed"))
      .def(
          "propose",
          [](Policy& policy, const ScanRaster& raster, int sub_sequence, int count,
             int total_positions, const DoubleArray& visited_A, std::optional<FloatArray> phase_rad,
             std::optional<ObjectGrid> grid) {
            const std::vector<Vec2> visited = bindings::positions_from_numpy(visited_A);
            std::optional<Potential> potential;
            if (phase_rad.has_value() != grid.has_value())
              throw std::invalid_argument("phase_rad and grid come together, or neither");
            if (phase_rad) {
              potential.emplace();
              potential->phase_rad = bindings::to_real_image(*phase_rad, "phase_rad");
              potential->grid = *grid;
              if (potential->phase_rad.rows() != grid->rows || potential->phase_rad.cols() != grid->cols)
                throw std::invalid_argument("phase_rad's shape is not the grid's");
            }
            std::vector<SessionWarning> warnings;
            PolicyContext context;
            context.raster = raster;
            context.sub_sequence = sub_sequence;
            context.count = count;
            context.total_positions = total_positions;
            context.visited_A = visited;
            context.potential = potential ? &*potential : nullptr;
            context.warnings = &warnings;
            std::vector<Vec2> positions;
            const Status status = policy.propose(context, &positions);
            if (!status.ok()) throw std::runtime_error(status.message());
            return bindings::positions_to_numpy(positions);
          },
          py::arg("raster"), py::arg("sub_sequence"), py::arg("count"), py::arg("total_positions"),
          py::arg("visited_A"), py::arg("phase_rad") = py::none(), py::arg("grid") = py::none(),
          "The next positions (n, 2) in A from the FOV origin, as PolicyContext describes its "
          "inputs: visited_A (n, 2) every approved position so far, phase_rad the whole object "
          "image of the current reconstruction on `grid` (or None before the first). No "
          "dark-field fractions are passed, so 'heuristic' moves nothing here.");
}
