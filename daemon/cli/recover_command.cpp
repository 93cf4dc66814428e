// `ptypilot recover PATH`: the session file of a killed daemon rebuilt from its journal, which
// holds every acknowledged frame (Hdf5Recorder::recover_session). Prints one JSON object.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "ptypilot/record/hdf5_recorder.hpp"
#include "ptypilot/wire/command.hpp"

namespace ptypilot {
namespace {

int recover(const CliArgs& args) {
  SessionRecovery r;
  const Status s = Hdf5Recorder::recover_session(args.get("PATH"), &r);
  nlohmann::json out = {{"ok", s.ok()}, {"message", s.message()}};
  if (s.ok()) out.update(to_json(r));
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return s.ok() ? 0 : 1;
}

}  // namespace

Command recover_command() {
  return {.name = "recover",
          .summary = "rebuild a session's .h5 from its journal after a crash (prints JSON)",
          .description =
              "Rebuilds <session>.h5 from <session>.journal, which holds every frame the daemon "
              "acknowledged, and replaces the old .h5 (written beside it, then renamed). Removes "
              "the <session>.reserve a crash left. Refuses a journal that a running session is "
              "writing. Prints one JSON object: ok, message, journal, h5, frames, "
              "sub_sequences, ended, complete, error, ignored_bytes (a torn tail), stop_reason, "
              "replaced, reserve_removed. Exit 1 when nothing could be recovered.",
          .positionals = {{.name = "PATH",
                           .help = "the session's .journal (or its .h5 or .reserve)"}},
          .run = recover};
}

}  // namespace ptypilot
