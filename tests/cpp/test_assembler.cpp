#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "ptypilot/core/assembler.hpp"

using namespace ptypilot;

namespace {

std::vector<Vec2> line_of(int n, double y) {
  std::vector<Vec2> positions;
  for (int k = 0; k < n; ++k) positions.push_back({y, 0.2 * k});
  return positions;
}

// The frame the detector would send for position k of the sub-sequence; counts tag it.
DetectorFrame frame_for(const std::string& session, std::uint32_t sub, std::uint64_t first,
                        const std::vector<Vec2>& positions, std::uint32_t k) {
  DetectorFrame f;
  f.session_id = session;
  f.sub_sequence = sub;
  f.frame_index = first + k;
  f.position_index = k;
  f.position_A = positions[k];
  f.rows = 2;
  f.cols = 2;
  f.counts = {float(k), 1, 2, 3};
  return f;
}

}  // namespace

TEST_CASE("assembler completes a sub-sequence and hands it over once", "[assembler]") {
  Assembler assembler;
  const auto positions = line_of(4, 1.0);
  REQUIRE(assembler.expect("s1", 0, 0, positions).ok());
  for (std::uint32_t k = 0; k < 3; ++k)
    CHECK(assembler.add(frame_for("s1", 0, 0, positions, k)) == FrameVerdict::kAccepted);
  CHECK_FALSE(assembler.complete(0));
  CHECK(assembler.take_completed(0).empty());  // not complete: nothing, and nothing lost
  CHECK(assembler.add(frame_for("s1", 0, 0, positions, 3)) == FrameVerdict::kCompleted);
  CHECK(assembler.complete(0));
  CHECK(assembler.missing(0).empty());
  const auto frames = assembler.take_completed(0);
  REQUIRE(frames.size() == 4);
  for (std::uint32_t k = 0; k < 4; ++k) CHECK(frames[k].position_index == k);
  CHECK(assembler.take_completed(0).empty());
  CHECK(assembler.health().get("frames_accepted") == 4);
  CHECK(assembler.health().get("sub_sequences_completed") == 1);
}

TEST_CASE("assembler accepts out-of-order frames, counts them and orders the result",
          "[assembler]") {
  Assembler assembler;
  const auto positions = line_of(5, 2.0);
  REQUIRE(assembler.expect("s1", 3, 100, positions).ok());
  const std::uint32_t arrival[] = {0, 3, 1, 4, 2};
  for (int a = 0; a < 4; ++a)
    CHECK(assembler.add(frame_for("s1", 3, 100, positions, arrival[a])) == FrameVerdict::kAccepted);
  CHECK(assembler.add(frame_for("s1", 3, 100, positions, arrival[4])) == FrameVerdict::kCompleted);
  CHECK(assembler.health().get("frames_out_of_order") == 2);  // 1 after 3, 2 after 4
  const auto frames = assembler.take_completed(3);
  REQUIRE(frames.size() == 5);
  for (std::uint32_t k = 0; k < 5; ++k) {
    CHECK(frames[k].position_index == k);
    CHECK(frames[k].frame_index == 100 + k);
    CHECK(frames[k].counts[0] == float(k));
  }
}

TEST_CASE("assembler recognises duplicates, before and after completion", "[assembler]") {
  Assembler assembler;
  const auto positions = line_of(2, 0.0);
  REQUIRE(assembler.expect("s1", 0, 0, positions).ok());
  CHECK(assembler.add(frame_for("s1", 0, 0, positions, 0)) == FrameVerdict::kAccepted);
  CHECK(assembler.add(frame_for("s1", 0, 0, positions, 0)) == FrameVerdict::kDuplicate);
  CHECK(assembler.missing(0) == std::vector<std::uint32_t>{1});
  CHECK(assembler.add(frame_for("s1", 0, 0, positions, 1)) == FrameVerdict::kCompleted);
  REQUIRE(assembler.take_completed(0).size() == 2);
  CHECK(assembler.add(frame_for("s1", 0, 0, positions, 1)) == FrameVerdict::kDuplicate);
  CHECK(assembler.health().get("frames_duplicate") == 2);
  CHECK(assembler.health().get("frames_accepted") == 2);
}

