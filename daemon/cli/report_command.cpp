// `ptypilot report SESSION.h5`: a one-page HTML report of a recorded session. The page is built
// in Python (models/ptypilot/report.py, matplotlib), run with this build's paths
// (exec_python_module), as demo and eval are.
#include "python_command.hpp"

namespace ptypilot {

Command report_command() {
  return python_module_command("report",
                               "a one-page HTML report of a recorded session: reconstruction, "
                               "positions, dose, latencies, counters, config",
                               "ptypilot.report", "the report");
}

}  // namespace ptypilot
