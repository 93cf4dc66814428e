// `ptypilot demo`: the closed loop on one machine. The orchestration, the metrics and the
// pictures are Python (models/ptypilot/demo.py, matplotlib); this subcommand runs it with the
// paths of this build (exec_python_module), so that `ptypilot demo` and `deploy/run demo` are the
// same thing. The daemon itself (`serve`) never needs Python.
#include <string>
#include <vector>

#include "python_command.hpp"

namespace ptypilot {

int run_demo(const std::vector<std::string>& args) {
  exec_python_module("ptypilot.demo", args, "the demo");
}

}  // namespace ptypilot
