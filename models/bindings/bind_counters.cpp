// ptypilot_core.counters: the daemon's registry of health counters (ptypilot/wire/counters.hpp),
// so that the report classifies counters as the live page and `ptypilot counters` do.
#include <pybind11/pybind11.h>

#include <string>

#include "ptypilot/wire/counters.hpp"

namespace py = pybind11;
using namespace ptypilot;

void bind_counters(py::module_& m) {
  m.def(
      "counters",
      [] {
        py::list out;
        for (const counters::CounterInfo& c : counters::kCounters) {
          py::dict row;
          row["name"] = std::string(c.name);
          row["meaning"] = std::string(c.meaning);
          row["counted_by"] = std::string(c.counted_by);
          row["alarm"] = c.kind == counters::Kind::kAlarm;
          out.append(row);
        }
        return out;
      },
      "Every health counter of `ctl status`, in `ptypilot counters`'s order: a list of dicts "
      "(name, meaning, counted_by, alarm). `alarm`: a non-zero count means bad input or a "
      "fault; otherwise the counter counts normal operation.");
}
