// `ptypilot sim-detector`: the simulated detector and stage as a process (see
// ptypilot/sim/detector_service.hpp).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <exception>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "ptypilot/sim/sim_commands.hpp"
#include "ptypilot/wire/command.hpp"
#include "ptypilot/sim/detector_process.hpp"
#include "ptypilot/wire/log.hpp"
#include "ptypilot/sim/detector_service.hpp"

namespace ptypilot {

namespace {

std::uint64_t parse_seed(const CliArgs& args, const std::string& name) {
  const long value = args.get_int(name);
  if (value < 0) throw std::invalid_argument("--" + name + " must be >= 0");
  return static_cast<std::uint64_t>(value);
}

std::optional<PixelType> parse_dtype(const CliArgs& args) {
  if (!args.has("dtype")) return std::nullopt;
  const std::string name = args.get("dtype");
  try {
    return parse_pixel_type(name);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("--dtype expects uint8, uint16, uint32 or float32, got '" + name + "'");
  }
}

StreamFormat parse_format(const CliArgs& args) {
  StreamFormat format;
  format.protocol = parse_stream_protocol(args.get("protocol"));
  if (args.has("encoding")) {
    if (format.protocol == StreamProtocol::kNative || format.protocol == StreamProtocol::kMerlin)
      throw std::invalid_argument("--encoding applies to --protocol dectris-v1 or dectris-v2; "
                                  "the native and Merlin protocols send raw pixels");
    parse_stream_encoding(args.get("encoding"), &format);
  } else {
    parse_stream_encoding("bs16-lz4", &format);  // what DECTRIS detectors send by default
  }
  format.header_detail = args.get("header-detail");
  return format;
}

// Prints one JSON line to stdout once both sockets are bound, so that a parent process can read
// the ports: {"event":"ready","command_endpoint":"tcp://127.0.0.1:5601","data_endpoint":...};
// free-running, the line has no command endpoint.
int run_sim_detector(const CliArgs& args) {
  sim::DetectorServiceConfig config;
  config.preset = args.get("preset");
  config.seed = parse_seed(args, "seed");
  config.dose_e_per_A2 = args.get_double("dose");
  config.noise_seed = parse_seed(args, "noise-seed");
  config.effects = sim::parse_experimental_effects(args.get("effects"));
  config.command_endpoint = args.get("command-endpoint");
  if (args.has("endpoint") && args.has("data-endpoint"))
    throw std::invalid_argument("--endpoint and --data-endpoint name the same socket; give one");
  config.data_endpoint = args.get("endpoint", args.get("data-endpoint"));
  config.frame_rate_hz = args.get_double("rate");
  config.dtype = parse_dtype(args);
  config.format = parse_format(args);
  const long frames = args.has("frames") ? args.get_int("frames") : 0;
  if (frames < 0) throw std::invalid_argument("--frames must be >= 1 (free-running), or absent");
  config.free_run_frames = static_cast<std::uint64_t>(frames);
  if (args.has("control-endpoint") && config.format.protocol != StreamProtocol::kMerlin)
    throw std::invalid_argument("--control-endpoint is the Merlin's control port: it applies to "
                                "--protocol merlin");
  config.merlin_control_endpoint = args.get("control-endpoint", config.merlin_control_endpoint);

  const sigset_t signals = block_stop_signals();
  zmq::context_t context;
  sim::DetectorService service(context, config);

  nlohmann::json ready = {{"event", "ready"},
                          {"data_endpoint", service.bound_data_endpoint()},
                          {"protocol", to_string(config.format.protocol)},
                          {"dtype", to_string(service.dtype())}};
  if (config.free_run_frames == 0) ready["command_endpoint"] = service.bound_command_endpoint();
  else ready["frames"] = config.free_run_frames;
  if (config.format.protocol == StreamProtocol::kDectrisV1 ||
      config.format.protocol == StreamProtocol::kDectrisV2)
    ready["encoding"] = encoding_label(config.format);
  if (!service.bound_control_endpoint().empty())
    ready["control_endpoint"] = service.bound_control_endpoint();
  const int signal_number = serve_until_signalled(service, signals, ready);
  log::info("sim_detector_exit", {{"signal", signal_number}});
  return 0;
}

}  // namespace

Command sim_detector_command() {
  // The defaults shown and used are the service's own.
  const sim::DetectorServiceConfig d;
  return {
      .name = "sim-detector",
      .summary = "a simulated detector and stage: takes scan commands, sends simulated frames",
      .description =
          "A simulated detector and stage: takes scan commands, sends frames of the forward model "
          "in the native protocol, a DECTRIS SIMPLON stream or the Merlin TCP protocol (data "
          "and control ports that the daemon connects to). --frames N runs free, like a "
          "detector armed for N images: one series of N raster frames, no scan commands. Prints "
          "one JSON ready line with the bound endpoints; runs until SIGINT or SIGTERM.",
      .options =
          {{"preset", "NAME", d.preset, "the experiment preset (specimen, probe, raster)"},
           {"seed", "N", std::to_string(d.seed), "specimen seed"},
           {"dose", "E_PER_A2", default_text(d.dose_e_per_A2),
            "electrons per square angstrom; <= 0: noise-free frames that each sum to 1"},
           {"noise-seed", "N", std::to_string(d.noise_seed), "Poisson noise seed"},
           {"effects", "KEY=VALUE,...", "",
            "experimental effects (source size, residual aberrations, jitter, drift, detector "
            "point-spread and read noise, frozen phonons): "
            "kernels/include/ptypilot/experimental_effects.hpp; none by default"},
           {"command-endpoint", "EP", d.command_endpoint, "the scan-command socket"},
           {"data-endpoint", "EP", d.data_endpoint, "the frame socket (merlin: its TCP data port)"},
           {"endpoint", "EP", "", "the same as --data-endpoint"},
           {"rate", "HZ", default_text(d.frame_rate_hz),
            "frames per second; 0: as fast as the simulation and the reader allow"},
           {"dtype", "uint8|uint16|uint32|float32", "",
            "pixel type (default: the bitshuffle encoding's width, else uint16 counts, float32 "
            "when noise-free; merlin: uint8, uint16 or uint32, sent as U08, U16, U32)"},
           {"protocol", "native|dectris-v1|dectris-v2|merlin", to_string(d.format.protocol),
            "wire protocol"},
           {"control-endpoint", "EP", d.merlin_control_endpoint,
            "merlin: the control port (SET, GET, CMD STARTACQUISITION / STOPACQUISITION)"},
           {"encoding", "bs8-lz4|bs16-lz4|bs32-lz4|lz4|none", "",
            "DECTRIS pixel encoding (default: bs16-lz4, what DECTRIS detectors send)"},
           {"header-detail", "basic|all|none", d.format.header_detail, "DECTRIS series header"},
           {"frames", "N", "", "free-running: one series of N raster frames, no scan commands"}},
      .run = run_sim_detector};
}

sigset_t block_stop_signals() {
  // SIGINT/SIGTERM are blocked in every thread (ZMQ's included, which inherit the mask) and
  // taken synchronously by sigwait in serve_until_signalled: no handler runs in the middle of a
  // ZMQ call, and the stop request is made from an ordinary thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0)
    throw std::runtime_error("could not block SIGINT/SIGTERM");
  return signals;
}

int serve_until_signalled(sim::DetectorService& service, const sigset_t& signals,
                          const nlohmann::json& ready) {
  std::cout << ready.dump() << std::endl;  // flushed: the parent is waiting for this line

  std::exception_ptr failure;
  std::jthread worker([&](std::stop_token stop) {
    try {
      service.run(stop);
    } catch (...) {
      failure = std::current_exception();
      // Wake the sigwait below; process-directed, so the main thread receives it.
      ::kill(::getpid(), SIGTERM);
    }
  });

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  worker.request_stop();
  worker.join();
  if (failure) std::rethrow_exception(failure);
  return signal_number;
}

}  // namespace ptypilot
