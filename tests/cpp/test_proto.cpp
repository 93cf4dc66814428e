// Wire-protocol tests: the generated messages round-trip, and malformed input is detected.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include <google/protobuf/util/message_differencer.h>

#include "ptypilot.pb.h"

namespace wire = ptypilot::wire;
using google::protobuf::util::MessageDifferencer;

namespace {

// A header with every field set to a non-default value, so that losing any field is visible.
wire::FrameHeader make_header() {
  wire::FrameHeader h;
  h.set_session_id("session-2024-06-01T12:00:00Z");
  h.set_sub_sequence(3);
  h.set_frame_index(123456789012ULL);
  h.set_y_a(12.5);
  h.set_x_a(-0.25);
  h.set_rows(256);
  h.set_cols(192);
  h.set_dtype(wire::FrameHeader::UINT16);
  h.set_electrons_per_frame(1.5e4);
  h.set_exposure_s(1e-3);
  h.set_timestamp_ns(1717243200123456789ULL);
  h.set_payload_bytes(256ULL * 192ULL * sizeof(std::uint16_t));
  h.set_position_index(42);
  return h;
}

}  // namespace

TEST_CASE("FrameHeader round-trips through its wire form", "[proto]") {
  const wire::FrameHeader h = make_header();
  std::string bytes;
  REQUIRE(h.SerializeToString(&bytes));
  REQUIRE(bytes.size() == h.ByteSizeLong());

  wire::FrameHeader back;
  REQUIRE(back.ParseFromString(bytes));
  CHECK(MessageDifferencer::Equals(h, back));
  CHECK(back.session_id() == "session-2024-06-01T12:00:00Z");
  CHECK(back.sub_sequence() == 3u);
  CHECK(back.frame_index() == 123456789012ULL);
  CHECK(back.y_a() == 12.5);  // doubles are carried bit-exactly (fixed64)
  CHECK(back.x_a() == -0.25);
  CHECK(back.rows() == 256u);
  CHECK(back.cols() == 192u);
  CHECK(back.dtype() == wire::FrameHeader::UINT16);
  CHECK(back.electrons_per_frame() == 1.5e4);
  CHECK(back.exposure_s() == 1e-3);
  CHECK(back.timestamp_ns() == 1717243200123456789ULL);
  CHECK(back.payload_bytes() == 256ULL * 192ULL * 2ULL);
  CHECK(back.position_index() == 42u);
}

TEST_CASE("ScanCommand and ScanAck round-trip", "[proto]") {
  wire::ScanCommand cmd;
  cmd.set_session_id("s1");
  cmd.set_sub_sequence(1);
  cmd.set_dwell_s(2.5e-4);
  cmd.set_command_id(7);
  for (int i = 0; i < 64; ++i) {
    wire::Position* p = cmd.add_positions();
    p->set_y_a(0.5 * i);
    p->set_x_a(100.0 - 0.25 * i);
  }

  const std::string bytes = cmd.SerializeAsString();
  REQUIRE_FALSE(bytes.empty());

  wire::ScanCommand back;
  REQUIRE(back.ParseFromString(bytes));
  CHECK(MessageDifferencer::Equals(cmd, back));
  CHECK(back.session_id() == "s1");
  CHECK(back.sub_sequence() == 1u);
  CHECK(back.dwell_s() == 2.5e-4);
  CHECK(back.command_id() == 7u);
  REQUIRE(back.positions_size() == 64);
  CHECK(back.positions(0).y_a() == 0.0);
  CHECK(back.positions(0).x_a() == 100.0);
  CHECK(back.positions(63).y_a() == 31.5);
  CHECK(back.positions(63).x_a() == 100.0 - 0.25 * 63);

  wire::ScanAck ack;
  ack.set_command_id(back.command_id());
  ack.set_accepted(false);
  ack.set_error("position 12 outside the FOV");
  wire::ScanAck ack_back;
  REQUIRE(ack_back.ParseFromString(ack.SerializeAsString()));
  CHECK(ack_back.command_id() == 7u);
  CHECK_FALSE(ack_back.accepted());
  CHECK(ack_back.error() == "position 12 outside the FOV");
}

