// ptypilot: one command-line tool with subcommands (see README.md, and `ptypilot --help`),
// listed in commands.cpp; the registry that parses and documents them is ptypilot/wire/command.hpp.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "commands.hpp"

int main(int argc, char** argv) {
  // The reconstructor's OpenMP threads must not spin-wait at their barriers: on a loaded machine
  // (a training job, a second daemon) a spinning thread holds the core its peer needs, and one
  // iteration measured 240 ms instead of 20. libgomp reads OMP_WAIT_POLICY when it is loaded,
  // before main, so the process re-executes itself once with PASSIVE unless the operator chose.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure; then run as we are
  }
  return ptypilot::run_command_line(ptypilot::ptypilot_program(),
                                   std::vector<std::string>(argv + 1, argv + argc));
}
