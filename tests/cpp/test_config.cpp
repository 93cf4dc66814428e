#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

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