TEST_CASE("ControlRequest oneof and ControlReply round-trip", "[proto]") {
  wire::ControlRequest req;
  req.mutable_configure()->set_config_json(R"({"session": {"budget": 250}})");
  wire::ControlRequest req_back;
  REQUIRE(req_back.ParseFromString(req.SerializeAsString()));
  REQUIRE(req_back.command_case() == wire::ControlRequest::kConfigure);
  CHECK(req_back.configure().config_json() == R"({"session": {"budget": 250}})");

  // Setting another member of the oneof clears the first.
  req.mutable_status();
  CHECK(req.command_case() == wire::ControlRequest::kStatus);
  CHECK_FALSE(req.has_configure());

  wire::ControlReply rep;
  rep.set_ok(true);
  rep.set_state(wire::ControlReply::RUNNING);
  rep.mutable_status()->set_frames_received(100);
  rep.mutable_status()->set_positions_issued(150);
  (*rep.mutable_status()->mutable_counters())["frames_dropped"] = 2;
  wire::ControlReply rep_back;
  REQUIRE(rep_back.ParseFromString(rep.SerializeAsString()));
  CHECK(rep_back.ok());
  CHECK(rep_back.state() == wire::ControlReply::RUNNING);
  CHECK(rep_back.status().frames_received() == 100u);
  CHECK(rep_back.status().positions_issued() == 150u);
  CHECK(rep_back.status().counters().at("frames_dropped") == 2u);
  CHECK_FALSE(rep_back.has_reconstruction());
}

TEST_CASE("Malformed FrameHeader bytes are rejected", "[proto]") {
  wire::FrameHeader h;

  SECTION("a tag with the invalid wire type 7") {
    // 0x0f = field 1, wire type 7: wire types 6 and 7 do not exist, so parsing must fail.
    CHECK_FALSE(h.ParseFromString(std::string("\x0f\x01\x02\x03", 4)));
  }

  SECTION("a tag with field number 0") {
    CHECK_FALSE(h.ParseFromString(std::string("\x00\x01", 2)));
  }

  SECTION("a length-delimited field cut short") {
    const std::string full = make_header().SerializeAsString();
    // The session id (field 1) comes first: tag 0x0a, length, then the characters. Cutting
    // inside the string must fail.
    REQUIRE(static_cast<unsigned char>(full[0]) == 0x0a);
    CHECK_FALSE(h.ParseFromString(full.substr(0, 5)));
  }

  SECTION("a varint that never terminates") {
    // Field 3 (frame_index) varint with the continuation bit set on every byte.
    CHECK_FALSE(h.ParseFromString(std::string("\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12)));
  }

  SECTION("every truncation fails or yields a detectably different header") {
    const wire::FrameHeader original = make_header();
    const std::string full = original.SerializeAsString();
    for (std::size_t n = 0; n < full.size(); ++n) {
      wire::FrameHeader cut;
      if (cut.ParseFromString(full.substr(0, n))) {
        // Protobuf accepts a prefix that ends on a field boundary; then a field is missing.
        CHECK_FALSE(MessageDifferencer::Equals(original, cut));
      }
    }
  }
}

TEST_CASE("An unknown dtype value is detectable", "[proto]") {
  // proto3 enums are open: a value from a newer sender parses, but is not a known DType.
  wire::FrameHeader h = make_header();
  h.set_dtype(static_cast<wire::FrameHeader::DType>(99));
  wire::FrameHeader back;
  REQUIRE(back.ParseFromString(h.SerializeAsString()));
  CHECK(static_cast<int>(back.dtype()) == 99);
  CHECK_FALSE(wire::FrameHeader::DType_IsValid(back.dtype()));
  CHECK(wire::FrameHeader::DType_IsValid(wire::FrameHeader::FLOAT32));
}
