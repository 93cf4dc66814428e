#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ptypilot/core/config.hpp"

using namespace ptypilot;
using nlohmann::json;

TEST_CASE("the example config loads and fills the preset", "[config]") {
  const auto path = std::filesystem::path(PTYPILOT_SOURCE_DIR) / "deploy/config/sim-mos2.json";
  const ServeConfig c = load_serve_config(path);
  CHECK(c.session.raster.rows == 100);
  CHECK(c.session.raster.step_A == 0.2);
  CHECK(c.session.probe.semiangle_mrad == 33.0);
  CHECK(c.session.total_positions == 250);
  CHECK(c.policy.kind == "heuristic");
  const ReconstructorConfig r = c.reconstructor_config();
  CHECK(r.object.rows == 200);
  CHECK(r.loss == Loss::kAmplitude);
  // What to_json writes parses back to the same configuration.
  const ServeConfig again = parse_serve_config(c.to_json());
  CHECK(again.to_json() == c.to_json());
}

TEST_CASE("the microscope example config loads with an explicit probe and raster", "[config]") {
  const auto path = std::filesystem::path(PTYPILOT_SOURCE_DIR) / "deploy/config/microscope-example.json";
  const ServeConfig c = load_serve_config(path);
  CHECK(c.session.preset.empty());
  CHECK(c.session.raster.cols == 100);
  CHECK(c.session.sub_sequence_size == 100);
  CHECK(c.scan_driver.kind == "zmq");
  CHECK(c.reconstructor_config().object.pixel_A == Approx(0.154).epsilon(1e-3));
}

TEST_CASE("config errors name the key and the rule", "[config]") {
  json j = {{"session", {{"preset", "mos2-paper"}}}};
  CHECK_NOTHROW(parse_serve_config(j));

  json typo = j;
  typo["session"]["sub_sequence_sise"] = 50;
  CHECK_THROWS_WITH(parse_serve_config(typo),
                    Catch::Contains("session.sub_sequence_sise: unknown key"));
  json top_typo = j;
  top_typo["polcy"] = {{"kind", "random"}};
  CHECK_THROWS_WITH(parse_serve_config(top_typo), Catch::Contains("config.polcy: unknown key"));
  json wrong_type = j;
  wrong_type["session"]["total_positions"] = "many";
  CHECK_THROWS_WITH(parse_serve_config(wrong_type), Catch::Contains("session.total_positions: wrong type"));
  // An integer key given a float, or an integer too large for it, converted with undefined
  // behaviour before (fuzz_control found 1e42).
  json huge = j;
  huge["session"]["total_positions"] = 1e42;
  CHECK_THROWS_WITH(parse_serve_config(huge),
                    Catch::Contains("session.total_positions: wrong type: must be an integer"));
  json fraction = j;
  fraction["session"]["sub_sequence_size"] = 2.5;
  CHECK_THROWS_WITH(parse_serve_config(fraction), Catch::Contains("must be an integer"));
  json too_wide = j;
  too_wide["session"]["total_positions"] = 1ull << 40;
  CHECK_THROWS_WITH(parse_serve_config(too_wide),
                    Catch::Contains("session.total_positions: out of range for an integer of 32"));
  json negative = j;
  negative["session"]["sub_sequence_size"] = -5;
  CHECK_THROWS_WITH(parse_serve_config(negative), Catch::Contains("must be > 0"));
  json too_many = j;
  too_many["session"]["total_positions"] = 20000;
  CHECK_THROWS_WITH(parse_serve_config(too_many), Catch::Contains("exceeds the 10000 positions"));
  json bad_preset = {{"session", {{"preset", "mos3"}}}};
  CHECK_THROWS_WITH(parse_serve_config(bad_preset), Catch::Contains("unknown preset"));
  json no_raster = {{"session", {{"total_positions", 10}}}};
  CHECK_THROWS_WITH(parse_serve_config(no_raster), Catch::Contains("no scan raster"));
  json bad_loss = j;
  bad_loss["reconstruction"] = {{"loss", "l1"}};
  CHECK_THROWS_WITH(parse_serve_config(bad_loss), Catch::Contains("reconstruction.loss"));
  json bad_dtype = j;
  bad_dtype["detector"] = {{"dtype", "int12"}};
  CHECK_THROWS_WITH(parse_serve_config(bad_dtype), Catch::Contains("detector.dtype: unknown pixel type"));
  CHECK_THROWS_WITH(parse_serve_config(json::object()), Catch::Contains("config.session: missing"));
  CHECK_THROWS_WITH(parse_serve_config(json::array()), Catch::Contains("config: must be an object"));
}

