// `ptypilot config`: the daemon's configuration as the code declares it (core/config.hpp), with no
// daemon running. `reference` is the table the README's "Configuration" section is generated
// from; `check FILE` is what `serve --config FILE` and `ctl configure FILE` would make of a file.
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "ptypilot/core/config.hpp"
#include "ptypilot/wire/command.hpp"

namespace ptypilot {
namespace {

// A ServeConfig as written by default has no raster (0 x 0), and a config without one is refused:
// there is no default experiment. `defaults` therefore prints what the smallest valid config,
// {"session": {"preset": "mos2-paper"}}, resolves to: every default, with the probe, raster and
// margin that preset fills in. That output is itself a config that parses to the same thing.
constexpr const char* kDefaultsPreset = "mos2-paper";

ServeConfig default_serve_config() {
  return parse_serve_config({{"session", {{"preset", kDefaultsPreset}}}});
}

int print_reference(const CliArgs&) {
  std::cout << serve_config_reference();
  return 0;
}

int print_defaults(const CliArgs&) {
  std::cout << default_serve_config().to_json().dump(2) << "\n";
  return 0;
}

int check_file(const CliArgs& args) {
  const std::string file = args.get("FILE");
  ServeConfig config;
  try {
    config = load_serve_config(file);
  } catch (const std::invalid_argument& e) {
    // load_serve_config names the file where it cannot read or parse it; a key's error names
    // only the key path ("config.session.total_positions: ..."), so the file goes in front.
    const std::string what = e.what();
    if (what.find(file) != std::string::npos) throw;
    throw std::invalid_argument(file + ": " + what);
  }
  std::cout << config.to_json().dump(2) << "\n";
  return 0;
}

}  // namespace

Command config_command() {
  return {
      .name = "config",
      .summary = "the daemon's configuration: reference, defaults, check FILE",
      .description =
          "The configuration that `serve --config FILE` and `ctl configure FILE` take: one JSON "
          "object, one key per component; unknown keys are errors.",
      .subcommands = {
          {.name = "reference",
           .summary = "every key: type, default, meaning (a Markdown table)",
           .description = "Every key of the configuration with its type, default and meaning, as "
                          "a Markdown table (the README's is this output).",
           .run = print_reference},
          {.name = "defaults",
           .summary = "the default configuration as JSON, with session.preset mos2-paper",
           .description =
               "The default configuration as JSON. There is no default experiment (a config "
               "without a scan raster is refused), so this is what {\"session\": {\"preset\": "
               "\"mos2-paper\"}} resolves to: every default, with that preset's probe, raster "
               "and margin_px. The output is a valid config file.",
           .run = print_defaults},
          {.name = "check",
           .summary = "load a config file: print it resolved as JSON, or the error (exit 1)",
           .description = "Loads FILE as `serve --config FILE` would and prints the resolved "
                          "configuration (presets filled in, every default written) as JSON; "
                          "if FILE is not a valid config, prints the error with its key path "
                          "and exits 1.",
           .positionals = {{.name = "FILE", .help = "the JSON config (comments allowed)"}},
           .run = check_file}}};
}

}  // namespace ptypilot
