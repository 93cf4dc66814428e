// `ptypilot eval`: every scanning strategy on held-out simulated specimens through the real loop
// (`serve` plus `sim-detector`), or on recorded data sets (`--dataset-dir`, `serve` plus
// `replay`), SSIM and Q_SSIM against the full-raster reconstruction, FRC, pictures, and with
// --table1 the paper's Table 1. The orchestration and the metrics are Python
// (models/ptypilot/evaluate.py); this subcommand runs it with the paths of this build.
#include <string>
#include <vector>

#include "python_command.hpp"

namespace ptypilot {

int run_eval(const std::vector<std::string>& args) {
  exec_python_module("ptypilot.evaluate", args, "the evaluation");
}

}  // namespace ptypilot