TEST_CASE("reconstruction.sparsity reaches the reconstructor, within its bound", "[config]") {
  json j = {{"session", {{"preset", "mos2-paper-detector"}}},
            {"reconstruction", {{"sparsity", 0.002}, {"total_variation", 0.004}}}};
  const ReconstructorConfig r = parse_serve_config(j).reconstructor_config();
  CHECK(r.priors.sparsity == 0.002);
  CHECK(r.priors.total_variation == 0.004);
  CHECK(r.priors.positivity);
  j["reconstruction"]["sparsity"] = 0.5;
  CHECK_THROWS_WITH(parse_serve_config(j), Catch::Contains("reconstruction.sparsity"));
  j["reconstruction"]["sparsity"] = -0.001;
  CHECK_THROWS_WITH(parse_serve_config(j), Catch::Contains("reconstruction.sparsity"));
}

TEST_CASE("policy.material_scale takes brightest or two-class, brightest by default", "[config]") {
  json j = {{"session", {{"preset", "mos2-flake-paper"}}}, {"policy", {{"kind", "material-density"}}}};
  CHECK(parse_serve_config(j).policy.material_scale == "brightest");
  j["policy"]["material_scale"] = "two-class";
  CHECK(parse_serve_config(j).policy.material_scale == "two-class");
  j["policy"]["material_scale"] = "otsu";
  CHECK_THROWS_WITH(parse_serve_config(j), Catch::Contains("policy.material_scale"));
}

TEST_CASE("policy.placement takes direct or density, direct by default", "[config]") {
  json j = {{"session", {{"preset", "mos2-flake-paper"}}}, {"policy", {{"kind", "sparse-grid"}}}};
  CHECK(parse_serve_config(j).policy.placement == "direct");
  j["policy"]["placement"] = "density";
  CHECK(parse_serve_config(j).policy.placement == "density");
  j["policy"]["placement"] = "spread";
  CHECK_THROWS_WITH(parse_serve_config(j), Catch::Contains("policy.placement"));
}

TEST_CASE("a config file that is not JSON is refused with its path", "[config]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("ptypilot-config-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto load_error = [&](const std::string& text) {
    const std::filesystem::path path = dir / "serve.json";
    std::ofstream(path) << text;
    try {
      load_serve_config(path);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK_THAT(load_error(R"({"session": )"),
             Catch::Contains("serve.json: not valid JSON") && Catch::Contains("parse error"));
  // nlohmann reports a number beyond a double as out_of_range, not as a parse error.
  CHECK_THAT(load_error(R"({"session": {"total_positions": 1e999}})"),
             Catch::Contains("serve.json: not valid JSON") && Catch::Contains("number overflow"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a session's Safety is safety_config_for unless the config says otherwise",
          "[config][safety]") {
  const auto fields = [](const SafetyConfig& s) {
    return std::vector<double>{s.fov_height_A, s.fov_width_A, s.min_distance_A,
                               double(s.position_budget), s.snap_step_A};
  };
  // No safety section: training's settings (ptypilot_core.safety_config_for), half a step.
  json j = {{"session", {{"preset", "mos2-paper"}}}};
  ServeConfig c = parse_serve_config(j);
  CHECK_FALSE(c.safety.min_distance_A.has_value());
  CHECK(fields(c.safety_config()) == fields(safety_config_for(c.session.raster, 250)));
  CHECK(c.safety_config().min_distance_A == 0.1);
  CHECK(c.safety_config().snap_step_A == 0.2);

  // The tolerance follows the raster rather than a fixed 0.1 A.
  j["session"]["raster"] = {{"rows", 20}, {"cols", 30}, {"step_A", 0.5}};
  j["session"]["total_positions"] = 100;
  c = parse_serve_config(j);
  CHECK(fields(c.safety_config()) == fields(safety_config_for({20, 30, 0.5}, 100)));
  CHECK(c.safety_config().min_distance_A == 0.25);

  // null is "not given"; a number or no snapping overrides just that setting.
  j["safety"] = {{"min_distance_A", nullptr}};
  CHECK(fields(parse_serve_config(j).safety_config()) == fields(safety_config_for({20, 30, 0.5}, 100)));
  j["safety"] = {{"min_distance_A", 0.3}, {"snap_to_raster", false}};
  c = parse_serve_config(j);
  CHECK(c.safety_config().min_distance_A == 0.3);
  CHECK(c.safety_config().snap_step_A == 0.0);
  CHECK(c.safety_config().fov_width_A == 14.5);
  j["safety"] = {{"min_distance_A", -1}};
  CHECK_THROWS_WITH(parse_serve_config(j), Catch::Contains("safety.min_distance_A: must be >= 0"));
  j["safety"] = {{"min_distance_A", "near"}};
  CHECK_THROWS_WITH(parse_serve_config(j), Catch::Contains("safety.min_distance_A: wrong type"));

  // to_json writes an unset tolerance as null, and it parses back unset.
  j.erase("safety");
  c = parse_serve_config(j);
  CHECK(c.to_json()["safety"]["min_distance_A"].is_null());
  CHECK_FALSE(parse_serve_config(c.to_json()).safety.min_distance_A.has_value());
  c.safety.min_distance_A = 0.3;
  CHECK(parse_serve_config(c.to_json()).safety.min_distance_A == 0.3);
}
