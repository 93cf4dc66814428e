// The simulated detector (DetectorService) driven through the real scan drivers, on loopback
// ports chosen by the OS, with frames read back by the real ZmqFrameSource.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <future>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/ingest/zmq_frame_source.hpp"
#include "ptypilot/scan_driver/point_list_driver.hpp"
#include "ptypilot/scan_driver/zmq_scan_driver.hpp"
#include "ptypilot/sim/detector_service.hpp"

namespace wire = ptypilot::wire;
using namespace ptypilot;
using namespace std::chrono_literals;

namespace {

constexpr const char* kAnyPort = "tcp://127.0.0.1:*";

// A DetectorService on its own thread; stopped and joined when it goes out of scope.
struct RunningService {
  sim::DetectorService service;
  std::jthread thread;

  RunningService(zmq::context_t& context, sim::DetectorServiceConfig config)
      : service(context, std::move(config)),
        thread([this](std::stop_token stop) { service.run(stop); }) {}
};

// graphene-small: the quick preset (64 px frames, 32 x 32 raster at 0.3 A, FOV 9.3 A).
sim::DetectorServiceConfig small_config(double dose = 1e5) {
  sim::DetectorServiceConfig config;
  config.preset = "graphene-small";
  config.dose_e_per_A2 = dose;
  config.command_endpoint = kAnyPort;
  config.data_endpoint = kAnyPort;
  return config;
}

ZmqFrameSource frame_reader(zmq::context_t& context, const sim::DetectorService& service) {
  ZmqFrameSourceConfig config;
  config.endpoint = service.bound_data_endpoint();
  return ZmqFrameSource(context, config);
}

ScanRequest request(std::string session, std::uint32_t sub_sequence, std::uint64_t first_frame,
                    std::vector<Vec2> positions) {
  ScanRequest r;
  r.session_id = std::move(session);
  r.sub_sequence = sub_sequence;
  r.first_frame_index = first_frame;
  r.positions_A = std::move(positions);
  r.dwell_s = 1e-3;
  return r;
}

// An endpoint that nobody listens on now, for a generator that is down.
std::string unused_endpoint(zmq::context_t& context) {
  zmq::socket_t socket(context, zmq::socket_type::rep);
  socket.bind(kAnyPort);
  std::string endpoint = socket.get(zmq::sockopt::last_endpoint);
  socket.close();
  return endpoint;
}

double sum(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s;
}

}  // namespace

TEST_CASE("an accepted scan command yields one frame per position, numbered from the command",
          "[sim_detector][scan_driver]") {
  zmq::context_t context;
  RunningService sim(context, small_config(1e5));
  ZmqFrameSource frames = frame_reader(context, sim.service);
  std::unique_ptr<ScanDriver> stage =
      make_sim_stage_driver(context, sim.service.bound_command_endpoint());
  CHECK(stage->name() == "sim-stage");
  CHECK(sim.service.dtype() == PixelType::kUint16);

  const std::vector<Vec2> positions = {{0.0, 0.0}, {1.5, 2.1}, {4.65, 4.65}, {9.3, 9.3},
                                       {3.0, 0.3}, {0.6, 8.1}, {7.2, 1.2}};
  const Status s = stage->submit(request("run-A", 2, 40, positions));
  REQUIRE(s.ok());

  const double electrons = sim.service.electrons_per_frame();
  CHECK(electrons == Approx(1e5 * 0.3 * 0.3));
  for (std::size_t i = 0; i < positions.size(); ++i) {
    DetectorFrame frame;
    const Status r = frames.receive(&frame, 5000ms);
    REQUIRE(r.ok());
    CHECK(frame.session_id == "run-A");
    CHECK(frame.sub_sequence == 2u);
    CHECK(frame.frame_index == 40 + i);
    CHECK(frame.position_index == i);
    CHECK(frame.position_A.y == positions[i].y);
    CHECK(frame.position_A.x == positions[i].x);
    CHECK(frame.rows == 64);
    CHECK(frame.cols == 64);
    CHECK(frame.dtype == PixelType::kUint16);
    CHECK(frame.electrons_per_frame == electrons);
    CHECK(frame.exposure_s == 1e-3);
    CHECK(frame.timestamp_ns > 0);
    // Poisson counts of a pattern that sums to one: the total is Poisson(electrons) too.
    CHECK(std::abs(sum(frame.counts) - electrons) < 6 * std::sqrt(electrons));
  }
  DetectorFrame extra;
  CHECK(frames.receive(&extra, 200ms).code() == StatusCode::kUnavailable);
  CHECK(sim.service.commands_accepted() == 1);
  CHECK(sim.service.commands_rejected() == 0);
  CHECK(sim.service.frames_sent() == positions.size());
}

