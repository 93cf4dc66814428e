// The frame simulator and the reconstructor.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "numpy_convert.hpp"
#include "ptypilot/cpu_reconstructor.hpp"
#include "ptypilot/scan_rotation.hpp"
#include "ptypilot/simulator.hpp"

namespace py = pybind11;
using namespace ptypilot;
using ptypilot::bindings::DoubleArray;
using ptypilot::bindings::FloatArray;
using ptypilot::bindings::positions_from_numpy;

namespace {

void raise_if_error(const Status& s) {
  if (!s.ok()) throw std::invalid_argument(s.message());
}

py::array_t<float> new_patterns(std::size_t count, int n) {
  return py::array_t<float>({static_cast<py::ssize_t>(count), py::ssize_t{n}, py::ssize_t{n}});
}

// A specimen together with its frame simulator, as one Python object.
class Simulation {
 public:
  Simulation(const std::string& preset, std::uint64_t seed, double dose_e_per_A2,
             std::uint64_t noise_seed, int vacancies, const std::string& effects)
      : specimen_(sim::simulate_specimen(sim::experiment_preset(preset), seed, vacancies)),
        simulator_(specimen_, dose_e_per_A2, noise_seed, sim::parse_experimental_effects(effects)) {}

  py::array_t<float> frames(const DoubleArray& positions) {
    const auto pos = positions_from_numpy(positions);
    const int n = simulator_.detector_px();
    auto out = new_patterns(pos.size(), n);
    std::span<float> view(out.mutable_data(), pos.size() * n * n);
    Status s;
    {
      py::gil_scoped_release release;
      s = simulator_.frames(pos, view);
    }
    raise_if_error(s);
    return out;
  }

  const sim::SimulatedSpecimen& specimen() const { return specimen_; }
  double electrons_per_frame() const { return simulator_.electrons_per_frame(); }

 private:
  sim::SimulatedSpecimen specimen_;
  sim::FrameSimulator simulator_;
};

}  // namespace

