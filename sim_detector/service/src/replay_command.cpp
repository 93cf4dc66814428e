// `ptypilot replay`: a recorded data set in the detector's role. The same process as
// `ptypilot sim-detector` (scan-generator protocol on the command socket, native frames on the
// data socket, the ready line), with a RecordedFrameProvider instead of the simulator.
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "ptypilot/sim/sim_commands.hpp"
#include "ptypilot/wire/command.hpp"
#include "ptypilot/sim/detector_process.hpp"
#include "ptypilot/wire/log.hpp"
#include "ptypilot/recorded/recorded_dataset.hpp"
#include "ptypilot/sim/recorded_frame_provider.hpp"

namespace ptypilot {

namespace {

nlohmann::json describe(const RecordedDataset& dataset) {
  const RecordedDatasetInfo& info = dataset.info();
  nlohmann::json d = {
      {"path", info.path.string()},        {"format", info.format},
      {"frames", dataset.frame_count()},   {"frame_shape", {info.frame_rows, info.frame_cols}},
      {"stored_dtype", info.stored_dtype}, {"dtype", to_string(info.dtype)},
      {"rotation_deg", info.rotation_deg}, {"electrons_per_frame", info.electrons_per_frame}};
  d["dose_e_per_A2"] = info.dose_e_per_A2 ? nlohmann::json(*info.dose_e_per_A2) : nlohmann::json();
  return d;
}

// With --print-config: prints the session config fragment the data set implies
// (session_config_fragment) and exits without binding. Otherwise the ready line is
//   {"event":"ready","command_endpoint":...,"data_endpoint":...,
//    "dataset":{path, format, frames, frame_shape, stored_dtype, dtype, ...},
//    "config":{"session":{"probe":{...},"raster":{...}},"detector":{"dtype":...}}}
// and at the end (SIGINT/SIGTERM) one summary line of what was served:
//   {"event":"summary","frames_served":...,"max_distance_A":...,"mean_distance_A":...,...}
int run_replay(const CliArgs& args) {
  if (!args.has("dataset"))
    throw std::invalid_argument(
        "replay needs --dataset PATH (.npy, .mib, or HDF5: a ptypilot "
        "recording, a DECTRIS master file, an EMD / py4DSTEM file)");
  std::unique_ptr<RecordedDataset> dataset = open_recorded_dataset(args.get("dataset"));
  const nlohmann::json fragment = session_config_fragment(dataset->info());
  if (args.has("print-config")) {
    std::cout << fragment.dump(2) << std::endl;
    return 0;
  }
  const nlohmann::json dataset_fields = describe(*dataset);

  sim::DetectorServiceConfig config;
  config.command_endpoint = args.get("command-endpoint");
  config.data_endpoint = args.get("data-endpoint");
  config.frame_rate_hz = args.get_double("rate");

  const sigset_t signals = block_stop_signals();
  zmq::context_t context;
  auto provider = std::make_unique<sim::RecordedFrameProvider>(std::move(dataset));
  const sim::RecordedFrameProvider& frames = *provider;
  sim::DetectorService service(context, config, std::move(provider));
  const nlohmann::json ready = {{"event", "ready"},
                                {"command_endpoint", service.bound_command_endpoint()},
                                {"data_endpoint", service.bound_data_endpoint()},
                                {"protocol", "native"},
                                {"dtype", to_string(service.dtype())},
                                {"dataset", dataset_fields},
                                {"config", fragment}};
  const int signal_number = serve_until_signalled(service, signals, ready);

  nlohmann::json summary = frames.statistics().to_json();
  summary["frames_sent"] = service.frames_sent();
  summary["commands_accepted"] = service.commands_accepted();
  summary["commands_rejected"] = service.commands_rejected();
  log::info("replay_stopped", summary);
  summary["event"] = "summary";
  std::cout << summary.dump() << std::endl;
  log::info("replay_exit", {{"signal", signal_number}});
  return 0;
}

}  // namespace

Command replay_command() {
  const sim::DetectorServiceConfig d;  // its defaults are the ones shown and used
  return {
      .name = "replay",
      .summary = "a recorded data set as detector and stage, like sim-detector",
      .description =
          "A recorded data set as detector and stage, like sim-detector: each position gets the "
          "frame of the nearest recorded position. PATH: .npy (with NAME.json), Merlin .mib (with "
          "NAME.hdr), HDF5 (ptypilot recording, DECTRIS master, EMD / py4DSTEM). Prints one JSON "
          "ready line (endpoints, the data set, the session config serve needs for it) and, at "
          "SIGINT or SIGTERM, one summary line of what was served.",
      .options = {{"dataset", "PATH", "", "the recorded data set (required)"},
                  {"command-endpoint", "EP", d.command_endpoint, "the scan-command socket"},
                  {"data-endpoint", "EP", d.data_endpoint, "the frame socket"},
                  {"rate", "HZ", default_text(d.frame_rate_hz),
                   "frames per second; 0: as fast as the reader allows"},
                  {"print-config", "", "",
                   "print the session config (probe, raster, dtype) serve needs for it, then exit"}},
      .run = run_replay};
}

}  // namespace ptypilot
