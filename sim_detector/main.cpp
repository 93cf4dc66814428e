// ptypilot-sim: the simulated detector and stage, and the replay of recorded data sets. A program
// of its own so that the daemon never links the simulator; `ptypilot sim-detector` and
// `ptypilot replay` run this program.
#include <filesystem>
#include <string>
#include <vector>

#include "ptypilot/sim/sim_commands.hpp"

int main(int argc, char** argv) {
  // Named as it was called: `ptypilot sim-detector --help` (which runs this program with argv[0]
  // "ptypilot") shows the command as the user typed it.
  ptypilot::Command program = ptypilot::sim_program();
  if (argc > 0) program.name = std::filesystem::path(argv[0]).filename().string();
  return ptypilot::run_command_line(program, std::vector<std::string>(argv + 1, argv + argc));
}
