// ptypilot_kernels_bench: what `ptypilot bench reconstruct` measures, for machines that build
// kernels/ alone (a GPU machine with CUDA and FFTW but not the daemon's libraries), on frames
// generated here (tests/synthetic_experiment.hpp) instead of the simulator's. Also times
//   - the reconstructor's part of the closed loop's decision latency, as the daemon's Session
//     runs it: per sub-sequence add_frames, `--session-iterations` steps (amplitude loss, as
//     `ptypilot bench loop`) and the snapshot the policy reads, up to `--session-positions`;
//   - the Voronoi reward, exact (CPU) and Jump Flooding (GPU), and their agreement.
// One JSON object.
//
//   ptypilot_kernels_bench [--backend auto|cpu|cuda] [--patterns 500] [--iterations 20]
//                          [--warmup 3] [--loss intensity|amplitude] [--reward-positions 250]
//                          [--session-positions 550] [--subsequence 50] [--session-iterations 5]
//                          [--sessions 1]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <span>
#include <string>
#include <vector>

#include "label_agreement.hpp"
#include "ptypilot/cuda_support.hpp"
#include "ptypilot/frame_store.hpp"
#if PTYPILOT_WITH_CUDA
#include "ptypilot/cuda_reconstructor.hpp"
#endif
#include "ptypilot/reconstruct_timing.hpp"
#include "ptypilot/reward.hpp"
#include "synthetic_experiment.hpp"

namespace {

using namespace ptypilot;
using Clock = std::chrono::steady_clock;

std::map<std::string, std::string> parse_options(int argc, char** argv) {
  std::map<std::string, std::string> options = {
      {"backend", "auto"}, {"patterns", "500"}, {"iterations", "20"},  {"warmup", "3"},
      {"loss", "intensity"}, {"reward-positions", "250"}, {"reward-repeats", "20"},
      {"session-positions", "550"}, {"subsequence", "50"}, {"session-iterations", "5"},
      {"sessions", "1"}};
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= argc || !options.count(key.substr(2)))
      throw std::invalid_argument("unknown or incomplete option '" + key + "'");
    options[key.substr(2)] = argv[++i];
  }
  return options;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * (v.size() - 1);
  const auto lo = static_cast<std::size_t>(rank);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (rank - lo) * (v[hi] - v[lo]);
}

// Sub-sequence updates as Session::complete_sub_sequence does them, in `sessions` sessions of a
// reconstructor each (so that p99 rests on more than one session's updates); each session's
// first update is the cold start (plans, graph capture) and is reported apart.
std::string time_session_updates(const std::string& backend, int positions, int subsequence,
                                 int iterations, int sessions) {
  auto e = testing::synthetic_experiment(19.8, positions, Loss::kAmplitude, 4000.0, 2);
  e.config.backend = backend;
  e.config.expected_frames = positions;  // as the daemon sets it from session.total_positions
  std::vector<double> update_ms, add_ms, iterate_ms, snapshot_ms, host_store_ms, first_ms;
  std::string backend_used;
  std::span<const Frame> all(e.frames);
  for (int session = 0; session < sessions; ++session) {
    auto reconstructor = make_reconstructor(e.config);
    backend_used = reconstructor->backend();
    // The host's part of add_frames, timed on a store of its own with the same frames.
    FrameStore host_store(e.config);
    for (int first = 0; first < positions; first += subsequence) {
      const int count = std::min(subsequence, positions - first);
      const auto t0 = Clock::now();
      if (Status s = reconstructor->add_frames(all.subspan(first, count)); !s.ok())
        throw std::runtime_error(s.to_string());
      const auto t1 = Clock::now();
      if (Status s = reconstructor->iterate(iterations); !s.ok())
        throw std::runtime_error(s.to_string());
      const auto t2 = Clock::now();
      const Potential potential = reconstructor->snapshot();
      if (first == 0) {
        first_ms.push_back(ms_since(t0));
      } else {
        update_ms.push_back(ms_since(t0));
        add_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        iterate_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
        snapshot_ms.push_back(ms_since(t2));
      }
      if (potential.frames != std::size_t(first + count)) throw std::logic_error("frames lost");
      const auto t3 = Clock::now();
      if (Status s = host_store.add(all.subspan(first, count)); !s.ok())
        throw std::runtime_error(s.to_string());
      if (first != 0) host_store_ms.push_back(ms_since(t3));
    }
  }
  std::ostringstream json;
  json.precision(6);
  json << "{\n    \"backend\": " << quoted(backend_used)
       << ",\n    \"positions\": " << positions << ",\n    \"subsequence\": " << subsequence
       << ",\n    \"iterations_per_update\": " << iterations
       << ",\n    \"sessions\": " << sessions << ",\n    \"updates\": " << update_ms.size()
       << ",\n    \"first_update_ms\": " << percentile(first_ms, 50)
       << ",\n    \"update_ms_p50\": " << percentile(update_ms, 50)
       << ",\n    \"update_ms_p99\": " << percentile(update_ms, 99)
       << ",\n    \"update_ms_max\": " << (update_ms.empty() ? 0.0 : percentile(update_ms, 100))
       << ",\n    \"add_frames_ms_p50\": " << percentile(add_ms, 50)
       << ",\n    \"add_frames_ms_p99\": " << percentile(add_ms, 99)
       << ",\n    \"host_store_add_ms_p50\": " << percentile(host_store_ms, 50)
       << ",\n    \"host_store_add_ms_p99\": " << percentile(host_store_ms, 99)
       << ",\n    \"iterate_ms_p50\": " << percentile(iterate_ms, 50)
       << ",\n    \"iterate_ms_p99\": " << percentile(iterate_ms, 99)
       << ",\n    \"snapshot_ms_p50\": " << percentile(snapshot_ms, 50)
       << ",\n    \"snapshot_ms_p99\": " << percentile(snapshot_ms, 99)
       << "\n  }";
  return json.str();
}

