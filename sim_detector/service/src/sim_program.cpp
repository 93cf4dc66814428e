#include "ptypilot/sim/sim_commands.hpp"

namespace ptypilot {

const Command& sim_program() {
  static const Command program{
      .name = "ptypilot-sim",
      .description = "The simulated detector and stage, and replay; `ptypilot sim-detector` and "
                     "`ptypilot replay` run this program.",
      .subcommands = {sim_detector_command(), replay_command(), version_command("ptypilot-sim"),
                      help_command(&sim_program)}};
  return program;
}

}  // namespace ptypilot
