// The CPU-only build's side of the CUDA entry points: they exist, and say why they cannot run.
#include <stdexcept>
#include <string>

#include "ptypilot/cuda_support.hpp"
#include "ptypilot/reward.hpp"
#include "reward_checks.hpp"

namespace ptypilot {

const CudaSupport& cuda_support() {
  static const CudaSupport support{
      false, false,
      "this build has no CUDA support: no CUDA compiler (nvcc) was found when it was configured, "
      "or PTYPILOT_CUDA=OFF",
      ""};
  return support;
}

void require_cuda(const char* who) {
  throw std::runtime_error(std::string(who) + ": " + cuda_support().reason);
}

Image<int> voronoi_labels_jfa(const ObjectGrid& grid, std::span<const Vec2> positions_A, bool) {
  reward_detail::check_inputs("voronoi_labels_jfa", grid, positions_A);
  require_cuda("voronoi_labels_jfa");
  return {};
}

std::vector<double> voronoi_reward_jfa(const RealImage& phase_rad, const ObjectGrid& grid,
                                       std::span<const Vec2> positions_A) {
  reward_detail::check_reward_inputs("voronoi_reward_jfa", phase_rad, grid, positions_A);
  require_cuda("voronoi_reward_jfa");
  return {};
}

}  // namespace ptypilot
