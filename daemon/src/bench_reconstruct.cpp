// `ptypilot bench reconstruct`: time gradient iterations of the reconstructor against the
// floor set by its FFTs (one forward and one inverse transform per pattern), both measured in
// the same run with the same threads and batch size. Prints one JSON object.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "ptypilot/cpu_reconstructor.hpp"
#include "ptypilot/daemon/cli_args.hpp"
#include "ptypilot/daemon/log.hpp"
#include "ptypilot/fft.hpp"
#include "ptypilot/sim/simulator.hpp"

namespace ptypilot {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// One forward plus one inverse batched FFT of `patterns` windows, as the reconstructor does.
double fft_round_trip_ms(int n, long patterns, int batch, int threads) {
  const BatchedFft forward(n, batch, FftDirection::kForward);
  const BatchedFft backward(n, batch, FftDirection::kBackward);
  const BatchedFft forward_single(n, 1, FftDirection::kForward);
  const BatchedFft backward_single(n, 1, FftDirection::kBackward);
  const std::size_t nn = std::size_t(n) * n;
  const long batches = (patterns + batch - 1) / batch;
  const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
  {
    AlignedComplexBuffer buffer(nn * batch);
#pragma omp for schedule(dynamic, 1)
    for (long b = 0; b < batches; ++b) {
      const long in_batch = std::min<long>(batch, patterns - b * batch);
      if (in_batch == batch) {
        forward.execute(buffer.data());
        backward.execute(buffer.data());
      } else {
        for (long q = 0; q < in_batch; ++q) forward_single.execute(buffer.data() + q * nn);
        for (long q = 0; q < in_batch; ++q) backward_single.execute(buffer.data() + q * nn);
      }
    }
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

int bench_reconstruct(const std::vector<std::string>& args) {
  const CliArgs cli(args, {"patterns", "iterations", "threads", "batch", "loss", "backend",
                           "preset", "dose", "warmup"});
  const long patterns = cli.get_int("patterns", 500);
  const long iterations = cli.get_int("iterations", 20);
  const long warmup = cli.get_int("warmup", 3);
  const auto& preset = sim::experiment_preset(cli.get("preset", "mos2-paper"));
  if (patterns < 1 || patterns > long(preset.scan_rows) * preset.scan_cols)
    throw std::invalid_argument("--patterns must be in [1, " +
                                std::to_string(preset.scan_rows * preset.scan_cols) + "]");
  if (iterations < 1) throw std::invalid_argument("--iterations must be >= 1");

  ReconstructorConfig config;
  config.backend = cli.get("backend", "cpu");
  if (config.backend != "cpu" && config.backend != "auto")
    throw std::runtime_error("bench reconstruct: backend '" + config.backend +
                             "' is not available in this build");
  config.probe = preset.probe;
  config.object = preset.object_grid();
  config.loss = parse_loss(cli.get("loss", "intensity"));
  config.threads = static_cast<int>(cli.get_int("threads", 0));
  config.batch = static_cast<int>(cli.get_int("batch", 16));

  log::info("bench_setup", {{"preset", preset.name}, {"patterns", patterns}});
  const sim::SimulatedSpecimen specimen = sim::simulate_specimen(preset, 0);
  sim::FrameSimulator simulator(specimen, cli.get_double("dose", 1e5), 1);
  const auto positions = sparse_grid_positions(static_cast<int>(patterns), preset.scan_rows,
                                               preset.scan_cols, preset.step_A);
  const int n = preset.probe.window_px;
  const std::size_t nn = std::size_t(n) * n;
  std::vector<float> counts(positions.size() * nn);
  if (Status s = simulator.frames(positions, counts); !s.ok()) throw std::runtime_error(s.to_string());
  std::vector<Frame> frames;
  for (std::size_t p = 0; p < positions.size(); ++p)
    frames.push_back({p, positions[p], std::span<const float>(counts.data() + p * nn, nn)});

  CpuReconstructor reconstructor(config);
  if (Status s = reconstructor.add_frames(frames); !s.ok()) throw std::runtime_error(s.to_string());
  if (Status s = reconstructor.iterate(static_cast<int>(warmup)); !s.ok())
    throw std::runtime_error(s.to_string());
  fft_round_trip_ms(n, patterns, config.batch, reconstructor.threads());  // warm the caches too

  // Interleave the two measurements so that both see the same machine state.
  std::vector<double> iteration_ms, floor_ms;
  for (long i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    if (Status s = reconstructor.iterate(1); !s.ok()) throw std::runtime_error(s.to_string());
    iteration_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    floor_ms.push_back(fft_round_trip_ms(n, patterns, config.batch, reconstructor.threads()));
  }
  const double ms = median(iteration_ms);
  const double floor = median(floor_ms);
  const Potential result = reconstructor.snapshot();
  const nlohmann::json report = {
      {"benchmark", "reconstruct"},
      {"backend", reconstructor.backend()},
      {"preset", preset.name},
      {"patterns", patterns},
      {"window_px", n},
      {"object_px", {config.object.rows, config.object.cols}},
      {"loss", config.loss == Loss::kAmplitude ? "amplitude" : "intensity"},
      {"threads", reconstructor.threads()},
      {"hardware_threads", std::thread::hardware_concurrency()},
      {"batch", config.batch},
      {"iterations", iterations},
      {"ms_per_iteration", ms},
      {"ms_per_iteration_min", *std::min_element(iteration_ms.begin(), iteration_ms.end())},
      {"us_per_pattern_iteration", ms * 1e3 / patterns},
      {"fft_floor_ms", floor},
      {"ratio_to_fft_floor", ms / floor},
      {"loss_first", result.loss_history.front()},
      {"loss_last", result.loss_history.back()},
  };
  std::cout << report.dump(2) << std::endl;
  return 0;
}

}  // namespace ptypilot
