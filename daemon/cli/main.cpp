// ptypilot: one command-line tool with subcommands (see README.md).
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "ptypilot/wire/log.hpp"

namespace ptypilot {
int bench_reconstruct(const std::vector<std::string>& args);
int run_serve(const std::vector<std::string>& args);
int run_ctl(const std::vector<std::string>& args);
int bench_loop(const std::vector<std::string>& args);
int run_demo(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int bench_ingest(const std::vector<std::string>& args);
}

namespace {

constexpr const char* kUsage = R"(usage: ptypilot <command> [options]

commands:
  serve [--config FILE] [--control ENDPOINT] [--events ENDPOINT] [--detector KIND://HOST:PORT]
      the daemon: the closed adaptive-scanning loop, controlled over ZMQ (see `ctl`);
      --detector zmq://, dectris-v1:// or dectris-v2:// overrides detector.kind and .endpoint
  sim-detector [--preset NAME] [--seed N] [--dose E_PER_A2] [--noise-seed N]
               [--command-endpoint EP] [--data-endpoint EP | --endpoint EP] [--rate HZ]
               [--dtype uint8|uint16|uint32|float32] [--protocol native|dectris-v1|dectris-v2]
               [--encoding bs8-lz4|bs16-lz4|bs32-lz4|lz4|none] [--header-detail basic|all|none]
               [--frames N]
      a simulated detector and stage: takes scan commands, sends frames of the forward model
      in the native protocol or a DECTRIS SIMPLON stream; --frames N runs free, like a detector
      armed for N images: one series of N raster frames, no scan commands
  replay --dataset PATH [--command-endpoint EP] [--data-endpoint EP] [--rate HZ] [--print-config]
      a recorded data set as detector and stage, like sim-detector: each position gets the frame
      of the nearest recorded position. PATH: .npy (with NAME.json), Merlin .mib (with NAME.hdr),
      HDF5 (ptypilot recording, DECTRIS master, EMD / py4DSTEM). --print-config: the session
      config (probe, raster, dtype) serve needs for it, then exit
  ctl [--endpoint EP] [--events EP] COMMAND ...
      the control client: configure FILE | start [ID] | stop | status | reconstruction FILE.npy
      | wait [SECONDS] | events [COUNT]
  demo --out DIR [--policies sparse-grid,heuristic,random,raster]
      the closed loop on this machine: sim-detector and serve as separate processes, one
      mos2-paper session per policy; pictures and report.json in DIR
  eval --out DIR [--specimen mos2-paper] [--datasets 25] [--positions 250] [--subsequences 5]
       [--policies learned,sparse-grid,random,heuristic] [--table1] [--figures N]
       [--keep-sessions] [--dataset-dir DIR]
      every strategy on held-out simulated specimens through serve and sim-detector: SSIM
      against the full raster and the truth, Q_SSIM against the sparse grid (eval.json), FRC
      (frc.png), reconstructions (fig3.png, figures/); --table1: the paper's Table 1 settings
      (table1.md, table1.json); --dataset-dir: recorded data sets instead (one file each, any
      format replay reads), through replay, against each one's full-grid reconstruction
  bench reconstruct [--backend cpu|cuda|auto] [--patterns N] [--iterations K] [--threads T]
                    [--batch B] [--loss amplitude|intensity] [--preset NAME] [--dose E_PER_A2]
      time reconstructor iterations against the FFT (FFTW or cuFFT) floor; prints one JSON object
  bench loop [--positions N] [--subsequence M] [--sessions S] [--policy KIND] [--iterations K]
             [--backend auto|cpu|cuda] [--model FILE.pt]
      decision latency of the closed loop (last frame in -> next positions accepted), p50/p99;
      --policy learned: the shipped model for the sub-sequence size (or --model)
  bench ingest [--frames N] [--shape 64x64] [--batch B] [--dir DIR]
               [--protocol dectris-v1|dectris-v2 --encoding bs16-lz4|lz4|none]
      daemon frames/s with recording against raw ZMQ frames/s, and frames lost; with
      --protocol, the DECTRIS path too, and its ratio to the native path in the same run
  version           print the version
  help              print this text
)";

// The simulated detector is a program of its own (sim_detector/), which this one never links:
// run it in this process's place, from the same directory.
int run_simulator(char** argv) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string program = (self.parent_path() / "ptypilot-sim").string();
  argv[0] = const_cast<char*>("ptypilot-sim");
  execv(program.c_str(), argv);
  std::cerr << "ptypilot: cannot run " << program << ": " << std::strerror(errno) << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // The reconstructor's OpenMP threads must not spin-wait at their barriers: on a loaded machine
  // (a training job, a second daemon) a spinning thread holds the core its peer needs, and one
  // iteration measured 240 ms instead of 20. libgomp reads OMP_WAIT_POLICY when it is loaded,
  // before main, so the process re-executes itself once with PASSIVE unless the operator chose.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure; then run as we are
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  try {
    if (command == "version") {
      std::cout << "ptypilot " << PTYPILOT_VERSION << "\n";
      return 0;
    }
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (command == "serve") return ptypilot::run_serve(rest);
    if (command == "ctl") return ptypilot::run_ctl(rest);
    if (command == "sim-detector" || command == "replay") return run_simulator(argv);
    if (command == "demo") return ptypilot::run_demo(rest);
    if (command == "eval") return ptypilot::run_eval(rest);
    if (command == "bench" && args.size() >= 2) {
      const std::vector<std::string> options(args.begin() + 2, args.end());
      if (args[1] == "reconstruct") return ptypilot::bench_reconstruct(options);
      if (args[1] == "loop") return ptypilot::bench_loop(options);
      if (args[1] == "ingest") return ptypilot::bench_ingest(options);
    }
    std::cerr << "ptypilot: unknown command '" << command << "'\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    // Startup errors end here: one structured line, one line a person can act on.
    ptypilot::log::error("command_failed", {{"command", command}, {"error", e.what()}});
    std::cerr << "ptypilot " << command << ": " << e.what() << "\n";
    return 1;
  }
}
