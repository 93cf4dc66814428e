// `ptypilot serve`: the daemon (daemon.hpp) as a process, configured from the command line.
#include <iostream>
#include <nlohmann/json.hpp>

#include "ptypilot/wire/command.hpp"
#include "ptypilot/app/daemon.hpp"

namespace ptypilot {
namespace {

int run_serve(const CliArgs& cli) {
  DaemonOptions options;
  options.detector_uri = cli.get("detector");
  if (!options.detector_uri.empty()) apply_detector_uri({}, options.detector_uri);  // fail now
  if (cli.has("config")) options.initial_config = load_serve_config(cli.get("config"));
  options.control_endpoint = cli.get("control");
  options.events_endpoint = cli.get("events");
  options.server_key = cli.get("server-key");
  options.authorized_keys = cli.get("authorized-keys");
  options.recorder_root = cli.get("recorder-root");
  options.http_endpoint = cli.get("http");
  Daemon daemon(std::move(options));
  // One line on stdout for a parent process (demo, tests) to learn the bound endpoints.
  std::cout << nlohmann::json{{"event", "ready"}, {"control_endpoint", daemon.control_endpoint()},
                              {"events_endpoint", daemon.events_endpoint()},
                              {"http_url", daemon.http_url()}}
                   .dump()
            << std::endl;
  return daemon.run();
}

}  // namespace

Command serve_command() {
  return {
      .name = "serve",
      .summary = "the daemon: the closed adaptive-scanning loop, controlled over ZMQ (see ctl)",
      .description =
          "The daemon: the closed adaptive-scanning loop, controlled over ZMQ (see `ptypilot "
          "ctl`). Prints one JSON line with the bound endpoints when ready; runs until SIGINT or "
          "SIGTERM. Refuses a non-loopback endpoint without CURVE keys (README, Security).",
      .options = {{"config", "FILE", "", "a JSON config to be configured with at start-up"},
                  {"control", "ENDPOINT", "", "the control socket (default: the config's)"},
                  {"events", "ENDPOINT", "", "the event PUB socket (default: the config's)"},
                  {"server-key", "FILE", "",
                   "CURVE: the daemon's NAME.key_secret (ptypilot keygen); needed, with "
                   "--authorized-keys, to bind anything but loopback (default: the config's)"},
                  {"authorized-keys", "FILE", "",
                   "CURVE: the clients' public keys, a line each: ROLE PUBLIC_KEY [NAME], ROLE "
                   "observer, controller or operator (default: the config's)"},
                  {"recorder-root", "DIR", "",
                   "every recorder.directory must lie inside DIR (a relative one is taken "
                   "inside it); a configuration that points elsewhere is refused (default: the "
                   "working directory)"},
                  {"detector", "KIND://HOST:PORT", "",
                   "zmq://, dectris-v1://, dectris-v2:// or merlin:// (its data port, 6342 "
                   "by default): overrides detector.kind and "
                   "detector.endpoint of every configuration"},
                  {"http", "HOST:PORT", "",
                   "serve the live page (/) and GET /metrics (Prometheus text format) there, on "
                   "a loopback address only; port 0 takes a free one (printed as http_url) "
                   "(default: none)"}},
      .run = run_serve};
}

}  // namespace ptypilot
