// ptypilot: one command-line tool with subcommands (see README.md).
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "ptypilot/daemon/log.hpp"

namespace ptypilot {
int bench_reconstruct(const std::vector<std::string>& args);
}

namespace {

constexpr const char* kUsage = R"(usage: ptypilot <command> [options]

commands:
  bench reconstruct [--patterns N] [--iterations K] [--threads T] [--batch B]
                    [--loss intensity|amplitude] [--preset NAME] [--dose E_PER_A2]
      time reconstructor iterations against the FFT floor; prints one JSON object
  version           print the version
  help              print this text
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  try {
    if (command == "version") {
      std::cout << "ptypilot " << PTYPILOT_VERSION << "\n";
      return 0;
    }
    if (command == "bench" && args.size() >= 2 && args[1] == "reconstruct")
      return ptypilot::bench_reconstruct({args.begin() + 2, args.end()});
    std::cerr << "ptypilot: unknown command '" << command << "'\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    // Startup errors end here: one structured line, one line a person can act on.
    ptypilot::log::error("command_failed", {{"command", command}, {"error", e.what()}});
    std::cerr << "ptypilot " << command << ": " << e.what() << "\n";
    return 1;
  }
}