bool uses_cuda_graph(const Reconstructor& reconstructor) {
#if PTYPILOT_WITH_CUDA
  if (auto* cuda = dynamic_cast<const CudaReconstructor*>(&reconstructor)) return cuda->uses_graph();
#endif
  (void)reconstructor;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto options = parse_options(argc, argv);
    const int patterns = std::stoi(options.at("patterns"));
    const int iterations = std::stoi(options.at("iterations"));
    const int reward_positions = std::stoi(options.at("reward-positions"));
    const int reward_repeats = std::stoi(options.at("reward-repeats"));
    if (patterns < 1 || iterations < 1 || reward_positions < 1 || reward_repeats < 1 ||
        std::stoi(options.at("sessions")) < 1)
      throw std::invalid_argument("counts must be >= 1");

    // The mos2-paper geometry: a 19.8 A FOV on a 200 x 200 px object.
    auto e = testing::synthetic_experiment(19.8, patterns, parse_loss(options.at("loss")));
    e.config.backend = options.at("backend");
    const BackendChoice choice = choose_backend(e.config.backend);
    auto reconstructor = make_reconstructor(e.config);
    if (Status s = reconstructor->add_frames(e.frames); !s.ok()) throw std::runtime_error(s.to_string());
    IterationTiming timing;
    if (Status s = time_iterations(*reconstructor, e.config, std::stoi(options.at("warmup")),
                                   iterations, &timing);
        !s.ok())
      throw std::runtime_error(s.to_string());
    const Potential result = reconstructor->snapshot();
    const double ms = timing.median_iteration_ms(), floor = timing.median_floor_ms();

    std::ostringstream json;
    json.precision(6);
    json << "{\n  \"benchmark\": \"kernels\",\n"
         << "  \"cuda\": " << quoted(cuda_support().reason) << ",\n"
         << "  \"reconstruct\": {\n"
         << "    \"backend\": " << quoted(std::string(reconstructor->backend())) << ",\n"
         << "    \"backend_reason\": " << quoted(choice.reason) << ",\n"
         << "    \"patterns\": " << patterns << ",\n"
         << "    \"window_px\": " << e.config.probe.window_px << ",\n"
         << "    \"object_px\": [" << e.config.object.rows << ", " << e.config.object.cols << "],\n"
         << "    \"loss\": " << quoted(options.at("loss")) << ",\n"
         << "    \"iterations\": " << iterations << ",\n"
         << "    \"ms_per_iteration\": " << ms << ",\n"
         << "    \"ms_per_iteration_min\": " << timing.min_iteration_ms() << ",\n"
         << "    \"us_per_pattern_iteration\": " << ms * 1e3 / patterns << ",\n"
         << "    \"fft_floor_ms\": " << floor << ",\n"
         << "    \"ratio_to_fft_floor\": " << ms / floor << ",\n"
         << "    \"cuda_graph\": " << (uses_cuda_graph(*reconstructor) ? "true" : "false") << ",\n"
         << "    \"loss_first\": " << result.loss_history.front() << ",\n"
         << "    \"loss_last\": " << result.loss_history.back() << "\n  },\n";
    json << "  \"session\": "
         << time_session_updates(e.config.backend, std::stoi(options.at("session-positions")),
                                 std::stoi(options.at("subsequence")),
                                 std::stoi(options.at("session-iterations")),
                                 std::stoi(options.at("sessions")))
         << ",\n";

    // The reward on the reconstruction, at random positions.
    const ObjectGrid& g = e.config.object;
    std::vector<Vec2> positions(e.positions_A.begin(),
                                e.positions_A.begin() + std::min<std::size_t>(reward_positions, e.positions_A.size()));
    auto t0 = Clock::now();
    std::vector<double> exact;
    for (int i = 0; i < reward_repeats; ++i) exact = voronoi_reward(result.phase_rad, g, positions);
    const double exact_ms = ms_since(t0) / reward_repeats;
    json << "  \"reward\": {\n    \"positions\": " << positions.size() << ",\n"
         << "    \"exact_cpu_ms\": " << exact_ms;
    if (cuda_support().available) {
      std::vector<double> jfa = voronoi_reward_jfa(result.phase_rad, g, positions);  // warm-up
      t0 = Clock::now();
      for (int i = 0; i < reward_repeats; ++i) jfa = voronoi_reward_jfa(result.phase_rad, g, positions);
      const double jfa_ms = ms_since(t0) / reward_repeats;
      const auto agreement = testing::compare_labels(g, positions, voronoi_labels(g, positions),
                                                     voronoi_labels_jfa(g, positions));
      double worst = 0.0;
      for (std::size_t m = 0; m < jfa.size(); ++m) worst = std::max(worst, std::abs(jfa[m] - exact[m]));
      json << ",\n    \"jfa_gpu_ms\": " << jfa_ms << ",\n"
           << "    \"jfa_label_agreement\": " << agreement.agreeing_share() << ",\n"
           << "    \"jfa_worst_excess_px\": " << agreement.worst_excess_px << ",\n"
           << "    \"jfa_worst_reward_difference\": " << worst << "\n  }\n}\n";
    } else {
      json << ",\n    \"jfa_gpu_ms\": null\n  }\n}\n";
    }
    std::cout << json.str();
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "ptypilot_kernels_bench: " << error.what() << "\n";
    return 1;
  }
}
