// parse_loss on its own, apart from make_reconstructor (reconstructor.cpp): the daemon's config
// reader needs it, and the control path's fuzz target links that reader without the reconstructor.
#include <stdexcept>
#include <string>

#include "ptypilot/reconstructor.hpp"

namespace ptypilot {

Loss parse_loss(std::string_view name) {
  if (name == "intensity") return Loss::kIntensity;
  if (name == "amplitude") return Loss::kAmplitude;
  throw std::invalid_argument("unknown loss '" + std::string(name) +
                              "': use 'intensity' or 'amplitude'");
}

}  // namespace ptypilot
