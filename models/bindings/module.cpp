// The Python face of the C++ physics: simulator, reconstructor and metrics, and of the daemon's
// Safety, so that training in models/ and the daemon share one implementation. Each bind_*.cpp
// adds one part.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_optics(py::module_& m);
void bind_metrics(py::module_& m);
void bind_specimen(py::module_& m);
void bind_reconstructor(py::module_& m);
void bind_reward(py::module_& m);
void bind_dataset(py::module_& m);
void bind_safety(py::module_& m);
void bind_recover(py::module_& m);
void bind_policy(py::module_& m);
void bind_counters(py::module_& m);

PYBIND11_MODULE(ptypilot_core, m) {
  m.doc() =
      "ptypilot physics: probe, specimens, forward model, reconstructor, metrics; recorded data "
      "sets; the daemon's Safety and health counters; session recovery";
  bind_optics(m);
  bind_metrics(m);
  bind_specimen(m);
  bind_reconstructor(m);
  bind_reward(m);
  bind_dataset(m);
  bind_safety(m);
  bind_recover(m);
  bind_policy(m);
  bind_counters(m);
}
