// The daemon's built-in policies (make_policy: the fixed patterns, the heuristic, material-density,
// lattice-flank), so that offline studies run the very code a session runs, through the same
// Safety and simulator as the training episodes (ptypilot.data.run_episode). The learned policies
// are not offered here: Python has the models itself, and the LibTorch plugin is the daemon's.
// What a learned flank scorer needs is: lattice-flank's positions to move and their features
// (lattice_flank_moves), and lattice-flank run with any Python function as its scorer
// (learned_flank_policy), so that training and evaluation hand out and move positions with the
// daemon's code.
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
#include "ptypilot/policy/lattice_flank_policy.hpp"
#include "ptypilot/policy/policy_factory.hpp"

namespace py = pybind11;
using namespace ptypilot;
using ptypilot::bindings::DoubleArray;
using ptypilot::bindings::FloatArray;

namespace {

// What PolicyContext points at, owned for the length of one call from Python.
struct ContextFromPython {
  std::vector<Vec2> visited;
  std::optional<Potential> potential;
  std::vector<SessionWarning> warnings;
  PolicyContext context;

  ContextFromPython(const ScanRaster& raster, int sub_sequence, int count, int total_positions,
                    const DoubleArray& visited_A, const std::optional<FloatArray>& phase_rad,
                    const std::optional<ObjectGrid>& grid)
      : visited(bindings::positions_from_numpy(visited_A)) {
    if (phase_rad.has_value() != grid.has_value())
      throw std::invalid_argument("phase_rad and grid come together, or neither");
    if (phase_rad) {
      potential.emplace();
      potential->phase_rad = bindings::to_real_image(*phase_rad, "phase_rad");
      potential->grid = *grid;
      if (potential->phase_rad.rows() != grid->rows || potential->phase_rad.cols() != grid->cols)
        throw std::invalid_argument("phase_rad's shape is not the grid's");
    }
    context.raster = raster;
    context.sub_sequence = sub_sequence;
    context.count = count;
    context.total_positions = total_positions;
    context.visited_A = visited;
    context.potential = potential ? &*potential : nullptr;
    context.warnings = &warnings;
  }
  ContextFromPython(const ContextFromPython&) = delete;
  ContextFromPython& operator=(const ContextFromPython&) = delete;
};

// Features as flank_features lays them out, [n, kFlankFeatureChannels, P, P], as a numpy array.
py::array_t<float> features_to_numpy(std::span<const float> features, std::size_t n, int half_px) {
  const py::ssize_t side = 2 * half_px + 1;
  py::array_t<float> x({static_cast<py::ssize_t>(n), py::ssize_t{kFlankFeatureChannels}, side, side});
  std::copy(features.begin(), features.end(), x.mutable_data());
  return x;
}

// A Python function score(features (n, C, P, P) float32, nodes_A (n, 2)) -> (n, 9) as the scorer.
class PythonFlankScorer final : public FlankMoveScorer {
 public:
  PythonFlankScorer(py::function score, int half_px) : score_(std::move(score)), half_px_(half_px) {
    if (half_px < 0) throw std::invalid_argument("patch_half_px must be >= 0");
  }
  int patch_half_px() const override { return half_px_; }
  Status score(std::span<const float> features, std::span<const Vec2> nodes_A,
               std::vector<std::array<float, kFlankMoves>>* scores) override {
    const py::ssize_t n = static_cast<py::ssize_t>(nodes_A.size());
    const py::array_t<float, py::array::c_style | py::array::forcecast> out =
        score_(features_to_numpy(features, nodes_A.size(), half_px_),
               bindings::positions_to_numpy(nodes_A));
    if (out.ndim() != 2 || out.shape(0) != n || out.shape(1) != kFlankMoves)
      return Status(StatusCode::kInvalidArgument,
                    "the scorer must return an array (n, 9) for n = " + std::to_string(n));
    scores->resize(nodes_A.size());
    for (py::ssize_t k = 0; k < n; ++k)
      for (int m = 0; m < kFlankMoves; ++m) (*scores)[k][m] = out.at(k, m);
    return Status::Ok();
  }

 private:
  py::function score_;
  int half_px_;
};

}  // namespace

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
            const ContextFromPython in(raster, sub_sequence, count, total_positions, visited_A,
                                       phase_rad, grid);
            std::vector<Vec2> positions;
            const Status status = policy.propose(in.context, &positions);
            if (!status.ok()) throw std::runtime_error(status.message());
            return bindings::positions_to_numpy(positions);
          },
          py::arg("raster"), py::arg("sub_sequence"), py::arg("count"), py::arg("total_positions"),
          py::arg("visited_A"), py::arg("phase_rad") = py::none(), py::arg("grid") = py::none(),
          "The next positions (n, 2) in A from the FOV origin, as PolicyContext describes its "
          "inputs: visited_A (n, 2) every approved position so far, phase_rad the whole object "
          "image of the current reconstruction on `grid` (or None before the first). No "
          "dark-field fractions are passed, so 'heuristic' moves nothing here.");

  m.def(
      "learned_flank_policy",
      [](py::function score, int patch_half_px) -> std::unique_ptr<Policy> {
        return std::make_unique<LatticeFlankPolicy>(
            LatticeFlankOptions{}, std::make_shared<PythonFlankScorer>(std::move(score), patch_half_px));
      },
      py::arg("score"), py::arg("patch_half_px"),
      "lattice-flank with score(features (n, 3, P, P) float32, nodes_A (n, 2)) -> (n, 9) choosing "
      "each position's move (LatticeFlankPolicy with a FlankMoveScorer), P = 2 patch_half_px + 1: "
      "what the daemon runs with a learned flank scorer, with any function in its place.");
  m.def(
      "lattice_flank_moves",
      [](const ScanRaster& raster, int sub_sequence, int count, int total_positions,
         const DoubleArray& visited_A, const FloatArray& phase_rad, const ObjectGrid& grid,
         int patch_half_px) {
        if (patch_half_px < 0) throw std::invalid_argument("patch_half_px must be >= 0");
        const ContextFromPython in(raster, sub_sequence, count, total_positions, visited_A,
                                   phase_rad, grid);
        const LatticeFlankPolicy policy;
        const std::vector<Vec2> nodes = policy.positions_to_move(in.context);
        const std::vector<float> features = policy.move_features(in.context, nodes, patch_half_px);
        return py::make_tuple(bindings::positions_to_numpy(nodes),
                              features_to_numpy(features, nodes.size(), patch_half_px));
      },
      py::arg("raster"), py::arg("sub_sequence"), py::arg("count"), py::arg("total_positions"),
      py::arg("visited_A"), py::arg("phase_rad"), py::arg("grid"), py::arg("patch_half_px"),
      "(nodes_A (n, 2), features (n, 3, P, P) float32): the positions lattice-flank's call moves "
      "and what a flank scorer sees around each (kFlankFeatureChannels in "
      "lattice_flank_policy.hpp: phase / its 99th percentile, illumination, distance to the "
      "fitted lattice's nearest column in A, capped at 2). n = 0 where the call moves none.");
}
