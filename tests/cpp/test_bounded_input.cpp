// Bounded input: a frame message larger than the configured shape allows is dropped by libzmq
// before the daemon holds it (ZMQ_MAXMSGSIZE), and the stream goes on; a recorder directory
// cannot leave the recorder root.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/core/config.hpp"
#include "ptypilot/ingest/zmq_frame_source.hpp"
#include "ptypilot/wire/counters.hpp"

using namespace ptypilot;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

wire::FrameHeader header_8x6(std::uint64_t frame_index) {
  wire::FrameHeader h;
  h.set_session_id("bounded");
  h.set_frame_index(frame_index);
  h.set_rows(8);
  h.set_cols(6);
  h.set_dtype(wire_dtype(PixelType::kUint16));
  h.set_payload_bytes(8 * 6 * 2);
  return h;
}

}  // namespace

TEST_CASE("frame_part_limit is one frame of the configured shape and dtype plus 64 KiB",
          "[ingest]") {
  CHECK(frame_part_limit(8, 6, PixelType::kUint16) == 8 * 6 * 2 + 65536);
  CHECK(frame_part_limit(64, 64, PixelType::kFloat32) == 64 * 64 * 4 + 65536);
  // An open shape or dtype: the largest frame any source accepts.
  CHECK(frame_part_limit(0, 0, std::nullopt) == 4096LL * 4096 * 4 + 65536);
}

TEST_CASE("ZmqFrameSource: a 64 MiB message is dropped unread and the next frames are taken",
          "[ingest]") {
  zmq::context_t ctx;
  zmq::socket_t detector(ctx, zmq::socket_type::push);
  detector.set(zmq::sockopt::linger, 0);
  detector.bind("tcp://127.0.0.1:*");
  ZmqFrameSourceConfig config;
  config.endpoint = detector.get(zmq::sockopt::last_endpoint);
  config.expected_rows = 8;
  config.expected_cols = 6;
  config.expected_dtype = PixelType::kUint16;
  ZmqFrameSource source(ctx, config);

  // A valid header with a 64 MiB payload: without the limit the source receives it whole (64 MiB
  // of the daemon's memory) and rejects it as frames_payload_size_mismatch.
  const std::string header = header_8x6(0).SerializeAsString();
  REQUIRE(detector.send(zmq::buffer(header), zmq::send_flags::sndmore));
  REQUIRE(detector.send(zmq::message_t(std::size_t{64} << 20), zmq::send_flags::none));

  // libzmq drops the connection that carried it, with whatever was queued behind it, and the
  // source reconnects; a detector resends, as this one does, until a frame gets through.
  const std::vector<char> payload(8 * 6 * 2, 1);
  DetectorFrame frame;
  Status received(StatusCode::kUnavailable, "nothing sent yet");
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (std::uint64_t i = 1; !received.ok() && std::chrono::steady_clock::now() < deadline; ++i) {
    const std::string h = header_8x6(i).SerializeAsString();
    detector.send(zmq::buffer(h), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    detector.send(zmq::buffer(payload), zmq::send_flags::dontwait);
    received = source.receive(&frame, 100ms);
    INFO(received.to_string());
    REQUIRE((received.ok() || received.code() == StatusCode::kUnavailable));
  }
  REQUIRE(received.ok());
  CHECK(frame.rows == 8);
  CHECK(source.health().get(counters::kFramesPayloadSizeMismatch) == 0);
  CHECK(source.health().get(counters::kFrameStreamDisconnects) >= 1);
}

TEST_CASE("confine_directory keeps the recorder's directory inside the root", "[config]") {
  const fs::path base = fs::temp_directory_path() / ("ptypilot-root-" + std::to_string(getpid()));
  fs::remove_all(base);
  const fs::path root = base / "root";
  fs::create_directories(root);
  fs::create_directories(base / "outside");
  fs::create_directory_symlink(base / "outside", root / "escape");
  const fs::path canonical_root = fs::canonical(root);
  const auto confine = [&](const std::string& d) {
    return confine_directory(canonical_root, d, "recorder.directory");
  };

  CHECK(confine("sessions") == canonical_root / "sessions");
  CHECK(confine("a/../b/c") == canonical_root / "b" / "c");
  CHECK(confine((root / "x").string()) == canonical_root / "x");
  CHECK(confine("") == canonical_root);
  for (const std::string outside : {std::string("../outside"), std::string("a/../../outside"),
                                    (base / "outside").string(), std::string("/etc"),
                                    std::string("escape/sessions"), root.string() + "-sibling"}) {
    INFO(outside);
    CHECK_THROWS_WITH(confine(outside), Catch::Contains("recorder.directory") &&
                                            Catch::Contains("outside the recorder root") &&
                                            Catch::Contains("--recorder-root"));
  }
  CHECK_FALSE(fs::exists(root / "sessions"));  // resolving creates nothing
  CHECK_FALSE(fs::exists(base / "outside" / "sessions"));
  fs::remove_all(base);
}
