// Python face of the Voronoi reward (ptypilot/reward.hpp): exact on the CPU (the reference, and
// the default), or Jump Flooding on the GPU with method="jfa", which raises RuntimeError naming
// the reason where the build has no CUDA or the machine no device.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "numpy_convert.hpp"
#include "ptypilot/cuda_support.hpp"
#include "ptypilot/reward.hpp"

namespace py = pybind11;
using namespace ptypilot;
using ptypilot::bindings::DoubleArray;
using ptypilot::bindings::positions_from_numpy;

namespace {

static_assert(sizeof(int) == sizeof(std::int32_t), "labels are returned as int32");

// "exact" or "jfa"; false for jfa.
bool is_exact(const std::string& method) {
  if (method == "exact") return true;
  if (method == "jfa") return false;
  throw std::invalid_argument("unknown method '" + method + "': use 'exact' or 'jfa'");
}

}  // namespace

void bind_reward(py::module_& m) {
  m.def(
      "cuda_status",
      [] {
        const CudaSupport& s = cuda_support();
        return py::make_tuple(s.available, s.reason);
      },
      "(available, reason): whether method='jfa' and the CUDA reconstructor can run here, and\n"
      "why not (no CUDA in this build, or cudaGetDeviceCount's error), or the device used.");

  m.def(
      "voronoi_labels",
      [](const ObjectGrid& grid, const DoubleArray& positions, bool fov_only,
         const std::string& method) {
        const bool exact = is_exact(method);
        const auto pos = positions_from_numpy(positions);
        Image<int> labels;
        {
          py::gil_scoped_release release;
          labels = exact ? voronoi_labels(grid, pos, fov_only) : voronoi_labels_jfa(grid, pos, fov_only);
        }
        py::array_t<std::int32_t> out(
            {static_cast<py::ssize_t>(labels.rows()), static_cast<py::ssize_t>(labels.cols())});
        std::copy(labels.data(), labels.data() + labels.size(), out.mutable_data());
        return out;
      },
      py::arg("grid"), py::arg("positions"), py::arg("fov_only") = true,
      py::arg("method") = "exact",
      "(rows, cols) int32 Voronoi labels of the object pixels: the index of the nearest of the\n"
      "(n, 2) positions (y_A, x_A, relative to the FOV origin), by the double-precision distance\n"
      "in Angstrom, ties to the lowest index. With fov_only, pixels outside the scan FOV are -1.\n"
      "method='jfa': Jump Flooding on the GPU, which agrees except at rare pixels that are all\n"
      "but equidistant (reward.hpp states how far); RuntimeError where CUDA cannot run.\n"
      "Raises ValueError for no positions or a non-finite one.");

  m.def(
      "voronoi_reward",
      [](const bindings::FloatArray& phase_rad, const ObjectGrid& grid,
         const DoubleArray& positions, const std::string& method) {
        const bool exact = is_exact(method);
        const RealImage phase = bindings::to_real_image(phase_rad, "phase_rad");
        const auto pos = positions_from_numpy(positions);
        std::vector<double> reward;
        {
          py::gil_scoped_release release;
          reward = exact ? voronoi_reward(phase, grid, pos) : voronoi_reward_jfa(phase, grid, pos);
        }
        return py::array_t<double>(static_cast<py::ssize_t>(reward.size()), reward.data());
      },
      py::arg("phase_rad"), py::arg("grid"), py::arg("positions"), py::arg("method") = "exact",
      "(n,) float64 Voronoi reward of the paper: per position, the phase (converted to float32,\n"
      "summed in double) over the FOV pixels of its Voronoi cell, divided by n. The rewards add\n"
      "up to the FOV's phase sum / n. method='jfa': the cells by Jump Flooding on the GPU, as\n"
      "the paper does (RuntimeError where CUDA cannot run). Raises ValueError for a phase not\n"
      "of the grid's shape, no positions, or a position that is not finite or lies outside the\n"
      "FOV.");
}
