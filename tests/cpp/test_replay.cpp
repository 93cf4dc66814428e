// The detector service playing a recorded data set (RecordedFrameProvider): the scan-generator
// protocol of the simulator, and for each position the frame of the nearest recorded position,
// with where it came from in the frame header.
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <thread>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/recorded/recorded_dataset.hpp"
#include "ptypilot/ingest/zmq_frame_source.hpp"
#include "ptypilot/scan_driver/zmq_scan_driver.hpp"
#include "ptypilot/sim/detector_service.hpp"
#include "ptypilot/sim/recorded_frame_provider.hpp"
#include "recorded_fixtures.hpp"

using namespace ptypilot;
using namespace ptypilot::test;
using namespace std::chrono_literals;
namespace wire = ptypilot::wire;

namespace {

struct Replay {
  sim::DetectorService service;
  const sim::RecordedFrameProvider& frames;
  std::jthread thread;

  Replay(zmq::context_t& context, std::unique_ptr<sim::RecordedFrameProvider> provider)
      : service(context, endpoints(), std::move(provider)),
        frames(static_cast<const sim::RecordedFrameProvider&>(service.frame_provider())),
        thread([this](std::stop_token stop) { service.run(stop); }) {}

  static sim::DetectorServiceConfig endpoints() {
    sim::DetectorServiceConfig c;
    c.command_endpoint = c.data_endpoint = "tcp://127.0.0.1:*";
    return c;
  }
};

std::unique_ptr<sim::RecordedFrameProvider> npy_replay(const TempDir& dir, const Cube& c) {
  const fs::path path = dir / "scan.npy";
  write_npy_file(path, "<u2", {16, 16, 32, 32}, false, cube_bytes(c, 2, false));
  write_text(dir / "scan.json", probe_sidecar().dump());
  return std::make_unique<sim::RecordedFrameProvider>(open_recorded_dataset(path));
}

ScanRequest request(std::vector<Vec2> positions) {
  ScanRequest r;
  r.session_id = "replay-1";
  r.sub_sequence = 1;
  r.first_frame_index = 10;
  r.positions_A = std::move(positions);
  r.dwell_s = 1e-3;
  return r;
}

}  // namespace

TEST_CASE("replay answers each position with the nearest recorded frame, and says how near",
          "[replay][sim_detector]") {
  TempDir dir;
  const Cube c;
  zmq::context_t context;
  Replay replay(context, npy_replay(dir, c));
  CHECK(replay.service.dtype() == PixelType::kUint16);
  CHECK(replay.service.frame_px() == 32);
  CHECK(replay.service.electrons_per_frame() == Approx(900.0));

  zmq::socket_t pull(context, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.connect(replay.service.bound_data_endpoint());
  ZmqScanDriver driver(context, {replay.service.bound_command_endpoint(), 2000ms});

  // On the raster (step 0.3 A), between nodes, and at the FOV's far corner.
  const std::vector<Vec2> positions = {{0.0, 0.0}, {0.9, 1.5}, {0.31, 0.44},
                                       {4.5, 4.5}, {2.0, 3.1}, {0.0, 0.16}};
  const std::vector<std::size_t> nearest = {0, 3 * 16 + 5, 1 * 16 + 1, 255, 7 * 16 + 10, 1};
  REQUIRE(driver.submit(request(positions)).ok());
  double max_distance = 0, sum_distance = 0;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    INFO("position " << i);
    REQUIRE(pull.get(zmq::sockopt::rcvtimeo) == -1);
    zmq::pollitem_t item{pull.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, 5000ms) == 1);
    zmq::message_t header_part, payload;
    REQUIRE(pull.recv(header_part));
    REQUIRE(pull.recv(payload));
    wire::FrameHeader header;
    REQUIRE(header.ParseFromArray(header_part.data(), static_cast<int>(header_part.size())));
    CHECK(header.frame_index() == 10 + i);
    CHECK(header.position_index() == i);
    CHECK(header.y_a() == positions[i].y);  // the position asked for, so it matches its command
    CHECK(header.x_a() == positions[i].x);
    CHECK(header.dtype() == wire::FrameHeader::UINT16);
    REQUIRE(header.has_replay_source_frame());
    CHECK(header.replay_source_frame() == nearest[i]);
    const Vec2 recorded{static_cast<double>(nearest[i] / 16) * 0.3,
                        static_cast<double>(nearest[i] % 16) * 0.3};
    const double distance = std::hypot(recorded.y - positions[i].y, recorded.x - positions[i].x);
    CHECK(header.replay_distance_a() == Approx(distance).margin(1e-12));
    max_distance = std::max(max_distance, distance);
    sum_distance += distance;
    REQUIRE(payload.size() == 32 * 32 * 2);
    const auto* counts = static_cast<const std::uint16_t*>(payload.data());
    const std::vector<float> expected = c.frame(nearest[i]);
    bool equal = true;
    for (std::size_t p = 0; p < expected.size(); ++p) equal = equal && counts[p] == expected[p];
    CHECK(equal);
  }
  const sim::ReplayStatistics stats = replay.frames.statistics();
  CHECK(stats.frames == positions.size());
  CHECK(stats.exact == 3);
  CHECK(stats.farther_than_step == 0);
  CHECK(stats.max_distance_A == Approx(max_distance));
  CHECK(stats.mean_distance_A() == Approx(sum_distance / positions.size()));
}

