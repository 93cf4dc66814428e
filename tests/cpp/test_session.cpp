// Session, the closed loop, driven directly: a fake reconstructor, policy, scan driver and
// recorder stand in for the real ones, and the frames are built as a detector would send them
// for each request the driver received. One shared call log shows the order of the loop's steps.
#include <catch2/catch.hpp>

#include <algorithm>

#include <cmath>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ptypilot/app/live_feed.hpp"
#include "ptypilot/core/config.hpp"
#include "ptypilot/core/session.hpp"

namespace ptypilot {
namespace {

constexpr int kWindow = 16;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A 4 x 4 raster of 1 A steps: Safety's FOV is [0, 3] x [0, 3] A, it snaps to whole Angstroms
// and treats anything within 0.5 A of a visited position as a repeat.
ServeConfig small_config(int total_positions, int sub_sequence_size) {
  return parse_serve_config(nlohmann::json{
      {"session",
       {{"probe", {{"window_px", kWindow}}},
        {"raster", {{"rows", 4}, {"cols", 4}, {"step_A", 1.0}}},
        {"total_positions", total_positions},
        {"sub_sequence_size", sub_sequence_size},
        {"dwell_s", 0.002}}},
      {"reconstruction", {{"backend", "cpu"}, {"iterations_per_update", 3}}}});
}

bool same(Vec2 a, Vec2 b) { return a.y == b.y && a.x == b.x; }

bool same(const std::vector<Vec2>& a, const std::vector<Vec2>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}

RealImage fixed_phase() { return RealImage(2, 3, std::vector<float>{0.5f, -1.0f, 2.0f, 0.0f, 3.5f, 1.25f}); }

struct PolicyCall {
  int sub_sequence = -1;
  int count = 0;
  int total_positions = 0;
  std::vector<Vec2> visited;
  std::vector<float> dark_field;
  bool had_potential = false;
  std::vector<float> potential;
  double dose_e_per_A2 = 0;
};

// What the fakes saw; owned by the test, the fakes are owned by the Session.
struct Calls {
  std::vector<std::string> order;
  std::vector<std::vector<std::uint64_t>> added_ids;
  std::vector<std::vector<Vec2>> added_positions;
  std::vector<int> iterations;
  std::deque<std::vector<Vec2>> proposals;  // scripted; once spent, unvisited raster nodes
  std::deque<Status> propose_results;       // scripted; once spent, Ok
  std::deque<std::string> warnings;          // scripted: a warning of this code per call
  std::vector<PolicyCall> policy_calls;
  std::vector<ScanRequest> requests;
  std::deque<Status> submit_results;  // scripted; once spent, Ok
  std::vector<SubSequenceRecord> records;
  Status record_result;
  std::deque<double> page_cpu_s;  // scripted readings of the live page's CPU clock; once spent, 0
};

class FakeReconstructor : public Reconstructor {
 public:
  explicit FakeReconstructor(Calls& calls) : calls_(calls) {}
  Status add_frames(std::span<const Frame> frames) override {
    calls_.order.push_back("add_frames");
    std::vector<std::uint64_t> ids;
    std::vector<Vec2> positions;
    for (const Frame& f : frames) {
      if (f.counts.size() != std::size_t(kWindow) * kWindow) return invalid_argument("bad frame size");
      ids.push_back(f.id);
      positions.push_back(f.position_A);
    }
    calls_.added_ids.push_back(ids);
    calls_.added_positions.push_back(positions);
    return Status::Ok();
  }
  Status iterate(int iterations) override {
    calls_.order.push_back("iterate");
    calls_.iterations.push_back(iterations);
    return Status::Ok();
  }
  Potential snapshot() const override {
    Potential p;
    p.phase_rad = fixed_phase();
    return p;
  }
  Status set_potential(const RealImage&) override { return Status::Ok(); }
  std::string_view backend() const override { return "fake"; }

