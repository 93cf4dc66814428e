#include "commands.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "ptypilot/bench/bench_commands.hpp"
#include "ptypilot/wire/program_paths.hpp"

namespace ptypilot {
namespace {

// The simulated detector is a program of its own (sim_detector/), which this one never links:
// `ptypilot sim-detector ARGS` runs `ptypilot-sim sim-detector ARGS` in this process's place.
// Its --help comes from there, from the command's own option table.
Command simulator_command(std::string name, std::string summary) {
  return {.name = name,
          .summary = std::move(summary),
          .run_unparsed = [name](const std::vector<std::string>& args) -> int {
            const std::string program = (program_directory() / "ptypilot-sim").string();
            std::vector<std::string> line = {"ptypilot", name};  // argv[0]: how the user called it
            line.insert(line.end(), args.begin(), args.end());
            std::vector<char*> argv;
            for (auto& a : line) argv.push_back(a.data());
            argv.push_back(nullptr);
            execv(program.c_str(), argv.data());
            throw std::runtime_error("cannot run " + program + ": " + std::strerror(errno));
          }};
}

Command bench_command() {
  return {.name = "bench",
          .summary = "benchmarks: reconstruct, loop, ingest; each prints one JSON object",
          .subcommands = {bench_reconstruct_command(), bench_loop_command(), bench_ingest_command()}};
}

}  // namespace

const Command& ptypilot_program() {
  static const Command program{
      .name = "ptypilot",
      .description = "`ptypilot COMMAND --help`: the command's options.",
      .subcommands = {serve_command(),
                      simulator_command("sim-detector", "a simulated detector and stage: takes "
                                                        "scan commands, sends simulated frames "
                                                        "(runs ptypilot-sim)"),
                      simulator_command("replay", "a recorded data set as detector and stage, "
                                                  "like sim-detector (runs ptypilot-sim)"),
                      ctl_command(), config_command(), calibrate_command(), counters_command(),
                      recover_command(), keygen_command(),
                      demo_command(),
                      eval_command(), report_command(), bench_command(),
                      version_command("ptypilot"), help_command(&ptypilot_program)}};
  return program;
}

const std::vector<Command>& commands() { return ptypilot_program().subcommands; }

}  // namespace ptypilot
