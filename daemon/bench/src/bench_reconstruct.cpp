// `ptypilot bench reconstruct`: time gradient iterations of the reconstructor against the
// floor set by its FFTs (one forward and one inverse transform per pattern), both measured in
// the same run: with the same threads and batch size on the CPU, on the reconstructor's own
// cuFFT plan and stream with --backend cuda (ptypilot/reconstruct_timing.hpp). Prints one JSON
// object. A backend that is not there (cuda without a device) is an error that names why.
// With any prior on, the same iterations without priors are timed after, so that the report
// shows what the priors cost per iteration.
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "ptypilot/cpu_reconstructor.hpp"
#if PTYPILOT_WITH_CUDA
#include "ptypilot/cuda_reconstructor.hpp"
#endif
#include "ptypilot/wire/command.hpp"
#include "ptypilot/wire/log.hpp"
#include "ptypilot/reconstruct_timing.hpp"
#include "ptypilot/simulator.hpp"

namespace ptypilot {
namespace {

int bench_reconstruct(const CliArgs& cli) {
  const long patterns = cli.get_int("patterns");
  const long iterations = cli.get_int("iterations");
  const long warmup = cli.get_int("warmup");
  const auto& preset = sim::experiment_preset(cli.get("preset"));
  if (patterns < 1 || patterns > long(preset.scan_rows) * preset.scan_cols)
    throw std::invalid_argument("--patterns must be in [1, " +
                                std::to_string(preset.scan_rows * preset.scan_cols) + "]");
  if (iterations < 1) throw std::invalid_argument("--iterations must be >= 1");

  ReconstructorConfig config;
  config.backend = cli.get("backend");
  const BackendChoice backend = choose_backend(config.backend);  // throws for a missing backend
  config.probe = preset.probe;
  config.object = preset.object_grid();
  config.loss = parse_loss(cli.get("loss"));
  config.threads = static_cast<int>(cli.get_int("threads"));
  config.batch = static_cast<int>(cli.get_int("batch"));
  const std::string positivity = cli.get("positivity");
  if (positivity != "on" && positivity != "off")
    throw std::invalid_argument("--positivity must be on or off");
  config.priors = {.positivity = positivity == "on",
                   .dark_smoothing = cli.get_double("dark-smoothing"),
                   .total_variation = cli.get_double("total-variation"),
                   .sparsity = cli.get_double("sparsity")};

  log::info("bench_setup", {{"preset", preset.name}, {"patterns", patterns}});
  const sim::SimulatedSpecimen specimen = sim::simulate_specimen(preset, 0);
  sim::FrameSimulator simulator(specimen, cli.get_double("dose"), 1);
  const auto positions = sparse_grid_positions(static_cast<int>(patterns), preset.scan_rows,
                                               preset.scan_cols, preset.step_A);
  const int n = preset.probe.window_px;
  const int d = preset.probe.detector_side_px();
  const std::size_t nn = std::size_t(d) * d;  // per frame
  std::vector<float> counts(positions.size() * nn);
  if (Status s = simulator.frames(positions, counts); !s.ok()) throw std::runtime_error(s.to_string());
  std::vector<Frame> frames;
  for (std::size_t p = 0; p < positions.size(); ++p)
    frames.push_back({p, positions[p], std::span<const float>(counts.data() + p * nn, nn)});

  auto timed = [&](const ReconstructorConfig& c, std::unique_ptr<Reconstructor>* kept) {
    std::unique_ptr<Reconstructor> r = make_reconstructor(c);
    if (Status s = r->add_frames(frames); !s.ok()) throw std::runtime_error(s.to_string());
    IterationTiming t;
    if (Status s = time_iterations(*r, c, static_cast<int>(warmup), static_cast<int>(iterations), &t);
        !s.ok())
      throw std::runtime_error(s.to_string());
    if (kept != nullptr) *kept = std::move(r);
    return t;
  };
  std::unique_ptr<Reconstructor> reconstructor;
  const IterationTiming timing = timed(config, &reconstructor);
  // What the priors cost: the same iterations without them, measured right after.
  std::optional<IterationTiming> without_priors;
  if (config.priors.any()) {
    ReconstructorConfig plain = config;
    plain.priors = {.positivity = false};
    without_priors = timed(plain, nullptr);
  }
  const double ms = timing.median_iteration_ms();
  const double floor = timing.median_floor_ms();
  const Potential result = reconstructor->snapshot();
  const auto* cpu = dynamic_cast<const CpuReconstructor*>(reconstructor.get());
  nlohmann::json report = {
      {"benchmark", "reconstruct"},
      {"backend", reconstructor->backend()},
      {"backend_reason", backend.reason},
      {"preset", preset.name},
      {"patterns", patterns},
      {"window_px", n},
      {"detector_px", d},
      {"object_px", {config.object.rows, config.object.cols}},
      {"loss", config.loss == Loss::kAmplitude ? "amplitude" : "intensity"},
      {"threads", cpu != nullptr ? cpu->threads() : 0},
      {"hardware_threads", std::thread::hardware_concurrency()},
      {"batch", cpu != nullptr ? config.batch : static_cast<int>(patterns)},
      {"iterations", iterations},
      {"ms_per_iteration", ms},
      {"ms_per_iteration_min", timing.min_iteration_ms()},
      {"us_per_pattern_iteration", ms * 1e3 / patterns},
      {"fft_floor_ms", floor},
      {"ratio_to_fft_floor", ms / floor},
      {"loss_first", result.loss_history.front()},
      {"loss_last", result.loss_history.back()},
      {"priors",
       {{"positivity", config.priors.positivity},
        {"dark_smoothing", config.priors.dark_smoothing},
        {"total_variation", config.priors.total_variation},
        {"sparsity", config.priors.sparsity}}},
  };
  if (without_priors) {
    report["ms_per_iteration_without_priors"] = without_priors->median_iteration_ms();
    report["ms_per_iteration_min_without_priors"] = without_priors->min_iteration_ms();
    // From the minima: on a shared machine they are the least disturbed by other work.
    report["prior_cost_ms_per_iteration"] =
        timing.min_iteration_ms() - without_priors->min_iteration_ms();
  }
#if PTYPILOT_WITH_CUDA
  if (auto* cuda = dynamic_cast<const CudaReconstructor*>(reconstructor.get())) {
    report["device"] = cuda->device_name();
    report["cuda_graph"] = cuda->uses_graph();
  }
#endif
  std::cout << report.dump(2) << std::endl;
  return 0;
}

}  // namespace

Command bench_reconstruct_command() {
  return {.name = "reconstruct",
          .summary = "time reconstructor iterations against the FFT (FFTW or cuFFT) floor",
          .description =
              "Time gradient iterations of the reconstructor against the floor set by its FFTs (one "
              "forward and one inverse transform per pattern), both measured in the same run. "
              "Prints one JSON object.",
          .options = {{"backend", "cpu|cuda|auto", "cpu", "reconstructor backend"},
                      {"patterns", "N", "500", "diffraction patterns (sparse-grid positions)"},
                      {"iterations", "K", "20", "timed iterations"},
                      {"warmup", "K", "3", "untimed iterations first"},
                      {"threads", "T", "0", "CPU threads; 0: every core OpenMP reports, as the daemon"},
                      {"batch", "B", "16", "patterns per CPU batch"},
                      {"loss", "amplitude|intensity", "amplitude", "the loss (the daemon's default: amplitude)"},
                      {"preset", "NAME", "mos2-paper", "experiment preset"},
                      {"dose", "E_PER_A2", "100000", "electrons per square angstrom"},
                      {"positivity", "on|off", "on", "prior: V >= 0 (the daemon's default: on)"},
                      {"dark-smoothing", "W", "0", "prior: diffusion weight in weakly lit regions"},
                      {"total-variation", "W", "0", "prior: total-variation step"},
                      {"sparsity", "RAD", "0", "prior: soft threshold of V per step"}},
          .run = bench_reconstruct};
}

}  // namespace ptypilot