TEST_CASE("replay refuses positions outside the recorded raster, naming it",
          "[replay][sim_detector]") {
  TempDir dir;
  const Cube c;
  zmq::context_t context;
  Replay replay(context, npy_replay(dir, c));
  ZmqScanDriver driver(context, {replay.service.bound_command_endpoint(), 2000ms});
  // Half a step beyond the edge is still nearest to the edge; further is another raster.
  CHECK(replay.frames.check({4.64, -0.14}).ok());
  const Status s = driver.submit(request({{1.0, 1.0}, {4.9, 1.0}}));
  CHECK(s.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains("position 1") &&
                              Catch::Contains("outside the recorded data set's 16 x 16 raster"));
  CHECK(replay.service.commands_rejected() == 1);
  const Status nan = replay.frames.check({std::nan(""), 0.0});
  CHECK(nan.code() == StatusCode::kInvalidArgument);
}

TEST_CASE("the simulator is a frame provider too: its frames say nothing of a recording",
          "[replay][sim_detector]") {
  sim::SimulatorFrameSettings settings;
  settings.preset = "graphene-small";
  sim::SimulatorFrameProvider frames(settings);
  CHECK(frames.format().rows == 64);
  CHECK(frames.format().dtype == PixelType::kUint16);
  std::vector<float> out(64 * 64);
  std::vector<sim::FrameOrigin> origins(1, {7u, 3.0});
  const std::vector<Vec2> at = {{1.0, 1.0}};
  REQUIRE(frames.frames(at, out, origins).ok());
  CHECK_FALSE(origins[0].recorded_frame.has_value());
  CHECK(origins[0].distance_A == 0.0);
  CHECK_THAT(frames.check({-1.0, 0.0}).message(), Catch::Contains("graphene-small"));
  settings.dose_e_per_A2 = 0;
  CHECK(sim::SimulatorFrameProvider(settings).format().dtype == PixelType::kFloat32);
  settings.dtype = PixelType::kUint16;
  CHECK_THROWS_WITH(sim::SimulatorFrameProvider(settings), Catch::Contains("noise-free"));
}

TEST_CASE("a recorded frame that cannot be read is not sent; the rest of the command is",
          "[replay][sim_detector]") {
  TempDir dir;
  const Cube c;
  const fs::path path = dir / "merlin.mib";
  std::vector<unsigned char> bytes = mib_bytes(c, "U16");
  bytes[7 * (384 + 2048)] = 'X';  // frame 7's header
  write_bytes(path, bytes);
  write_text(dir / "merlin.hdr", mib_acquisition_header(c.frames(), c.scan_cols));
  write_text(dir / "merlin.json", probe_sidecar().dump());
  zmq::context_t context;
  Replay replay(context, std::make_unique<sim::RecordedFrameProvider>(open_recorded_dataset(path)));
  ZmqFrameSourceConfig source;
  source.endpoint = replay.service.bound_data_endpoint();
  ZmqFrameSource frames(context, source);
  ZmqScanDriver driver(context, {replay.service.bound_command_endpoint(), 2000ms});
  REQUIRE(driver.submit(request({{0.0, 1.8}, {0.0, 2.1}, {0.0, 2.4}})).ok());  // frames 6, 7, 8
  for (std::uint64_t expected : {10u, 12u}) {
    DetectorFrame frame;
    REQUIRE(frames.receive(&frame, 5000ms).ok());
    CHECK(frame.frame_index == expected);
    CHECK(frame.counts == c.frame(expected == 10 ? 6 : 8));
  }
  DetectorFrame extra;
  CHECK(frames.receive(&extra, 300ms).code() == StatusCode::kUnavailable);
  const sim::ReplayStatistics stats = replay.frames.statistics();
  CHECK(stats.unreadable == 1);
  CHECK(replay.service.frames_sent() == 2);
}