TEST_CASE("noise-free frames are float32 and each sums to one", "[sim_detector]") {
  zmq::context_t context;
  RunningService sim(context, small_config(0.0));
  ZmqFrameSource frames = frame_reader(context, sim.service);
  ZmqScanDriver driver(context, {sim.service.bound_command_endpoint()});
  REQUIRE(sim.service.dtype() == PixelType::kFloat32);
  REQUIRE(driver.submit(request("run-B", 0, 0, {{1.0, 1.0}, {2.0, 5.0}})).ok());
  for (int i = 0; i < 2; ++i) {
    DetectorFrame frame;
    REQUIRE(frames.receive(&frame, 5000ms).ok());
    CHECK(frame.dtype == PixelType::kFloat32);
    CHECK(frame.electrons_per_frame == 1.0);
    CHECK(sum(frame.counts) == Approx(1.0).epsilon(1e-3));
  }
}

TEST_CASE("a command with a position outside the FOV is refused whole and produces no frames",
          "[sim_detector][scan_driver]") {
  zmq::context_t context;
  RunningService sim(context, small_config());
  ZmqFrameSource frames = frame_reader(context, sim.service);
  auto stage = make_sim_stage_driver(context, sim.service.bound_command_endpoint());

  const Status s = stage->submit(request("run-C", 0, 0, {{1.0, 1.0}, {1.0, 12.0}, {2.0, 2.0}}));
  CHECK(s.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains("refused command 1") && Catch::Contains("position 1") &&
                              Catch::Contains("outside the field of view") &&
                              Catch::Contains("graphene-small"));
  DetectorFrame frame;
  CHECK(frames.receive(&frame, 300ms).code() == StatusCode::kUnavailable);
  CHECK(sim.service.commands_rejected() == 1);
  CHECK(sim.service.frames_sent() == 0);

  const Status empty = stage->submit(request("run-C", 0, 0, {}));
  CHECK(empty.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(empty.message(), Catch::Contains("no positions"));

  // The refusals leave the generator usable; the next command is numbered on from the driver.
  REQUIRE(stage->submit(request("run-C", 0, 0, {{2.0, 2.0}})).ok());
  REQUIRE(frames.receive(&frame, 5000ms).ok());
  CHECK(frame.frame_index == 0u);
  CHECK(sim.service.commands_accepted() == 1);
}

TEST_CASE("the generator's checks name the offending position", "[sim_detector]") {
  zmq::context_t context;
  sim::DetectorService service(context, small_config());
  wire::ScanCommand command;
  CHECK_THAT(service.validate(command).message(), Catch::Contains("no positions"));
  wire::Position* p = command.add_positions();
  p->set_y_a(1.0);
  p->set_x_a(1.0);
  CHECK(service.validate(command).ok());
  p = command.add_positions();
  p->set_y_a(std::nan(""));
  CHECK(service.validate(command).code() == StatusCode::kInvalidArgument);
  CHECK_THAT(service.validate(command).message(), Catch::Contains("position 1"));
  p->set_y_a(-0.5);
  CHECK(service.validate(command).code() == StatusCode::kOutOfRange);
  p->set_y_a(0.5);
  command.set_dwell_s(-1.0);
  CHECK_THAT(service.validate(command).message(), Catch::Contains("dwell_s"));
}

TEST_CASE("a resent command (same session and id) is acknowledged again but scanned once",
          "[sim_detector]") {
  zmq::context_t context;
  RunningService sim(context, small_config());
  ZmqFrameSource frames = frame_reader(context, sim.service);
  zmq::socket_t req(context, zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.connect(sim.service.bound_command_endpoint());

  wire::ScanCommand command;
  command.set_session_id("run-D");
  command.set_command_id(7);
  wire::Position* p = command.add_positions();
  p->set_y_a(3.0);
  p->set_x_a(3.0);
  const std::string bytes = command.SerializeAsString();
  for (int attempt = 0; attempt < 2; ++attempt) {
    req.send(zmq::buffer(bytes), zmq::send_flags::none);
    zmq::message_t reply;
    REQUIRE(req.recv(reply, zmq::recv_flags::none));
    wire::ScanAck ack;
    REQUIRE(ack.ParseFromArray(reply.data(), static_cast<int>(reply.size())));
    CHECK(ack.command_id() == 7u);
    CHECK(ack.accepted());
  }
  DetectorFrame frame;
  REQUIRE(frames.receive(&frame, 5000ms).ok());
  CHECK(frames.receive(&frame, 300ms).code() == StatusCode::kUnavailable);
  CHECK(sim.service.frames_sent() == 1);
}

TEST_CASE("a generator that does not answer gives kUnavailable, and the driver recovers",
          "[sim_detector][scan_driver]") {
  zmq::context_t context;
  const std::string endpoint = unused_endpoint(context);
  ZmqScanDriver driver(context, {endpoint, 300ms});

  const auto start = std::chrono::steady_clock::now();
  const Status lost = driver.submit(request("run-E", 0, 0, {{1.0, 1.0}}));
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(lost.code() == StatusCode::kUnavailable);
  CHECK(lost.message() ==
        "scan generator at " + endpoint + " did not acknowledge command 1 within 300 ms");
  CHECK(waited >= 300ms);
  CHECK(waited < 1500ms);

  // The generator comes up on that endpoint. A REQ socket that lost its reply could never send
  // again; the driver's fresh socket can.
  sim::DetectorServiceConfig config = small_config();
  config.command_endpoint = endpoint;
  std::unique_ptr<RunningService> sim;
  for (int attempt = 0; !sim; ++attempt) {
    try {
      sim = std::make_unique<RunningService>(context, config);
    } catch (const zmq::error_t& e) {  // the port may linger a moment after the probe closed it
      if (attempt == 20) throw;
      std::this_thread::sleep_for(50ms);
    }
  }
  ZmqFrameSource frames = frame_reader(context, sim->service);
  const Status ok = driver.submit(request("run-E", 0, 0, {{1.0, 1.0}, {2.0, 2.0}}));
  REQUIRE(ok.ok());
  CHECK(driver.next_command_id() == 3u);
  DetectorFrame frame;
  REQUIRE(frames.receive(&frame, 5000ms).ok());
  CHECK(frame.frame_index == 0u);
  REQUIRE(frames.receive(&frame, 5000ms).ok());
  CHECK(frame.frame_index == 1u);
  // The lost command 1 was discarded with its socket: it never reached the generator.
  CHECK(sim->service.commands_accepted() == 1);
}

TEST_CASE("retries resend on a fresh socket and say how many attempts failed", "[scan_driver]") {
  zmq::context_t context;
  ZmqScanDriver driver(context, {unused_endpoint(context), 100ms, 2});
  const auto start = std::chrono::steady_clock::now();
  const Status s = driver.submit(request("run-F", 0, 0, {{1.0, 1.0}}));
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  CHECK(s.code() == StatusCode::kUnavailable);
  CHECK_THAT(s.message(), Catch::EndsWith("within 100 ms (3 attempts)"));
}

TEST_CASE("an acknowledgement of another command is an internal error", "[scan_driver]") {
  zmq::context_t context;
  zmq::socket_t rep(context, zmq::socket_type::rep);
  rep.set(zmq::sockopt::linger, 0);
  rep.bind(kAnyPort);
  const std::string endpoint = rep.get(zmq::sockopt::last_endpoint);
  std::jthread generator([&rep] {
    zmq::message_t request;
    if (!rep.recv(request, zmq::recv_flags::none)) return;
    wire::ScanCommand command;
    command.ParseFromArray(request.data(), static_cast<int>(request.size()));
    wire::ScanAck ack;
    ack.set_command_id(command.command_id() + 1);
    ack.set_accepted(true);
    rep.send(zmq::buffer(ack.SerializeAsString()), zmq::send_flags::none);
  });
  ZmqScanDriver driver(context, {endpoint, 2000ms});
  const Status s = driver.submit(request("run-G", 0, 0, {{1.0, 1.0}}));
  CHECK(s.code() == StatusCode::kInternal);
  CHECK_THAT(s.message(), Catch::Contains("acknowledgement of command 2"));
}

TEST_CASE("submit_async returns at once; wait_acknowledged waits as long as the caller says",
          "[scan_driver]") {
  zmq::context_t context;
  zmq::socket_t rep(context, zmq::socket_type::rep);
  rep.set(zmq::sockopt::linger, 0);
  rep.bind(kAnyPort);
  const std::string endpoint = rep.get(zmq::sockopt::last_endpoint);
  std::promise<void> release;
  std::jthread generator([&rep, answer = release.get_future()]() mutable {
    zmq::message_t request;
    if (!rep.recv(request, zmq::recv_flags::none)) return;
    answer.wait();  // a generator that is slow to acknowledge
    wire::ScanCommand command;
    command.ParseFromArray(request.data(), static_cast<int>(request.size()));
    wire::ScanAck ack;
    ack.set_command_id(command.command_id());
    ack.set_accepted(true);
    rep.send(zmq::buffer(ack.SerializeAsString()), zmq::send_flags::none);
  });
  ZmqScanDriver driver(context, {endpoint, 5000ms});
  REQUIRE(driver.submit_async(request("run-H", 0, 0, {{1.0, 1.0}})).ok());
  const Status early = driver.wait_acknowledged(50ms);
  CHECK(early.code() == StatusCode::kUnavailable);
  CHECK_THAT(early.message(), Catch::Contains("command 1; it is still pending"));
  const Status second = driver.submit_async(request("run-H", 1, 1, {{2.0, 2.0}}));
  CHECK(second.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(second.message(), Catch::Contains("command 1 is still pending"));
  release.set_value();
  CHECK(driver.wait_acknowledged(5000ms).ok());
  CHECK(driver.wait_acknowledged(10ms).code() == StatusCode::kFailedPrecondition);
  CHECK(driver.next_command_id() == 2u);  // the refused second request used no id
}

TEST_CASE("the point-list driver writes one CSV per sub-sequence, whole", "[scan_driver]") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("ptypilot-point-list-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  PointListFileDriver driver(dir);
  CHECK(driver.name() == "point-list");
  ScanRequest r = request("run-H", 3, 100, {{0.0, 0.2}, {1.25, 0.1}, {9.3, 4.65}});
  r.dwell_s = 0.002;
  REQUIRE(driver.submit(r).ok());

  const auto path = dir / "run-H_0003.csv";
  REQUIRE(driver.file_for("run-H", 3) == path);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() ==
        "index,y_A,x_A,dwell_s\n"
        "0,0,0.2,0.002\n"
        "1,1.25,0.1,0.002\n"
        "2,9.3,4.65,0.002\n");
  // Nothing else, in particular no temporary file, is left in the watched directory.
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
  CHECK(files == 1);

  const Status again = driver.submit(r);
  CHECK(again.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(again.message(), Catch::Contains("already exists"));
  CHECK(driver.submit(request("../escape", 0, 0, {{1.0, 1.0}})).code() ==
        StatusCode::kInvalidArgument);
  CHECK(driver.submit(request("run-H", 4, 0, {})).code() == StatusCode::kInvalidArgument);
  // A synchronous driver's two-step submit: the file is written at once, the answer kept.
  REQUIRE(driver.submit_async(request("run-H", 5, 0, {{1.0, 1.0}})).ok());
  CHECK(std::filesystem::exists(dir / "run-H_0005.csv"));
  CHECK(driver.submit_async(request("run-H", 6, 0, {{1.0, 1.0}})).code() ==
        StatusCode::kFailedPrecondition);
  CHECK(driver.wait_acknowledged(0ms).ok());
  REQUIRE(driver.submit_async(request("run-H", 5, 0, {{1.0, 1.0}})).ok());  // exists already
  CHECK(driver.wait_acknowledged(0ms).code() == StatusCode::kFailedPrecondition);
  CHECK_THROWS_AS(PointListFileDriver(dir / "missing"), std::invalid_argument);
  std::filesystem::remove_all(dir);
}
