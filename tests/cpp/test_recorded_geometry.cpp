// A recorded data set's frame geometry: the sidecar's frame_layout (absent: centred),
// disk_offset_px, rotation_deg and flip, read_reconstructor_frame(), and the geometry in replay's
// config fragment, which serve's config reads back.
#include <catch2/catch.hpp>

#include "ptypilot/core/config.hpp"
#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/recorded/recorded_dataset.hpp"
#include "recorded_fixtures.hpp"

using namespace ptypilot;
using namespace ptypilot::test;

namespace {

struct NpySet {
  TempDir dir{"geometry"};
  Cube cube{4, 4, 8};
  fs::path path = dir / "scan.npy";

  NpySet() { write_npy_file(path, "<u2", {4, 4, 8, 8}, false, cube_bytes(cube, 2, false)); }
  std::unique_ptr<RecordedDataset> open(const nlohmann::json& sidecar) {
    write_text(dir / "scan.json", sidecar.dump());
    return open_recorded_dataset(path);
  }
};

nlohmann::json without_layout() {
  nlohmann::json j = probe_sidecar();
  j.erase("frame_layout");
  return j;
}

std::vector<float> reconstructor_frame(RecordedDataset& d, std::size_t k, std::size_t pixels) {
  std::vector<float> out(pixels);
  const Status s = d.read_reconstructor_frame(k, out);
  INFO(s.message());
  REQUIRE(s.ok());
  return out;
}

// What serve makes of replay's fragment (with a budget the 4 x 4 raster holds).
FrameGeometry served_geometry(const RecordedDatasetInfo& info) {
  nlohmann::json fragment = session_config_fragment(info);
  fragment["session"]["total_positions"] = 16;
  fragment["session"]["sub_sequence_size"] = 16;
  return parse_serve_config(fragment).frame_geometry();
}

}  // namespace

TEST_CASE("a sidecar without frame_layout means centred; fft is taken as stored",
          "[recorded][geometry]") {
  NpySet set;
  auto centred = set.open(without_layout());
  CHECK(centred->info().geometry.layout == FrameLayout::kCentred);
  std::vector<float> expected(64);
  ifftshift_image(set.cube.frame(5), 8, 8, expected);
  CHECK(reconstructor_frame(*centred, 5, 64) == expected);
  const nlohmann::json fragment = session_config_fragment(centred->info());
  CHECK(fragment["detector"]["geometry"] == nlohmann::json{{"layout", "centred"}});
  // serve reads the fragment's geometry.
  CHECK(served_geometry(centred->info()).layout == FrameLayout::kCentred);

  auto fft = set.open(probe_sidecar());  // frame_layout: fft
  CHECK(fft->info().geometry.layout == FrameLayout::kFft);
  CHECK(reconstructor_frame(*fft, 5, 64) == set.cube.frame(5));
  CHECK(served_geometry(fft->info()).layout == FrameLayout::kFft);
}

TEST_CASE("a sidecar's disk offset, rotation and flip reach the geometry and serve's config",
          "[recorded][geometry]") {
  NpySet set;
  nlohmann::json sidecar = without_layout();
  sidecar["disk_offset_px"] = {1, -2};
  sidecar["rotation_deg"] = 90.0;
  sidecar["flip"] = true;
  auto d = set.open(sidecar);
  const FrameGeometry& g = d->info().geometry;
  CHECK(g.disk_offset_y_px == 1.0);
  CHECK(g.disk_offset_x_px == -2.0);
  CHECK(g.rotation_deg == 90.0);
  CHECK(g.flip);
  std::vector<float> expected(64);
  REQUIRE(FrameGeometryMap(g, 8).apply(set.cube.frame(3), expected));
  CHECK(reconstructor_frame(*d, 3, 64) == expected);
  const FrameGeometry served = served_geometry(d->info());
  CHECK(served.disk_offset_y_px == 1.0);
  CHECK(served.disk_offset_x_px == -2.0);
  CHECK(served.rotation_deg == 90.0);
  CHECK(served.flip);
}

TEST_CASE("a bad frame_layout or disk_offset_px is refused, naming the key",
          "[recorded][geometry]") {
  NpySet set;
  nlohmann::json sidecar = without_layout();
  sidecar["frame_layout"] = "shifted";
  write_text(set.dir / "scan.json", sidecar.dump());
  try {
    open_recorded_dataset(set.path);
    FAIL("opened");
  } catch (const std::exception& e) {
    CHECK_THAT(e.what(), Catch::Contains("frame_layout") && Catch::Contains("centred"));
  }
  sidecar = without_layout();
  sidecar["disk_offset_px"] = 0.7;
  write_text(set.dir / "scan.json", sidecar.dump());
  CHECK_THROWS_WITH(open_recorded_dataset(set.path),
                    Catch::Contains("disk_offset_px: expected [dy, dx]"));
}