void bind_reconstructor(py::module_& m) {
  py::class_<Simulation>(m, "Simulation",
                         "A simulated specimen from a preset and a seed, and its detector.")
      .def(py::init<const std::string&, std::uint64_t, double, std::uint64_t, int,
                    const std::string&>(),
           py::arg("preset"), py::arg("seed"), py::arg("dose_e_per_A2") = 0.0,
           py::arg("noise_seed") = 0, py::arg("vacancies") = 3, py::arg("effects") = "",
           "effects: experimental effects as `sim-detector --effects` takes them, "
           "\"key=value,...\" (kernels/include/ptypilot/experimental_effects.hpp); the truth "
           "(phase_rad) stays the static specimen's.")
      .def("frames", &Simulation::frames, py::arg("positions"),
           "(n, D, D) float32 frames at (n, 2) positions in Angstrom (D: probe.detector_side).")
      .def_property_readonly("phase_rad",
                             [](const Simulation& s) { return bindings::to_numpy(s.specimen().phase_rad); })
      .def_property_readonly("potential_VA",
                             [](const Simulation& s) { return bindings::to_numpy(s.specimen().potential_VA); })
      .def_property_readonly("atoms",
                             [](const Simulation& s) {
                               const auto& atoms = s.specimen().atoms;
                               py::array_t<double> out({static_cast<py::ssize_t>(atoms.size()), py::ssize_t{3}});
                               auto v = out.mutable_unchecked<2>();
                               for (std::size_t i = 0; i < atoms.size(); ++i) {
                                 v(i, 0) = atoms[i].y_A;
                                 v(i, 1) = atoms[i].x_A;
                                 v(i, 2) = atoms[i].Z;
                               }
                               return out;
                             })
      .def_property_readonly("material_mask",
                             [](const Simulation& s) { return bindings::to_numpy(s.specimen().material); },
                             "(rows, cols) float32 over the object, 1 where the specimen has "
                             "material, 0 in vacuum (the flake, the sheet outside its holes, the "
                             "particles without their carbon film; everywhere for mos2).")
      .def_property_readonly("material_fraction",
                             [](const Simulation& s) { return sim::fov_material_fraction(s.specimen()); },
                             "Share of the FOV crop's pixels (figures.fov_crop) that hold material.")
      .def_property_readonly("grid", [](const Simulation& s) { return s.specimen().grid; })
      .def_property_readonly("preset", [](const Simulation& s) { return s.specimen().preset; })
      .def_property_readonly("electrons_per_frame", &Simulation::electrons_per_frame);

  py::class_<ScanRotation>(m, "ScanRotation",
                           "The scan's rotation against the detector, in the positions "
                           "(kernels/include/ptypilot/scan_rotation.hpp): the daemon's own code.")
      .def(py::init<double, const ObjectGrid&, int>(), py::arg("angle_deg"), py::arg("scan_grid"),
           py::arg("window_px"))
      .def_property_readonly("angle_deg", &ScanRotation::angle_deg)
      .def_property_readonly("scan_grid", &ScanRotation::scan_grid)
      .def_property_readonly("detector_grid", &ScanRotation::detector_grid,
                             "The detector-aligned object grid covering the turned FOV.")
      .def("to_detector",
           [](const ScanRotation& r, const DoubleArray& positions) {
             auto pos = positions_from_numpy(positions);
             for (Vec2& p : pos) p = r.to_detector(p);
             return bindings::positions_to_numpy(pos);
           },
           py::arg("positions"), "(n, 2) scan positions (A) -> positions on the detector grid.")
      .def("to_scan",
           [](const ScanRotation& r, const DoubleArray& positions) {
             auto pos = positions_from_numpy(positions);
             for (Vec2& p : pos) p = r.to_scan(p);
             return bindings::positions_to_numpy(pos);
           },
           py::arg("positions"))
      .def("to_scan_image",
           [](const ScanRotation& r, const FloatArray& image) {
             return bindings::to_numpy(r.to_scan_image(bindings::to_real_image(image, "image")));
           },
           py::arg("image"), "An image on the detector grid turned back onto the scan grid.")
      .def("to_detector_image",
           [](const ScanRotation& r, const FloatArray& image) {
             return bindings::to_numpy(r.to_detector_image(bindings::to_real_image(image, "image")));
           },
           py::arg("image"));

  m.def("forward_intensities",
        [](const ProbeConfig& probe, const ObjectGrid& grid, const FloatArray& phase_rad,
           const DoubleArray& positions) {
          ForwardModel model(probe, grid);
          const auto pos = positions_from_numpy(positions);
          const RealImage phase = bindings::to_real_image(phase_rad, "phase_rad");
          auto out = new_patterns(pos.size(), probe.window_px);
          raise_if_error(model.intensities(
              phase, pos, {out.mutable_data(), static_cast<std::size_t>(out.size())}));
          return out;
        },
        py::arg("probe"), py::arg("grid"), py::arg("phase_rad"), py::arg("positions"),
        "Noise-free patterns (each sums to 1) of the forward model, paper eq. (1).");

  py::class_<CpuReconstructor>(m, "Reconstructor",
                               "Gradient-descent reconstruction of the phase V (paper eq. 2). The "
                               "defaults are the daemon's (reconstruction in its config): the "
                               "amplitude loss, threads=0 for every core OpenMP reports.")
      .def(py::init([](const ProbeConfig& probe, const ObjectGrid& grid, const std::string& loss,
                       double step_size, double regularization, int threads, int batch,
                       bool positivity, double dark_smoothing, double total_variation,
                       std::vector<float> detector_mask, double sparsity) {
             ReconstructorConfig c;
             c.backend = "cpu";
             c.probe = probe;
             c.object = grid;
             c.loss = parse_loss(loss);
             c.step_size = step_size;
             c.regularization = regularization;
             c.threads = threads;
             c.batch = batch;
             c.priors = {positivity, dark_smoothing, total_variation, sparsity};
             c.detector_mask = std::move(detector_mask);
             return std::make_unique<CpuReconstructor>(c);
           }),
           py::arg("probe"), py::arg("grid"), py::arg("loss") = "amplitude",
           py::arg("step_size") = 1.0, py::arg("regularization") = 0.05, py::arg("threads") = 0,
           py::arg("batch") = 16, py::arg("positivity") = PriorConfig{}.positivity,
           py::arg("dark_smoothing") = PriorConfig{}.dark_smoothing,
           py::arg("total_variation") = PriorConfig{}.total_variation,
           py::arg("detector_mask") = std::vector<float>{},
           py::arg("sparsity") = PriorConfig{}.sparsity)
      .def("add_frames",
           [](CpuReconstructor& r, const DoubleArray& positions, const FloatArray& patterns) {
             const auto pos = positions_from_numpy(positions);
             if (patterns.ndim() != 3 || patterns.shape(0) != static_cast<py::ssize_t>(pos.size()))
               throw std::invalid_argument("patterns must be an (n, N, N) array, one per position");
             const std::size_t each = patterns.shape(1) * patterns.shape(2);
             const std::size_t first_id = r.snapshot().frames;
             std::vector<Frame> frames;
             for (std::size_t i = 0; i < pos.size(); ++i)
               frames.push_back({first_id + i, pos[i], {patterns.data() + i * each, each}});
             raise_if_error(r.add_frames(frames));
           },
           py::arg("positions"), py::arg("patterns"))
      .def("iterate",
           [](CpuReconstructor& r, int iterations) {
             Status s;
             {
               py::gil_scoped_release release;
               s = r.iterate(iterations);
             }
             raise_if_error(s);
           },
           py::arg("iterations"))
      .def_property_readonly("phase_rad",
                             [](const CpuReconstructor& r) { return bindings::to_numpy(r.snapshot().phase_rad); })
      .def_property_readonly("loss_history",
                             [](const CpuReconstructor& r) { return r.snapshot().loss_history; })
      .def_property_readonly("frames", [](const CpuReconstructor& r) { return r.snapshot().frames; })
      .def("set_potential",
           [](CpuReconstructor& r, const FloatArray& phase) {
             raise_if_error(r.set_potential(bindings::to_real_image(phase, "phase_rad")));
           },
           py::arg("phase_rad"))
      .def("loss_and_gradient",
           [](CpuReconstructor& r, const FloatArray& phase) {
             double loss = 0;
             RealImage gradient;
             raise_if_error(r.loss_and_gradient(bindings::to_real_image(phase, "phase_rad"), &loss, &gradient));
             return py::make_tuple(loss, bindings::to_numpy(gradient));
           },
           py::arg("phase_rad"), "(L(V), dL/dV) over the stored frames; the state is unchanged.")
      .def_property_readonly("intensity_scale", &CpuReconstructor::intensity_scale)
      .def_property_readonly("placements",
                             [](const CpuReconstructor& r) {
                               const auto& p = r.placements();
                               py::array_t<int> out({static_cast<py::ssize_t>(p.size()), py::ssize_t{2}});
                               auto v = out.mutable_unchecked<2>();
                               for (std::size_t i = 0; i < p.size(); ++i) {
                                 v(i, 0) = p[i].top;
                                 v(i, 1) = p[i].left;
                               }
                               return out;
                             },
                             "(n, 2) top-left object pixel of each frame's window.")
      .def_property_readonly("shifted_probes",
                             [](const CpuReconstructor& r) {
                               const auto& p = r.placements();
                               const int n = r.forward_model().window_px();
                               py::array_t<std::complex<float>> out(
                                   {static_cast<py::ssize_t>(p.size()), py::ssize_t{n}, py::ssize_t{n}});
                               for (std::size_t i = 0; i < p.size(); ++i)
                                 std::copy_n(r.forward_model().shifted_probe(p[i].probe), n * n,
                                             out.mutable_data() + i * n * n);
                               return out;
                             },
                             "(n, N, N) unit-normalised sub-pixel-shifted probe of each frame.")
      .def_property_readonly("threads", &CpuReconstructor::threads);
}
