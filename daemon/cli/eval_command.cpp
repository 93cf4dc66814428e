// `ptypilot eval`: every scanning strategy on held-out simulated specimens through the real loop
// (`serve` plus `sim-detector`), or on recorded data sets (`--dataset-dir`, `serve` plus
// `replay`), SSIM and Q_SSIM against the full-raster reconstruction (or, with --reference truth,
// against the true phase alone), FRC, pictures, and with --table1 the paper's Table 1. The
// orchestration and the metrics are Python (models/ptypilot/evaluate.py); this subcommand runs
// it with the paths of this build.
#include "python_command.hpp"

namespace ptypilot {

Command eval_command() {
  return python_module_command("eval",
                               "every scanning strategy through serve: SSIM, Q_SSIM, FRC, figures; "
                               "Table 1",
                               "ptypilot.evaluate", "the evaluation");
}

}  // namespace ptypilot
