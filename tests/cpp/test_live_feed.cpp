// The live page's events (ptypilot/app/live_feed.hpp): the field of view cut from the potential
// and quantized, base64, the counters in the registry's order with their alarms, Safety's
// changes. test_live_page.py checks them in a browser against a running daemon.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>

#include "ptypilot/app/live_feed.hpp"
#include "ptypilot/wire/counters.hpp"

namespace ptypilot {
namespace {

nlohmann::json data_of(const std::string& event, const std::string& name) {
  const std::string head = "event: " + name + "\ndata: ";
  REQUIRE(event.rfind(head, 0) == 0);
  REQUIRE(event.size() > head.size() + 2);
  REQUIRE(event.substr(event.size() - 2) == "\n\n");
  const std::string line = event.substr(head.size(), event.size() - head.size() - 2);
  REQUIRE(line.find('\n') == std::string::npos);  // one data line: SSE ends an event at a blank line
  return nlohmann::json::parse(line);
}

}  // namespace

TEST_CASE("live feed: base64 of RFC 4648's test vectors", "[live]") {
  const auto encode = [](const std::string& s) {
    return base64(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  CHECK(encode("") == "");
  CHECK(encode("f") == "Zg==");
  CHECK(encode("fo") == "Zm8=");
  CHECK(encode("foo") == "Zm9v");
  CHECK(encode("foob") == "Zm9vYg==");
  CHECK(encode("fooba") == "Zm9vYmE=");
  CHECK(encode("foobar") == "Zm9vYmFy");
  const std::uint8_t high[] = {0xff, 0xfe, 0x00};
  CHECK(base64(high, 3) == "//4A");
}

TEST_CASE("live feed: the field of view is cut from the object and spans 0..255", "[live]") {
  Potential p;
  p.grid.rows = 10;
  p.grid.cols = 12;
  p.grid.pixel_A = 0.5;
  p.grid.fov_origin_A = {1.0, 1.5};  // pixel (2, 3)
  p.grid.fov_height_A = 2.0;         // 5 rows
  p.grid.fov_width_A = 3.0;          // 7 columns
  p.phase_rad = RealImage(10, 12, 100.0f);  // outside the field: must not set the range
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 7; ++c) p.phase_rad(2 + r, 3 + c) = 0.1f * static_cast<float>(r * 7 + c);
  const QuantizedPhase q = quantize_field_of_view(p);
  REQUIRE(q.rows == 5);
  REQUIRE(q.cols == 7);
  CHECK(q.pixel_A == 0.5);
  CHECK(q.min_rad == Approx(0.0f));
  CHECK(q.max_rad == Approx(3.4f));
  CHECK(q.data.front() == 0);
  CHECK(q.data.back() == 255);
  CHECK(q.data[17] == static_cast<std::uint8_t>(std::lround(17.0 / 34.0 * 255.0)));

  SECTION("a flat or non-finite field is one grey, never a division by zero") {
    p.phase_rad = RealImage(10, 12, 0.25f);
    p.phase_rad(2, 3) = NAN;
    const QuantizedPhase flat = quantize_field_of_view(p);
    CHECK(flat.min_rad == 0.25f);
    CHECK(flat.max_rad == 0.25f);
    CHECK(flat.data[0] == 0);  // the NaN
    CHECK(flat.data[1] == 127);
  }
}

TEST_CASE("live feed: the status lists every registry counter in order, alarms marked", "[live]") {
  LiveStatus s;
  s.state = "running";
  s.session_id = "s1";
  s.position_budget = 550;
  s.positions_issued = 100;
  s.frames_recorded = 99;
  s.counters = {{std::string(counters::kFramesAccepted), 99},
                {std::string(counters::kFramesNonFinite), 2},
                {"not_in_the_registry", 1}};
  const nlohmann::json j = data_of(status_event(s), "status");
  CHECK(j["state"] == "running");
  CHECK(j["position_budget"] == 550);
  CHECK(j["frames_recorded"] == 99);
  CHECK(j["disk_free_bytes"].is_null());
  const auto& list = j["counters"];
  REQUIRE(list.size() == counters::kCounters.size() + 1);
  for (std::size_t i = 0; i < counters::kCounters.size(); ++i)
    CHECK(list[i]["name"] == std::string(counters::kCounters[i].name));
  for (const auto& c : list) {
    if (c["name"] == counters::kFramesAccepted) CHECK((c["value"] == 99 && c["alarm"] == false));
    else if (c["name"] == counters::kFramesNonFinite) CHECK((c["value"] == 2 && c["alarm"] == true));
    else if (c["name"] == "not_in_the_registry") CHECK(c["alarm"] == true);
    else CHECK((c["value"] == 0 && c["alarm"] == false));
  }
}

TEST_CASE("live feed: a reconstruction event with positions, timings and Safety's changes",
          "[live]") {
  auto done = std::make_shared<LiveSubSequence>();
  done->index = 0;
  done->approved_A = {{0.0, 0.0}, {1.23456, 2.0}};
  done->latency.reconstruct_ms = 12.3456;
  done->frames_received = 2;
  done->frames_recorded = 2;
  auto next = std::make_shared<LiveSubSequence>();
  next->index = 1;
  next->approved_A = {{3.0, 3.0}};
  next->changed.push_back({Vec2{-1.0, 2.0}, Vec2{0.0, 2.0}, "clamped"});
  next->changed.push_back({std::nullopt, std::nullopt, "non_finite"});
  LiveReconstruction r{"s1", 1, nullptr, {done}, next};
  const nlohmann::json j = data_of(reconstruction_event(r), "reconstruction");
  CHECK(j["image"]["rows"] == 0);  // no potential yet
  REQUIRE(j["completed"].size() == 1);
  CHECK(j["completed"][0]["approved_A"][1][0] == Approx(1.235));
  CHECK(j["completed"][0]["latency_ms"]["reconstruct"] == Approx(12.346));
  CHECK(j["next"]["index"] == 1);
  CHECK(j["next"]["changed"][0]["verdict"] == "clamped");
  CHECK(j["next"]["changed"][0]["placed_A"][0] == 0.0);
  CHECK(j["next"]["changed"][1]["proposed_A"].is_null());
}

}  // namespace ptypilot

namespace ptypilot {

TEST_CASE("live feed: events made with the kept JSON of completed sub-sequences are the same",
          "[live]") {
  std::vector<std::shared_ptr<const LiveSubSequence>> completed;
  ReconstructionEvents events;
  for (std::uint32_t k = 0; k < 4; ++k) {
    auto s = std::make_shared<LiveSubSequence>();
    s->index = k;
    s->approved_A = {{1.0 * k, 2.0}, {3.0, 0.5 * k}};
    s->latency.total_ms = 10.0 + k;
    completed.push_back(s);
    const LiveReconstruction r{"s" + std::to_string(k / 2), k + 1, nullptr, completed, nullptr};
    CHECK(events.event(r) == reconstruction_event(r));
    if (k == 1) completed.clear();  // a new session: the first two are gone
  }
}

}  // namespace ptypilot