 private:
  Calls& calls_;
};

class FakePolicy : public Policy {
 public:
  explicit FakePolicy(Calls& calls) : calls_(calls) {}
  void reset(std::uint64_t) override {}
  Status propose(const PolicyContext& c, std::vector<Vec2>* positions) override {
    calls_.order.push_back("propose");
    positions->clear();
    PolicyCall call;
    call.sub_sequence = c.sub_sequence;
    call.count = c.count;
    call.total_positions = c.total_positions;
    call.visited.assign(c.visited_A.begin(), c.visited_A.end());
    call.dark_field.assign(c.dark_field_fraction.begin(), c.dark_field_fraction.end());
    call.had_potential = c.potential != nullptr;
    if (c.potential) call.potential = c.potential->phase_rad.vector();
    call.dose_e_per_A2 = c.dose_e_per_A2;
    calls_.policy_calls.push_back(call);
    if (!calls_.warnings.empty()) {
      if (!calls_.warnings.front().empty())
        c.warnings->push_back({calls_.warnings.front(), "told", R"({"n": 1})"});
      calls_.warnings.pop_front();
    }
    if (!calls_.propose_results.empty()) {
      Status s = calls_.propose_results.front();
      calls_.propose_results.pop_front();
      if (!s.ok()) return s;
    }
    if (!calls_.proposals.empty()) {
      *positions = calls_.proposals.front();
      calls_.proposals.pop_front();
      return Status::Ok();
    }
    for (int r = 0; r < c.raster.rows && int(positions->size()) < c.count; ++r)
      for (int k = 0; k < c.raster.cols && int(positions->size()) < c.count; ++k) {
        const Vec2 node{r * c.raster.step_A, k * c.raster.step_A};
        bool visited = false;
        for (Vec2 v : c.visited_A) visited = visited || same(v, node);
        if (!visited) positions->push_back(node);
      }
    return Status::Ok();
  }
  std::string_view name() const override { return "fake-policy"; }

 private:
  Calls& calls_;
};

class FakeDriver : public ScanDriver {
 public:
  explicit FakeDriver(Calls& calls) : calls_(calls) {}
  Status submit(const ScanRequest& request) override {
    calls_.order.push_back("submit");
    calls_.requests.push_back(request);
    if (calls_.submit_results.empty()) return Status::Ok();
    Status s = calls_.submit_results.front();
    calls_.submit_results.pop_front();
    return s;
  }
  std::string_view name() const override { return "fake-stage"; }

