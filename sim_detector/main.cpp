// ptypilot-sim: the simulated detector and stage, and the replay of recorded data sets. A program
// of its own so that the daemon never links the simulator; `ptypilot sim-detector` and
// `ptypilot replay` run this program.
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "ptypilot/wire/log.hpp"

namespace ptypilot {
int run_sim_detector(const std::vector<std::string>& args);
int run_replay(const std::vector<std::string>& args);
}  // namespace ptypilot

namespace {

constexpr const char* kUsage = R"(usage: ptypilot-sim <command> [options]   (also: ptypilot <command>)

commands:
  sim-detector   a simulated detector and stage (ptypilot sim-detector --help)
  replay         a recorded data set as detector and stage (ptypilot replay --help)
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (command == "sim-detector") return ptypilot::run_sim_detector(rest);
    if (command == "replay") return ptypilot::run_replay(rest);
    std::cerr << "ptypilot-sim: unknown command '" << command << "'\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    ptypilot::log::error("command_failed", {{"command", command}, {"error", e.what()}});
    std::cerr << "ptypilot " << command << ": " << e.what() << "\n";
    return 1;
  }
}
