// ptypilot_core.recover: `ptypilot recover` from Python, the same function
// (Hdf5Recorder::recover_session), for scripts that find a killed session's files.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "ptypilot/record/hdf5_recorder.hpp"

namespace py = pybind11;
using namespace ptypilot;

void bind_recover(py::module_& m) {
  m.def(
      "recover",
      [](const std::string& path) {
        SessionRecovery r;
        Status s;
        {
          py::gil_scoped_release release;  // a large journal takes a while
          s = Hdf5Recorder::recover_session(path, &r);
        }
        if (!s.ok()) throw std::runtime_error(s.message());
        nlohmann::json out = to_json(r);
        out["message"] = s.message();
        // Through Python's json, so that the dict holds the same keys and types as the CLI's.
        return py::module_::import("json").attr("loads")(
            out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      },
      py::arg("path"),
      "Rebuilds a session's .h5 from its journal (path: the .journal, .h5 or .reserve), "
      "replacing the old file and removing the .reserve a crash left; as `ptypilot recover`. "
      "Returns what it recovered as a dict (frames, sub_sequences, ended, complete, error, "
      "ignored_bytes, stop_reason, replaced, reserve_removed, journal, h5, message). Raises "
      "RuntimeError when nothing could be recovered, or when a running session holds the "
      "journal.");
}