 private:
  Calls& calls_;
};

// Holds the calls the fakes write into, so it stays where it was built.
struct Loop {
  Loop(int total_positions, int sub_sequence_size, std::string id = "s1")
      : Loop(small_config(total_positions, sub_sequence_size), std::move(id)) {}
  Loop(ServeConfig serve_config, std::string id) : config(std::move(serve_config)) {
    Session::Parts parts;
    parts.reconstructor = std::make_unique<FakeReconstructor>(calls);
    parts.policy = std::make_unique<FakePolicy>(calls);
    parts.driver = std::make_unique<FakeDriver>(calls);
    parts.record_sub_sequence = [this](const SubSequenceRecord& r) {
      calls.order.push_back("record");
      if (!calls.record_result.ok()) return calls.record_result;
      calls.records.push_back(r);
      return Status::Ok();
    };
    parts.live_page_cpu_seconds = [this] {
      if (calls.page_cpu_s.empty()) return 0.0;
      const double s = calls.page_cpu_s.front();
      calls.page_cpu_s.pop_front();
      return s;
    };
    session = std::make_unique<Session>(config, std::move(id), std::move(parts), health);
  }
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  ServeConfig config;
  Calls calls;
  HealthCounters health;
  std::unique_ptr<Session> session;
};

// Each frame's dark-field fraction names its index, so a test sees which slot it went to.
float dark_fraction_of(std::uint64_t frame_index) { return static_cast<float>(frame_index % 4) / 4.0f; }

// Frame k of a request: its counts split between the centre of the bright-field disk and the
// corner, outside it, in the proportion dark_fraction_of(frame_index).
DetectorFrame frame_for(const ScanRequest& request, std::uint32_t k) {
  DetectorFrame f;
  f.session_id = request.session_id;
  f.sub_sequence = request.sub_sequence;
  f.frame_index = request.first_frame_index + k;
  f.position_index = k;
  f.position_A = request.positions_A.at(k);
  f.rows = f.cols = kWindow;
  f.dtype = PixelType::kUint16;
  f.counts.assign(std::size_t(kWindow) * kWindow, 0.0f);
  const float dark = dark_fraction_of(f.frame_index);
  f.counts[std::size_t(kWindow / 2) * kWindow + kWindow / 2] = 100.0f * (1.0f - dark);
  f.counts[0] = 100.0f * dark;
  return f;
}

std::vector<DetectorFrame> frames_for(const ScanRequest& request) {
  std::vector<DetectorFrame> frames;
  for (std::uint32_t k = 0; k < request.positions_A.size(); ++k) frames.push_back(frame_for(request, k));
  return frames;
}

Status deliver(Session& session, std::vector<DetectorFrame> frames) { return session.on_frames(frames); }

}  // namespace

TEST_CASE("start() sends the policy's first proposal through Safety to the driver", "[session]") {
  Loop loop(10, 4);
  loop.calls.proposals.push_back({{0.2, 0.1}, {1, 1}, {5, 2}, {2, 2.4}});
  REQUIRE(loop.session->start().ok());

  CHECK(loop.calls.order == std::vector<std::string>{"propose", "submit"});
  REQUIRE(loop.calls.policy_calls.size() == 1);
  const PolicyCall& call = loop.calls.policy_calls[0];
  CHECK(call.sub_sequence == 0);
  CHECK(call.count == 4);
  CHECK(call.total_positions == 10);
  CHECK(call.visited.empty());
  CHECK_FALSE(call.had_potential);

  REQUIRE(loop.calls.requests.size() == 1);
  const ScanRequest& r = loop.calls.requests[0];
  CHECK(r.session_id == "s1");
  CHECK(r.sub_sequence == 0);
  CHECK(r.first_frame_index == 0);
  CHECK(r.dwell_s == 0.002);
  // Snapped to the raster, the one outside the FOV clamped to its edge.
  CHECK(same(r.positions_A, {{0, 0}, {1, 1}, {3, 2}, {2, 2}}));

  CHECK(loop.session->positions_issued() == 4);
  CHECK(loop.session->waiting_for_frames());
  CHECK_FALSE(loop.session->done());
  CHECK(loop.session->reports().empty());
  CHECK(loop.calls.added_ids.empty());
  CHECK(loop.health.get("positions_requested") == 4);
  CHECK(loop.health.get("positions_approved") == 4);
  CHECK(loop.health.get("positions_clamped") == 1);
  CHECK(loop.health.get("positions_snapped") == 2);
}

TEST_CASE("a completed sub-sequence is reconstructed, then the next positions go to the driver",
          "[session]") {
  Loop loop(10, 4);
  REQUIRE(loop.session->start().ok());
  REQUIRE(loop.calls.requests.size() == 1);
  const ScanRequest first = loop.calls.requests[0];
  loop.calls.order.clear();

  REQUIRE(deliver(*loop.session, frames_for(first)).ok());

  CHECK(loop.calls.order ==
        std::vector<std::string>{"add_frames", "iterate", "propose", "submit", "record"});
  REQUIRE(loop.calls.added_ids.size() == 1);
  CHECK(loop.calls.added_ids[0] == std::vector<std::uint64_t>{0, 1, 2, 3});
  CHECK(same(loop.calls.added_positions[0], first.positions_A));
  CHECK(loop.calls.iterations == std::vector<int>{3});

  REQUIRE(loop.calls.policy_calls.size() == 2);
  const PolicyCall& call = loop.calls.policy_calls[1];
  CHECK(call.sub_sequence == 1);
  CHECK(call.count == 4);
  CHECK(same(call.visited, first.positions_A));
  CHECK(call.dark_field == std::vector<float>{0.0f, 0.25f, 0.5f, 0.75f});
  CHECK(call.had_potential);
  CHECK(call.potential == fixed_phase().vector());

  REQUIRE(loop.calls.requests.size() == 2);
  const ScanRequest& next = loop.calls.requests[1];
  CHECK(next.sub_sequence == 1);
  CHECK(next.first_frame_index == 4);
  CHECK(same(next.positions_A, {{1, 0}, {1, 1}, {1, 2}, {1, 3}}));

  REQUIRE(loop.session->reports().size() == 1);
  const SubSequenceReport& report = loop.session->reports()[0];
  CHECK(report.sub_sequence == 0);
  CHECK(report.positions == 4);
  CHECK(report.frames_received == 4);
  CHECK(report.issued_next);
  CHECK(report.safety.requested == 4);
  CHECK(report.safety.approved == 4);

  REQUIRE(loop.calls.records.size() == 1);
  const SubSequenceRecord& record = loop.calls.records[0];
  CHECK(record.index == 0);
  CHECK(same(record.proposed_A, first.positions_A));
  CHECK(same(record.approved_A, first.positions_A));
  CHECK(record.potential.vector() == fixed_phase().vector());

  CHECK(loop.session->sub_sequences_done() == 1);
  CHECK(loop.session->frames_received() == 4);
  CHECK(loop.session->waiting_for_frames());
  CHECK_FALSE(loop.session->done());
}

TEST_CASE("each decision reports the CPU time the live page's thread took inside it", "[session]") {
  Loop loop(12, 4);
  REQUIRE(loop.session->start().ok());
  // Read before the update and after the hand-off. In the second decision the page's thread has
  // ended, and its clock reads 0: the report says 0, never less.
  loop.calls.page_cpu_s = {10.0, 10.0025, 10.0025, 0.0};
  REQUIRE(deliver(*loop.session, frames_for(loop.calls.requests.at(0))).ok());
  REQUIRE(deliver(*loop.session, frames_for(loop.calls.requests.at(1))).ok());
  REQUIRE(loop.session->reports().size() == 2);
  CHECK(loop.session->reports()[0].latency.live_page_cpu_ms == Approx(2.5));
  CHECK(loop.session->reports()[1].latency.live_page_cpu_ms == 0.0);
  CHECK(loop.calls.page_cpu_s.empty());  // twice a decision, no more
}

TEST_CASE("the position budget ends the session", "[session]") {
  Loop loop(10, 4);
  REQUIRE(loop.session->start().ok());
  for (int round = 0; round < 5 && !loop.session->done(); ++round)
    REQUIRE(deliver(*loop.session, frames_for(loop.calls.requests.back())).ok());

  REQUIRE(loop.session->done());
  CHECK_FALSE(loop.session->waiting_for_frames());
  REQUIRE(loop.calls.requests.size() == 3);
  CHECK(loop.calls.requests[0].positions_A.size() == 4);
  CHECK(loop.calls.requests[1].positions_A.size() == 4);
  CHECK(loop.calls.requests[2].positions_A.size() == 2);
  CHECK(loop.calls.requests[2].first_frame_index == 8);
  CHECK(loop.calls.policy_calls.size() == 3);
  CHECK(loop.calls.policy_calls[2].count == 2);

  REQUIRE(loop.session->reports().size() == 3);
  CHECK(loop.session->reports()[1].issued_next);
  CHECK_FALSE(loop.session->reports()[2].issued_next);
  CHECK(loop.session->reports()[2].frames_received == 10);
  REQUIRE(loop.calls.records.size() == 3);
  CHECK(loop.calls.records[2].index == 2);
  CHECK(loop.session->positions_issued() == 10);
  CHECK(loop.session->sub_sequences_done() == 3);
  CHECK(loop.session->visited_positions().size() == 10);

  // A late repeat is counted and goes nowhere.
  REQUIRE(deliver(*loop.session, frames_for(loop.calls.requests.back())).ok());
  CHECK(loop.health.get("frames_after_session_end") == 2);
  CHECK(loop.calls.added_ids.size() == 3);
  CHECK(loop.calls.requests.size() == 3);
}

TEST_CASE("stop() ends the session once the sub-sequence in flight is in", "[session]") {
  Loop loop(10, 4);
  REQUIRE(loop.session->start().ok());
  loop.session->stop();
  CHECK(loop.session->waiting_for_frames());
  CHECK_FALSE(loop.session->done());

  std::vector<DetectorFrame> frames = frames_for(loop.calls.requests[0]);
  REQUIRE(deliver(*loop.session, {frames[0], frames[1]}).ok());
  CHECK_FALSE(loop.session->done());
  REQUIRE(deliver(*loop.session, {frames[2], frames[3]}).ok());

  CHECK(loop.session->done());
  CHECK(loop.calls.requests.size() == 1);
  CHECK(loop.calls.policy_calls.size() == 1);
  CHECK(loop.calls.added_ids.size() == 1);  // what arrived is still reconstructed and recorded
  CHECK(loop.calls.records.size() == 1);
  REQUIRE(loop.session->reports().size() == 1);
  CHECK_FALSE(loop.session->reports()[0].issued_next);
  CHECK(loop.session->positions_issued() == 4);
}

TEST_CASE("a scan driver that refuses or times out fails the session with its status",
          "[session]") {
  Loop loop(10, 4);
  SECTION("refused at start") {
    loop.calls.submit_results.push_back({StatusCode::kFailedPrecondition, "list refused"});
    const Status s = loop.session->start();
    CHECK(s.code() == StatusCode::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains("scan driver fake-stage") && Catch::Contains("list refused"));
    CHECK(loop.calls.requests.size() == 1);
    CHECK_FALSE(loop.session->waiting_for_frames());  // nothing will arrive for a refused list
  }
  SECTION("no acknowledgement for the second sub-sequence") {
    loop.calls.submit_results.push_back(Status::Ok());
    loop.calls.submit_results.push_back({StatusCode::kUnavailable, "no ack within 2 s"});
    REQUIRE(loop.session->start().ok());
    const Status s = deliver(*loop.session, frames_for(loop.calls.requests[0]));
    CHECK(s.code() == StatusCode::kUnavailable);
    CHECK_THAT(s.message(), Catch::Contains("scan driver fake-stage") && Catch::Contains("no ack within 2 s"));
    CHECK(loop.calls.requests.size() == 2);
    CHECK(loop.calls.added_ids.size() == 1);
    CHECK(loop.session->reports().empty());
  }
}

TEST_CASE("a recorder failure fails the session with its status", "[session]") {
  Loop loop(10, 4);
  loop.calls.record_result = {StatusCode::kInternal, "disk full while writing sub-sequence 0"};
  REQUIRE(loop.session->start().ok());
  const Status s = deliver(*loop.session, frames_for(loop.calls.requests[0]));
  CHECK(s.code() == StatusCode::kInternal);
  CHECK(s.message() == "disk full while writing sub-sequence 0");
  CHECK(loop.calls.records.empty());
  CHECK(loop.session->reports().empty());
  CHECK(loop.calls.order.back() == "record");
}

TEST_CASE("Safety drops and clamps bad proposals and the session counts them", "[session]") {
  Loop loop(5, 3);
  loop.calls.proposals.push_back({{kNaN, 1}, {1, kInf}, {-3, -3}, {0.1, 0.0}, {1, 7}, {2, 2}});
  loop.calls.proposals.push_back({{2, 2}, {0, 1}, {0, 2}, {0, 3}});
  REQUIRE(loop.session->start().ok());

  REQUIRE(loop.calls.requests.size() == 1);
  // (-3, -3) clamped to (0, 0); (0.1, 0) snaps onto it, a repeat; (1, 7) clamped to (1, 3).
  CHECK(same(loop.calls.requests[0].positions_A, {{0, 0}, {1, 3}, {2, 2}}));
  CHECK(loop.health.get("positions_requested") == 6);
  CHECK(loop.health.get("positions_approved") == 3);
  CHECK(loop.health.get("positions_non_finite") == 2);
  CHECK(loop.health.get("positions_clamped") == 2);
  CHECK(loop.health.get("positions_snapped") == 1);
  CHECK(loop.health.get("positions_deduplicated") == 1);

  // The live page's view of what went out: every proposal Safety dropped or clamped, in order;
  // the snapped one that went out unchanged in effect, and the untouched one, are not listed.
  const LiveSubSequence live = live_issued(*loop.session, 0);  // FOV [0, 3] x [0, 3] A
  CHECK(same(live.approved_A, loop.calls.requests[0].positions_A));
  REQUIRE(live.changed.size() == 5);
  const std::vector<std::string> verdicts = {"non_finite", "non_finite", "clamped", "deduplicated",
                                             "clamped"};
  for (std::size_t i = 0; i < verdicts.size(); ++i) CHECK(live.changed[i].verdict == verdicts[i]);
  CHECK(!live.changed[0].proposed_A);
  CHECK(same(*live.changed[2].proposed_A, {-3, -3}));
  CHECK(same(*live.changed[2].placed_A, {0, 0}));
  CHECK(same(*live.changed[3].placed_A, {0, 0}));  // where it would have gone: a repeat
  CHECK(same(*live.changed[4].placed_A, {1, 3}));

  // Two positions remain: (2, 2) was visited, and the last one is over the budget.
  REQUIRE(deliver(*loop.session, frames_for(loop.calls.requests[0])).ok());
  CHECK(loop.calls.policy_calls[1].count == 2);
  REQUIRE(loop.calls.requests.size() == 2);
  CHECK(same(loop.calls.requests[1].positions_A, {{0, 1}, {0, 2}}));
  REQUIRE(loop.session->reports().size() == 1);
  const SafetyReport& safety = loop.session->reports()[0].safety;
  CHECK(safety.requested == 4);
  CHECK(safety.approved == 2);
  CHECK(safety.deduplicated == 1);
  CHECK(safety.over_budget == 1);
  CHECK(loop.health.get("positions_deduplicated") == 2);
  CHECK(loop.health.get("positions_over_budget") == 1);

  REQUIRE(loop.calls.records.size() == 1);
  CHECK(loop.calls.records[0].proposed_A.size() == 6);
  CHECK(std::isnan(loop.calls.records[0].proposed_A[0].y));
  CHECK(same(loop.calls.records[0].approved_A, loop.calls.requests[0].positions_A));

  REQUIRE(deliver(*loop.session, frames_for(loop.calls.requests[1])).ok());
  CHECK(loop.session->done());
  CHECK(loop.session->positions_issued() == 5);
}

TEST_CASE("a policy that proposes nothing usable ends the session", "[session]") {
  Loop loop(10, 4);
  SECTION("at start") {
    loop.calls.proposals.push_back({{kNaN, 0}, {0, kNaN}});
    REQUIRE(loop.session->start().ok());
    CHECK(loop.calls.requests.empty());
    CHECK(loop.health.get("sub_sequences_empty") == 1);
    CHECK(loop.health.get("positions_non_finite") == 2);
    CHECK_FALSE(loop.session->waiting_for_frames());
    CHECK(loop.session->done());  // no frame will ever come to end it
  }
  SECTION("after a sub-sequence: only repeats") {
    loop.calls.proposals.push_back({{0, 0}, {0, 1}, {0, 2}, {0, 3}});
    loop.calls.proposals.push_back({{0, 0}, {0, 1.2}, {0.3, 2}});
    REQUIRE(loop.session->start().ok());
    REQUIRE(deliver(*loop.session, frames_for(loop.calls.requests[0])).ok());
    CHECK(loop.calls.requests.size() == 1);
    CHECK(loop.health.get("sub_sequences_empty") == 1);
    CHECK(loop.health.get("positions_deduplicated") == 3);
    REQUIRE(loop.session->reports().size() == 1);
    CHECK_FALSE(loop.session->reports()[0].issued_next);
    CHECK(loop.calls.records.size() == 1);
    CHECK(loop.session->done());
  }
}

TEST_CASE("a policy that fails fails the session with its reason", "[session]") {
  Loop loop(10, 4);
  const Status failure{StatusCode::kInternal, "model m.pt failed on sub-sequence 1: shape mismatch"};
  SECTION("at start") {
    loop.calls.propose_results.push_back(failure);
    const Status s = loop.session->start();
    CHECK(s.code() == StatusCode::kInternal);
    CHECK(s.message() == "policy fake-policy: " + failure.message());
    CHECK(loop.calls.requests.empty());
    CHECK_FALSE(loop.session->waiting_for_frames());
    CHECK(loop.health.get("sub_sequences_empty") == 0);  // not taken for a finished scan
  }
  SECTION("after a sub-sequence: nothing more is issued") {
    loop.calls.propose_results.push_back(Status::Ok());
    loop.calls.propose_results.push_back(failure);
    REQUIRE(loop.session->start().ok());
    std::vector<DetectorFrame> frames = frames_for(loop.calls.requests[0]);
    const Status s = deliver(*loop.session, frames);
    CHECK(s.code() == StatusCode::kInternal);
    CHECK_THAT(s.message(), Catch::StartsWith("policy fake-policy: ") &&
                                Catch::Contains("shape mismatch"));
    CHECK(loop.calls.requests.size() == 1);
    CHECK(loop.calls.records.empty());
    CHECK(loop.session->reports().empty());
    CHECK(loop.health.get("sub_sequences_empty") == 0);
    CHECK(loop.health.get("positions_requested") == 4);  // the first sub-sequence only

    // Frames that still arrive (a repeat of the first sub-sequence) ask the policy nothing.
    REQUIRE(deliver(*loop.session, frames).ok());
    CHECK(loop.calls.policy_calls.size() == 2);
    CHECK(loop.calls.requests.size() == 1);
  }
}

TEST_CASE("frames out of order, in pieces and twice complete a sub-sequence once", "[session]") {
  Loop loop(10, 4);
  REQUIRE(loop.session->start().ok());
  std::vector<DetectorFrame> f = frames_for(loop.calls.requests[0]);

  REQUIRE(deliver(*loop.session, {f[3], f[1]}).ok());
  CHECK(loop.calls.added_ids.empty());
  CHECK(loop.session->missing_description() == "2 frame(s) outstanding; sub-sequence 0 lacks positions 0 2");

  REQUIRE(deliver(*loop.session, {f[1], f[2], f[0]}).ok());
  REQUIRE(loop.calls.added_ids.size() == 1);
  CHECK(loop.calls.added_ids[0] == std::vector<std::uint64_t>{0, 1, 2, 3});  // in position order
  CHECK(same(loop.calls.added_positions[0], loop.calls.requests[0].positions_A));
  // Each frame's dark field went to its own index, whatever the order of arrival.
  CHECK(loop.calls.policy_calls[1].dark_field == std::vector<float>{0.0f, 0.25f, 0.5f, 0.75f});
  CHECK(loop.session->assembler_health().get("frames_duplicate") == 1);
  CHECK(loop.session->assembler_health().get("frames_out_of_order") == 3);
  CHECK(loop.session->assembler_health().get("frames_accepted") == 4);
  CHECK(loop.session->sub_sequences_done() == 1);

  // A repeat after completion: recognised, not reconstructed again, nothing more issued.
  REQUIRE(deliver(*loop.session, {f[0]}).ok());
  CHECK(loop.session->assembler_health().get("frames_duplicate") == 2);
  CHECK(loop.calls.added_ids.size() == 1);
  CHECK(loop.calls.requests.size() == 2);
  CHECK(loop.session->sub_sequences_done() == 1);
  CHECK(loop.session->missing_description() ==
        "4 frame(s) outstanding; sub-sequence 1 lacks positions 0 1 2 3");

  // The next sub-sequence's frames carry on the frame indices and dark-field slots.
  REQUIRE(deliver(*loop.session, frames_for(loop.calls.requests[1])).ok());
  CHECK(loop.calls.added_ids[1] == std::vector<std::uint64_t>{4, 5, 6, 7});
  std::vector<float> expected_dark;
  for (std::uint64_t i = 0; i < 8; ++i) expected_dark.push_back(dark_fraction_of(i));
  CHECK(loop.calls.policy_calls[2].dark_field == expected_dark);
}

TEST_CASE("missing_description lists at most eight missing positions", "[session]") {
  Loop loop(16, 10);
  REQUIRE(loop.session->start().ok());
  CHECK(loop.session->missing_description() ==
        "10 frame(s) outstanding; sub-sequence 0 lacks positions 0 1 2 3 4 5 6 7 ...");
  std::vector<DetectorFrame> f = frames_for(loop.calls.requests[0]);
  REQUIRE(deliver(*loop.session, {f[0], f[1], f[2], f[4], f[5], f[6], f[7], f[8]}).ok());
  CHECK(loop.session->missing_description() == "2 frame(s) outstanding; sub-sequence 0 lacks positions 3 9");
}

TEST_CASE("frames the session did not issue are not counted as its own", "[session]") {
  Loop loop(10, 4, "s2");
  REQUIRE(loop.session->start().ok());
  const ScanRequest request = loop.calls.requests[0];

  ScanRequest stale = request;
  stale.session_id = "s1";  // the previous session's detector stream, still draining
  ScanRequest never_issued = request;
  never_issued.sub_sequence = 7;
  std::vector<DetectorFrame> foreign = frames_for(stale);
  foreign.push_back(frame_for(never_issued, 0));
  DetectorFrame elsewhere = frame_for(request, 1);
  elsewhere.position_A = {2.5, 0.5};
  foreign.push_back(elsewhere);

  REQUIRE(deliver(*loop.session, foreign).ok());
  CHECK(loop.session->assembler_health().get("frames_unknown_session") == 4);
  CHECK(loop.session->assembler_health().get("frames_unknown_sub_sequence") == 1);
  CHECK(loop.session->assembler_health().get("frames_position_mismatch") == 1);
  CHECK(loop.session->assembler_health().get("frames_accepted") == 0);
  CHECK(loop.calls.added_ids.empty());
  CHECK(loop.session->sub_sequences_done() == 0);
  CHECK(loop.session->waiting_for_frames());
  CHECK(loop.session->missing_description() ==
        "4 frame(s) outstanding; sub-sequence 0 lacks positions 0 1 2 3");

  REQUIRE(deliver(*loop.session, frames_for(request)).ok());
  CHECK(loop.session->sub_sequences_done() == 1);
  REQUIRE(loop.calls.added_ids.size() == 1);
  CHECK(loop.calls.added_ids[0] == std::vector<std::uint64_t>{0, 1, 2, 3});
}

TEST_CASE("the session measures its dose from the frames and keeps the policy's warnings",
          "[session]") {
  Loop loop(12, 4);
  loop.calls.warnings = {"at_start", "", "after_frames"};
  REQUIRE(loop.session->start().ok());
  CHECK(loop.calls.policy_calls[0].dose_e_per_A2 == 0.0);  // no frame yet
  REQUIRE(loop.session->warnings().size() == 1);
  CHECK(loop.session->warnings()[0].code == "at_start");

  // No declared dose (electrons_per_frame 0): the counts, 100 a frame, over the 1 A step squared.
  REQUIRE(deliver(*loop.session, frames_for(loop.calls.requests[0])).ok());
  CHECK(loop.calls.policy_calls[1].dose_e_per_A2 == Approx(100.0));
  CHECK(loop.session->warnings().size() == 1);

  // A declared dose is taken as declared: (4 * 100 + 4 * 700) / 8 frames.
  auto frames = frames_for(loop.calls.requests[1]);
  for (auto& f : frames) f.electrons_per_frame = 700.0;
  REQUIRE(deliver(*loop.session, frames).ok());
  CHECK(loop.calls.policy_calls[2].dose_e_per_A2 == Approx(400.0));
  CHECK(loop.session->dose_e_per_A2() == Approx(400.0));
  REQUIRE(loop.session->warnings().size() == 2);
  CHECK(loop.session->warnings()[1].code == "after_frames");
  CHECK(loop.session->warnings()[1].detail_json == R"({"n": 1})");
}

// The live geometry check (calibration.hpp, check_disk): frames with a bright-field disk of
// radius 4 px at (dy, dx) from the centre of the 16 px frame, its edge one pixel wide.
std::vector<DetectorFrame> disk_frames(const ScanRequest& request, double dy, double dx) {
  std::vector<DetectorFrame> frames = frames_for(request);
  const double c = kWindow / 2;
  for (DetectorFrame& f : frames)
    for (int r = 0; r < kWindow; ++r)
      for (int k = 0; k < kWindow; ++k) {
        const double d = std::hypot(r - c - dy, k - c - dx);
        f.counts[std::size_t(r) * kWindow + k] = float(1.0 + 99.0 * std::clamp(4.5 - d, 0.0, 1.0));
      }
  return frames;
}

// A probe whose disk is 33 / detector_pixel_mrad px across, checked after 8 frames.
ServeConfig disk_config(double detector_pixel_mrad, bool refuse = true) {
  ServeConfig c = small_config(16, 16);
  nlohmann::json j = c.to_json();
  j["session"]["probe"]["detector_pixel_mrad"] = detector_pixel_mrad;
  j["detector"]["geometry_check"] = {{"frames", 8}, {"refuse", refuse}};
  return parse_serve_config(j);
}

std::vector<std::string> warning_codes(const Session& session) {
  std::vector<std::string> codes;
  for (const auto& w : session.warnings()) codes.push_back(w.code);
  return codes;
}

TEST_CASE("the session checks its first frames' disk: agrees, warns, refuses",
          "[session][calibration]") {
  SECTION("where and as large as configured: nothing to say") {
    Loop loop(disk_config(33.0 / 4.0), "agrees");
    REQUIRE(loop.session->start().ok());
    REQUIRE(deliver(*loop.session, disk_frames(loop.calls.requests[0], 0, 0)).ok());
    CHECK(loop.session->warnings().empty());
    CHECK(loop.health.get("frame_geometry_disagreements") == 0);
  }
  SECTION("a disk a pixel off-centre: frame_disk_off_centre, and the session goes on") {
    Loop loop(disk_config(33.0 / 4.0), "off");
    REQUIRE(loop.session->start().ok());
    REQUIRE(deliver(*loop.session, disk_frames(loop.calls.requests[0], 1.0, 0)).ok());
    CHECK(warning_codes(*loop.session) == std::vector<std::string>{"frame_disk_off_centre"});
    CHECK_THAT(loop.session->warnings()[0].detail_json, Catch::Contains("disk_offset_px"));
    CHECK(loop.health.get("frame_geometry_disagreements") == 1);
    CHECK(loop.session->sub_sequences_done() == 1);
  }
  SECTION("a disk 20 % smaller than the optics say: frame_disk_radius_disagrees") {
    Loop loop(disk_config(33.0 / 5.0), "small");
    REQUIRE(loop.session->start().ok());
    REQUIRE(deliver(*loop.session, disk_frames(loop.calls.requests[0], 0, 0)).ok());
    CHECK(warning_codes(*loop.session) == std::vector<std::string>{"frame_disk_radius_disagrees"});
  }
  SECTION("optics three times off: the session ends with the reason") {
    Loop loop(disk_config(33.0 / 12.0), "refused");
    REQUIRE(loop.session->start().ok());
    const Status s = deliver(*loop.session, disk_frames(loop.calls.requests[0], 0, 0));
    REQUIRE(!s.ok());
    CHECK_THAT(s.message(), Catch::Contains("grossly wrong") && Catch::Contains("12.00 px"));
    CHECK(warning_codes(*loop.session) == std::vector<std::string>{"frame_geometry_refused"});
    CHECK(loop.calls.added_ids.empty());  // nothing reconstructed from the wrong geometry
    CHECK(loop.health.get("frame_geometry_disagreements") == 1);
  }
  SECTION("refuse: false only warns") {
    Loop loop(disk_config(33.0 / 12.0, false), "warned");
    REQUIRE(loop.session->start().ok());
    REQUIRE(deliver(*loop.session, disk_frames(loop.calls.requests[0], 0, 0)).ok());
    CHECK(warning_codes(*loop.session) == std::vector<std::string>{"frame_geometry_disagrees"});
  }
}

}  // namespace ptypilot
