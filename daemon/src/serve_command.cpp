// `ptypilot serve`: the daemon (daemon.hpp) as a process, configured from the command line.
#include <iostream>
#include <nlohmann/json.hpp>

#include "ptypilot/daemon/cli_args.hpp"
#include "ptypilot/daemon/daemon.hpp"

namespace ptypilot {

int run_serve(const std::vector<std::string>& args) {
  const CliArgs cli(args, {"config", "control", "events", "detector"});
  DaemonOptions options;
  options.detector_uri = cli.get("detector", "");
  if (!options.detector_uri.empty()) apply_detector_uri({}, options.detector_uri);  // fail now
  if (cli.has("config")) options.initial_config = load_serve_config(cli.get("config", ""));
  options.control_endpoint = cli.get("control", "");
  options.events_endpoint = cli.get("events", "");
  Daemon daemon(std::move(options));
  // One line on stdout for a parent process (demo, tests) to learn the bound endpoints.
  std::cout << nlohmann::json{{"event", "ready"}, {"control_endpoint", daemon.control_endpoint()},
                              {"events_endpoint", daemon.events_endpoint()}}
                   .dump()
            << std::endl;
  return daemon.run();
}

}  // namespace ptypilot