TEST_CASE("assembler refuses frames it cannot place", "[assembler]") {
  Assembler assembler;
  const auto positions = line_of(3, 0.0);
  // Nothing issued yet: every session is unknown.
  CHECK(assembler.add(frame_for("s1", 0, 0, positions, 0)) == FrameVerdict::kUnknownSession);
  REQUIRE(assembler.expect("s1", 0, 0, positions).ok());
  CHECK(assembler.add(frame_for("s0", 0, 0, positions, 0)) == FrameVerdict::kUnknownSession);
  CHECK(assembler.add(frame_for("s1", 1, 3, positions, 0)) == FrameVerdict::kUnknownSubSequence);
  DetectorFrame past = frame_for("s1", 0, 0, positions, 2);
  past.position_index = 3;
  CHECK(assembler.add(past) == FrameVerdict::kUnknownPosition);
  const auto& health = assembler.health();
  CHECK(health.get("frames_unknown_session") == 2);
  CHECK(health.get("frames_unknown_sub_sequence") == 1);
  CHECK(health.get("frames_unknown_position") == 1);
  CHECK(health.get("frames_accepted") == 0);
  CHECK(assembler.missing(0) == std::vector<std::uint32_t>{0, 1, 2});
}

TEST_CASE("assembler detects a header position other than the issued one", "[assembler]") {
  Assembler assembler(AssemblerConfig{0.05});
  const auto positions = line_of(3, 1.0);
  REQUIRE(assembler.expect("s1", 0, 0, positions).ok());
  DetectorFrame near = frame_for("s1", 0, 0, positions, 0);
  near.position_A.x += 0.03;  // within the tolerance
  CHECK(assembler.add(near) == FrameVerdict::kAccepted);
  DetectorFrame off = frame_for("s1", 0, 0, positions, 1);
  off.position_A.y += 0.2;
  CHECK(assembler.add(off) == FrameVerdict::kPositionMismatch);
  DetectorFrame nan = frame_for("s1", 0, 0, positions, 1);
  nan.position_A.x = std::numeric_limits<double>::quiet_NaN();
  CHECK(assembler.add(nan) == FrameVerdict::kPositionMismatch);
  CHECK(assembler.health().get("frames_position_mismatch") == 2);
  // A mismatched frame is not placed: its slot is still missing.
  CHECK(assembler.missing(0) == std::vector<std::uint32_t>{1, 2});
  CHECK(assembler.add(frame_for("s1", 0, 0, positions, 1)) == FrameVerdict::kAccepted);
}

TEST_CASE("assembler lists what is missing, per sub-sequence", "[assembler]") {
  Assembler assembler;
  const auto a = line_of(6, 0.0);
  const auto b = line_of(2, 1.0);
  REQUIRE(assembler.expect("s1", 0, 0, a).ok());
  REQUIRE(assembler.expect("s1", 1, 6, b).ok());
  for (std::uint32_t k : {5u, 0u, 2u})
    REQUIRE(accepted(assembler.add(frame_for("s1", 0, 0, a, k))));
  CHECK(assembler.add(frame_for("s1", 1, 6, b, 1)) == FrameVerdict::kAccepted);
  CHECK(assembler.missing(0) == std::vector<std::uint32_t>{1, 3, 4});
  CHECK(assembler.missing(1) == std::vector<std::uint32_t>{0});
  CHECK(assembler.missing(7).empty());
}

TEST_CASE("assembler: expect() refuses empty and repeated sub-sequences, a new session resets",
          "[assembler]") {
  Assembler assembler;
  const auto positions = line_of(2, 0.0);
  CHECK_FALSE(assembler.expect("s1", 0, 0, {}).ok());
  REQUIRE(assembler.expect("s1", 0, 0, positions).ok());
  const Status again = assembler.expect("s1", 0, 0, positions);
  CHECK(again.code() == StatusCode::kInvalidArgument);
  CHECK(assembler.add(frame_for("s1", 0, 0, positions, 0)) == FrameVerdict::kAccepted);

  // A new session: the old incomplete sub-sequence is counted as abandoned, its frames refused.
  REQUIRE(assembler.expect("s2", 0, 0, positions).ok());
  CHECK(assembler.session() == "s2");
  CHECK(assembler.health().get("sub_sequences_abandoned") == 1);
  CHECK(assembler.add(frame_for("s1", 0, 0, positions, 1)) == FrameVerdict::kUnknownSession);
  CHECK(assembler.missing(0) == std::vector<std::uint32_t>{0, 1});
}

TEST_CASE("assembler counts an unexpected frame index but places the frame", "[assembler]") {
  Assembler assembler;
  const auto positions = line_of(2, 0.0);
  REQUIRE(assembler.expect("s1", 0, 10, positions).ok());
  DetectorFrame f = frame_for("s1", 0, 10, positions, 0);
  f.frame_index = 99;
  CHECK(assembler.add(f) == FrameVerdict::kAccepted);
  CHECK(assembler.health().get("frames_index_unexpected") == 1);
}
