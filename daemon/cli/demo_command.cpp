// `ptypilot demo`: the closed loop on one machine. The orchestration, the metrics and the
// pictures are Python (models/ptypilot/demo.py, matplotlib); this subcommand runs it with the
// paths of this build (exec_python_module), so that `ptypilot demo` and `deploy/run demo` are the
// same thing. The daemon itself (`serve`) never needs Python.
#include "python_command.hpp"

namespace ptypilot {

Command demo_command() {
  return python_module_command("demo",
                               "the closed loop on this machine, one session per policy; pictures "
                               "in --out DIR",
                               "ptypilot.demo", "the demo");
}

}  // namespace ptypilot
