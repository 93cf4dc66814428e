// A helper program the benchmarks run beside the daemon they measure (ptypilot-sim), the way the
// demo and the tests run it: its own process, so that its CPU time and its sockets are as in
// production, and so that the daemon's program does not link the simulator.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ptypilot {

class ChildProcess {
 public:
  // Runs `program` (a path) with `args`, and waits for the JSON line it prints once ready (the
  // sim-detector's {"event": "ready", ...}). Throws std::runtime_error when the program cannot
  // be started or exits before that line.
  ChildProcess(const std::string& program, const std::vector<std::string>& args);
  ~ChildProcess();  // SIGTERM, then waits for it
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  const nlohmann::json& ready() const { return ready_; }

 private:
  pid_t pid_ = -1;
  nlohmann::json ready_;
};

// The ptypilot-sim program beside the running one (same build or install directory).
std::string sibling_program(const std::string& name);

}  // namespace ptypilot
