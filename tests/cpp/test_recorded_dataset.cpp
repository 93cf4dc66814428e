// The recorded-data readers (recorded_dataset.hpp) on small generated files of every format, and
// their errors on bad files: each names the file, and for bad bytes the offset.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "ptypilot/core/config.hpp"
#include "ptypilot/record/hdf5_recorder.hpp"
#include "ptypilot/recorded/recorded_dataset.hpp"
#include "recorded_fixtures.hpp"

using namespace ptypilot;
using namespace ptypilot::test;

namespace {

std::vector<float> read(RecordedDataset& d, std::size_t k) {
  std::vector<float> f(d.frame_pixels());
  const Status s = d.read_frame(k, f);
  INFO(s.message());
  REQUIRE(s.ok());
  return f;
}

// Every frame of the data set equals the cube's frame of the same index.
void check_frames(RecordedDataset& d, const Cube& c) {
  REQUIRE(d.frame_count() == c.frames());
  for (std::size_t k : {std::size_t{0}, std::size_t{1}, std::size_t(c.scan_cols),
                        c.frames() / 2 + 3, c.frames() - 1}) {
    INFO("frame " << k);
    CHECK(read(d, k) == c.frame(k));
  }
}

void check_raster_positions(const RecordedDataset& d, int rows, int cols, double step) {
  REQUIRE(d.positions_A().size() == static_cast<std::size_t>(rows) * cols);
  const Vec2 p = d.positions_A()[static_cast<std::size_t>(2) * cols + 5];
  CHECK(p.y == Approx(2 * step));
  CHECK(p.x == Approx(5 * step));
  CHECK(d.info().raster.rows == rows);
  CHECK(d.info().raster.cols == cols);
  CHECK(d.info().raster.step_A == Approx(step));
}

void write_sidecar(const fs::path& data_file, const nlohmann::json& sidecar = probe_sidecar()) {
  fs::path p = data_file;
  p.replace_extension(".json");
  write_text(p, sidecar.dump());
}

std::string open_error(const fs::path& path) {
  try {
    open_recorded_dataset(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  FAIL("opening " << path << " did not fail");
  return "";
}

}  // namespace

TEST_CASE(".npy data sets: uint16 C order, with the probe from the sidecar", "[replay]") {
  TempDir dir;
  const Cube c;
  const fs::path path = dir / "scan.npy";
  write_npy_file(path, "<u2", {16, 16, 32, 32}, false, cube_bytes(c, 2, false));
  write_sidecar(path);
  auto d = open_recorded_dataset(path);
  const RecordedDatasetInfo& info = d->info();
  CHECK(info.format == "npy");
  CHECK(info.frame_rows == 32);
  CHECK(info.frame_cols == 32);
  CHECK(info.stored_dtype == "<u2");
  CHECK(info.dtype == PixelType::kUint16);
  CHECK(info.probe.energy_keV == 60.0);
  CHECK(info.probe.semiangle_mrad == 25.0);
  CHECK(info.probe.detector_pixel_mrad == 2.0);
  CHECK(info.probe.defocus_A == 50.0);
  CHECK(info.probe.Cs_mm == 0.5);
  CHECK(info.probe.window_px == 32);
  CHECK(info.dose_e_per_A2 == 1e4);
  CHECK(info.electrons_per_frame == Approx(1e4 * 0.3 * 0.3));
  check_raster_positions(*d, 16, 16, 0.3);
  check_frames(*d, c);

  CHECK_FALSE(info.true_potential.has_value());

  std::vector<float> wrong(10);
  CHECK(d->read_frame(0, wrong).code() == StatusCode::kInvalidArgument);
  std::vector<float> frame(d->frame_pixels());
  CHECK(d->read_frame(256, frame).code() == StatusCode::kOutOfRange);
}

TEST_CASE("a sidecar's true_potential is a file relative to the sidecar", "[replay]") {
  TempDir dir;
  const Cube c;
  const fs::path path = dir / "scan.npy";
  write_npy_file(path, "<u2", {16, 16, 32, 32}, false, cube_bytes(c, 2, false));
  fs::create_directory(dir / "truth");
  write_text(dir / "truth" / "phase.npy", "eval reads it, not the data set");
  nlohmann::json sidecar = probe_sidecar();
  sidecar["true_potential"] = "truth/phase.npy";
  write_sidecar(path, sidecar);
  auto d = open_recorded_dataset(path);
  REQUIRE(d->info().true_potential.has_value());
  CHECK(fs::equivalent(*d->info().true_potential, dir / "truth" / "phase.npy"));

  sidecar["true_potential"] = "truth/missing.npy";
  write_sidecar(path, sidecar);
  CHECK_THAT(open_error(path), Catch::Contains("scan.json") &&
                                   Catch::Contains("true_potential: no such file") &&
                                   Catch::Contains("missing.npy"));
  sidecar["true_potential"] = 3;
  write_sidecar(path, sidecar);
  CHECK_THAT(open_error(path), Catch::Contains("true_potential: expected the path of a .npy"));
}

TEST_CASE(".npy data sets: other dtypes, byte orders and Fortran order", "[replay]") {
  TempDir dir;
  Cube c{4, 5, 6, 250};
  SECTION("big-endian uint32") {
    const fs::path path = dir / "be.npy";
    write_npy_file(path, ">u4", {4, 5, 6, 6}, false, cube_bytes(c, 4, true));
    write_sidecar(path);
    auto d = open_recorded_dataset(path);
    CHECK(d->info().dtype == PixelType::kUint32);
    CHECK(d->info().stored_dtype == ">u4");
    check_frames(*d, c);
  }
  SECTION("uint8, Fortran order") {
    const fs::path path = dir / "fortran.npy";
    write_npy_file(path, "|u1", {4, 5, 6, 6}, true, cube_bytes(c, 1, false, true));
    write_sidecar(path);
    auto d = open_recorded_dataset(path);
    CHECK(d->info().dtype == PixelType::kUint8);
    check_frames(*d, c);
  }
  SECTION("int64 and float64 go out as float32") {
    const fs::path path = dir / "i8.npy";
    write_npy_file(path, "<i8", {4, 5, 6, 6}, false, cube_bytes(c, 8, false));
    write_sidecar(path);
    auto d = open_recorded_dataset(path);
    CHECK(d->info().dtype == PixelType::kFloat32);
    check_frames(*d, c);
    std::vector<unsigned char> doubles;
    for (std::size_t k = 0; k < c.frames(); ++k)
      for (std::size_t p = 0; p < c.pixels(); ++p) {
        const double v = c.count(k, p);
        std::uint64_t bits;
        std::memcpy(&bits, &v, 8);
        put_uint(doubles, bits, 8, false);
      }
    const fs::path f8 = dir / "f8.npy";
    write_npy_file(f8, "<f8", {4, 5, 6, 6}, false, doubles);
    write_sidecar(f8);
    auto e = open_recorded_dataset(f8);
    check_frames(*e, c);
  }
}

TEST_CASE(".npy errors name the file, the offset and what is missing", "[replay]") {
  TempDir dir;
  const Cube c;
  const fs::path good = dir / "scan.npy";
  write_npy_file(good, "<u2", {16, 16, 32, 32}, false, cube_bytes(c, 2, false));
  write_sidecar(good);

  SECTION("truncated") {
    const fs::path path = dir / "cut.npy";
    std::vector<unsigned char> bytes = read_bytes(good);
    bytes.resize(128 + 5 * 2048 + 100);  // header, 5 whole frames and a bit of the 6th
    write_bytes(path, bytes);
    write_sidecar(path);
    const std::string e = open_error(path);
    CHECK_THAT(e, Catch::Contains(path.string()) && Catch::Contains("truncated") &&
                      Catch::Contains("ends at offset 10468") && Catch::Contains("frame 5") &&
                      Catch::Contains("starts at offset 10368"));
  }
  SECTION("a cut header") {
    const fs::path path = dir / "head.npy";
    std::vector<unsigned char> bytes = read_bytes(good);
    bytes.resize(40);
    write_bytes(path, bytes);
    CHECK_THAT(open_error(path), Catch::Contains(path.string()) && Catch::Contains("offset 40"));
  }
  SECTION("not 4-D") {
    const fs::path path = dir / "flat.npy";
    write_npy_file(path, "<u2", {256, 32, 32}, false, cube_bytes(c, 2, false));
    write_sidecar(path);
    CHECK_THAT(open_error(path),
               Catch::Contains(path.string()) &&
                   Catch::Contains("(256, 32, 32) (the header, ending at offset 128) is not 4-D"));
  }
  SECTION("a shape whose size overflows") {
    const fs::path path = dir / "huge.npy";
    write_npy_file(path, "<u2", {65536, 65536, 65536, 65536}, false,
                   std::vector<unsigned char>(64));
    write_sidecar(path);
    CHECK_THAT(open_error(path), Catch::Contains(path.string()) &&
                                     Catch::Contains("shape too large") &&
                                     Catch::Contains("at offset"));
  }
  SECTION("a dtype that is not a number") {
    const fs::path path = dir / "complex.npy";
    write_npy_file(path, "<c8", {1, 1, 2, 2}, false, std::vector<unsigned char>(32));
    write_sidecar(path);
    CHECK_THAT(open_error(path),
               Catch::Contains("'<c8' is not supported") && Catch::Contains("at offset"));
  }
  SECTION("a missing sidecar key") {
    nlohmann::json sidecar = probe_sidecar();
    sidecar.erase("detector_pixel_mrad");
    write_sidecar(good, sidecar);
    const std::string e = open_error(good);
    CHECK_THAT(e, Catch::Contains(good.string()) && Catch::Contains("scan.json") &&
                      Catch::Contains("has no 'detector_pixel_mrad'"));
  }
  SECTION("a sidecar number too large for a double (found by fuzz_recorded_dataset)") {
    write_text(dir / "scan.json", R"({"energy_keV": 3e999})");
    CHECK_THAT(open_error(good), Catch::Contains("scan.json") && Catch::Contains("not valid JSON") &&
                                     Catch::Contains("number overflow"));
  }
  SECTION("no sidecar") {
    fs::remove(dir / "scan.json");
    CHECK_THAT(open_error(good), Catch::Contains("there is no sidecar") &&
                                     Catch::Contains("scan.json") && Catch::Contains("energy_keV"));
  }
  SECTION("an unknown sidecar key, a bad value, a scan shape that disagrees") {
    nlohmann::json sidecar = probe_sidecar();
    sidecar["semiangle_mrd"] = 20;
    write_sidecar(good, sidecar);
    CHECK_THAT(open_error(good),
               Catch::Contains("scan.json") && Catch::Contains("semiangle_mrd: unknown key"));
    sidecar = probe_sidecar();
    sidecar["energy_keV"] = -3;
    write_sidecar(good, sidecar);
    CHECK_THAT(open_error(good), Catch::Contains("energy_keV: must be > 0"));
    sidecar = probe_sidecar();
    sidecar["scan_shape"] = {16, 15};
    write_sidecar(good, sidecar);
    CHECK_THAT(open_error(good), Catch::Contains("scan_shape [16, 15] disagrees"));
  }
  SECTION("an unknown extension") {
    write_text(dir / "scan.tif", "II*");
    CHECK_THAT(open_error(dir / "scan.tif"), Catch::Contains("unknown data set format"));
  }
}

// A sidecar's window_px larger than the frames reconstructs finer than they sample (the paper's
// detector geometry, README): the frames stay the detector, the window grows.
TEST_CASE("a sidecar's window_px asks for a window larger than the frames", "[replay][config]") {
  TempDir dir;
  const Cube c;
  const fs::path path = dir / "scan.npy";
  write_npy_file(path, "<u2", {16, 16, 32, 32}, false, cube_bytes(c, 2, false));
  nlohmann::json sidecar = probe_sidecar();
  sidecar["window_px"] = 96;
  write_sidecar(path, sidecar);
  auto d = open_recorded_dataset(path);
  CHECK(d->info().probe.window_px == 96);
  CHECK(d->info().probe.detector_side_px() == 32);
  const ServeConfig config = parse_serve_config(session_config_fragment(d->info()));
  CHECK(config.session.probe.window_px == 96);
  CHECK(config.session.probe.detector_px == 32);
  sidecar["window_px"] = 31;
  write_sidecar(path, sidecar);
  CHECK_THROWS_WITH(open_recorded_dataset(path),
                    Catch::Contains("window_px must be an even integer of at least the frames' 32"));
}

TEST_CASE("the session config fragment configures serve for the data set", "[replay][config]") {
  TempDir dir;
  const Cube c;
  const fs::path path = dir / "scan.npy";
  write_npy_file(path, "<u2", {16, 16, 32, 32}, false, cube_bytes(c, 2, false));
  write_sidecar(path);
  auto d = open_recorded_dataset(path);
  const nlohmann::json fragment = session_config_fragment(d->info());
  const ServeConfig config = parse_serve_config(fragment);  // the defaults fit a 16 x 16 raster
  CHECK(config.session.probe.window_px == 32);
  CHECK(config.session.probe.energy_keV == 60.0);
  CHECK(config.session.probe.detector_pixel_mrad == 2.0);
  CHECK(config.session.probe.defocus_A == 50.0);
  CHECK(config.session.probe.Cs_mm == 0.5);
  CHECK(config.session.raster.rows == 16);
  CHECK(config.session.raster.step_A == 0.3);
  CHECK(config.detector.dtype == "uint16");

  const fs::path wide = dir / "wide.npy";
  write_npy_file(wide, "|u1", {2, 2, 4, 6}, false, std::vector<unsigned char>(96));
  write_sidecar(wide);
  auto w = open_recorded_dataset(wide);
  CHECK_THROWS_WITH(session_config_fragment(w->info()), Catch::Contains("square frames"));
}

TEST_CASE("the nearest recorded position, against brute force", "[replay]") {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.0, 10.0);
  std::vector<Vec2> scattered;
  for (int i = 0; i < 700; ++i) scattered.push_back({u(rng), u(rng) * 0.5});
  scattered.push_back(scattered[17]);  // a repeat: the lower index wins
  scattered.push_back({40.0, -3.0});   // a far outlier
  std::vector<Vec2> raster;
  for (int i = 0; i < 20; ++i)
    for (int j = 0; j < 30; ++j) raster.push_back({i * 0.2, j * 0.2});
  for (const auto* positions : {&scattered, &raster}) {
    const NearestPositionIndex index(*positions);
    for (int q = 0; q < 2000; ++q) {
      const Vec2 query{u(rng) * 1.2 - 1.0, u(rng) * 0.8 - 1.0};
      std::size_t best = 0;
      double best_d = INFINITY;
      for (std::size_t i = 0; i < positions->size(); ++i) {
        const double d = std::hypot((*positions)[i].y - query.y, (*positions)[i].x - query.x);
        if (d < best_d) {
          best_d = d;
          best = i;
        }
      }
      const auto match = index.nearest(query);
      REQUIRE(match.index == best);
      REQUIRE(match.distance_A == Approx(best_d).margin(1e-12));
    }
  }
  const NearestPositionIndex index(scattered);
  CHECK(index.nearest(scattered[17]).index == 17);
  CHECK(index.nearest(scattered[17]).distance_A == 0.0);
  // Exactly between two raster nodes: the lower index.
  const NearestPositionIndex grid(raster);
  CHECK(grid.nearest({0.1, 0.0}).index == 0);
  CHECK(grid.nearest({0.0, 0.3}).index == 1);
  const NearestPositionIndex single(std::vector<Vec2>{{1.0, 1.0}});
  CHECK(single.nearest({5.0, 5.0}).index == 0);
}

TEST_CASE("EMD 1.0 and py4DSTEM data cubes", "[replay]") {
  TempDir dir;
  const Cube c;
  SECTION("EMD 1.0: dim1..dim4, the scan in nm, the probe from the sidecar") {
    const fs::path path = dir / "cube.emd";
    write_emd(path, c);
    write_sidecar(path, {{"energy_keV", 80.0},
                         {"semiangle_mrad", 20.0},
                         {"detector_pixel_mrad", 1.5},
                         {"defocus_A", 0.0}});
    auto d = open_recorded_dataset(path);
    CHECK(d->info().format == "emd");
    CHECK(d->info().dtype == PixelType::kUint16);
    CHECK(d->info().probe.energy_keV == 80.0);
    check_raster_positions(*d, 16, 16, 0.3);
    check_frames(*d, c);
  }
  SECTION("py4DSTEM: dim0..dim3 as linear pairs in A, deflated, the probe in attributes") {
    const fs::path path = dir / "cube.h5";
    EmdLayout layout;
    layout.group_path = "/py4DSTEM_root/datacube";
    layout.first_dim = 0;
    layout.scan_units = "A";
    layout.scan_step = 0.25;
    layout.linear_pair = true;
    layout.deflate = true;
    write_emd(path, c, layout);
    {
      hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
      hid_t g = H5Gopen2(f, layout.group_path.c_str(), H5P_DEFAULT);
      const nlohmann::json probe = probe_sidecar();
      for (const auto& [key, value] : probe.items())
        if (key != "scan_step_A" && value.is_number())
          h5_number_attribute(g, key.c_str(), value.get<double>());
      H5Gclose(g);
      H5Fclose(f);
    }
    auto d = open_recorded_dataset(path);
    CHECK(d->info().probe.semiangle_mrad == 25.0);
    check_raster_positions(*d, 16, 16, 0.25);
    check_frames(*d, c);
  }
  SECTION("the scan in pixels needs scan_step_A") {
    const fs::path path = dir / "pixels.emd";
    EmdLayout layout;
    layout.scan_units = "[pix]";
    layout.scan_step = 1.0;
    write_emd(path, c, layout);
    nlohmann::json sidecar = probe_sidecar();
    sidecar.erase("scan_step_A");
    write_sidecar(path, sidecar);
    CHECK_THAT(open_error(path),
               Catch::Contains("has no 'scan_step_A'") && Catch::Contains("dimension vectors"));
    write_sidecar(path);
    CHECK(open_recorded_dataset(path)->info().raster.step_A == 0.3);
  }
}

TEST_CASE("EMD errors: no 4-D array, a corrupt chunk, a truncated file", "[replay]") {
  TempDir dir;
  const Cube c;
  SECTION("no 4-D array") {
    const fs::path path = dir / "empty.h5";
    {
      H5File f(path);
      hid_t g = h5_group(f.id, "/other");
      H5Gclose(g);
    }
    CHECK_THAT(open_error(path),
               Catch::Contains(path.string()) && Catch::Contains("not a recognised data set"));
  }
  SECTION("an EMD array that is not 4-D") {
    const fs::path path = dir / "flat.emd";
    {
      H5File f(path);
      hid_t g = h5_group(f.id, "/data/stack");
      h5_number_attribute(g, "emd_group_type", 1, H5T_NATIVE_INT);
      const hsize_t dims[3] = {256, 32, 32};
      hid_t space = H5Screate_simple(3, dims, nullptr);
      hid_t d = H5Dcreate2(g, "data", H5T_STD_U16LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      std::vector<std::uint16_t> zeros(256 * 32 * 32);
      H5Dwrite(d, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data());
      H5Dclose(d);
      H5Sclose(space);
      H5Gclose(g);
    }
    CHECK_THAT(open_error(path),
               Catch::Contains(path.string()) && Catch::Contains("not 4-D") &&
                   Catch::Contains("/data/stack/data (256, 32, 32) at file offset"));
  }
  SECTION("a corrupt deflate chunk: the frame's read fails, naming the chunk's offset") {
    const fs::path path = dir / "corrupt.emd";
    EmdLayout layout;
    layout.deflate = true;
    write_emd(path, c, layout);
    write_sidecar(path);
    haddr_t address = 0;
    hsize_t size = 0;
    {
      hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      hid_t d = H5Dopen2(f, (layout.group_path + "/data").c_str(), H5P_DEFAULT);
      const hsize_t at[4] = {1, 2, 0, 0};  // frame 18
      unsigned mask = 0;
      REQUIRE(H5Dget_chunk_info_by_coord(d, at, &mask, &address, &size) >= 0);
      H5Dclose(d);
      H5Fclose(f);
    }
    std::vector<unsigned char> bytes = read_bytes(path);
    for (hsize_t i = 0; i < size; ++i) bytes[address + i] ^= 0x5a;
    write_bytes(path, bytes);
    auto d = open_recorded_dataset(path);
    CHECK(read(*d, 17) == c.frame(17));
    std::vector<float> frame(d->frame_pixels());
    const Status s = d->read_frame(18, frame);
    CHECK_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains(path.string()) && Catch::Contains("frame 18") &&
                                Catch::Contains("file offset " + std::to_string(address)));
  }
  SECTION("truncated") {
    const fs::path path = dir / "cut.emd";
    write_emd(path, c);
    write_sidecar(path);
    std::vector<unsigned char> bytes = read_bytes(path);
    bytes.resize(bytes.size() / 2);
    write_bytes(path, bytes);
    CHECK_THAT(open_error(path), Catch::Contains(path.string()) &&
                                     Catch::Contains(std::to_string(bytes.size()) + " bytes"));
  }
}

TEST_CASE("Merlin .mib with its .hdr", "[replay]") {
  TempDir dir;
  const Cube c;
  SECTION("U16, the scan shape from the .hdr") {
    const fs::path path = dir / "merlin.mib";
    write_bytes(path, mib_bytes(c, "U16"));
    write_text(dir / "merlin.hdr", mib_acquisition_header(c.frames(), c.scan_cols));
    write_sidecar(path);
    auto d = open_recorded_dataset(path);
    CHECK(d->info().format == "merlin-mib");
    CHECK(d->info().dtype == PixelType::kUint16);
    CHECK(d->info().stored_dtype == ">u2");
    check_raster_positions(*d, 16, 16, 0.3);
    check_frames(*d, c);
  }
  SECTION("U08 and U32, a quad's 768-byte headers, the scan shape from the sidecar") {
    Cube small{3, 4, 8, 200};
    for (const std::string depth : {"U08", "U32"}) {
      const fs::path path = dir / ("m" + depth + ".mib");
      write_bytes(path, mib_bytes(small, depth, 768, 5));
      nlohmann::json sidecar = probe_sidecar();
      sidecar["scan_shape"] = {3, 4};
      write_sidecar(path, sidecar);
      auto d = open_recorded_dataset(path);
      CHECK(d->info().dtype == (depth == "U08" ? PixelType::kUint8 : PixelType::kUint32));
      check_frames(*d, small);
    }
  }
  SECTION("truncated") {
    const fs::path path = dir / "cut.mib";
    std::vector<unsigned char> bytes = mib_bytes(c, "U16");
    const std::size_t stride = 384 + 2048;
    bytes.resize(200 * stride + 1000);
    write_bytes(path, bytes);
    write_text(dir / "cut.hdr", mib_acquisition_header(c.frames(), c.scan_cols));
    write_sidecar(path);
    CHECK_THAT(open_error(path),
               Catch::Contains(path.string()) && Catch::Contains("truncated") &&
                   Catch::Contains("frame 200 at offset " + std::to_string(200 * stride)));
  }
  SECTION("fewer frames than the scan") {
    const fs::path path = dir / "short.mib";
    std::vector<unsigned char> bytes = mib_bytes(c, "U16");
    bytes.resize(200 * (384 + 2048));
    write_bytes(path, bytes);
    write_text(dir / "short.hdr", mib_acquisition_header(c.frames(), c.scan_cols));
    write_sidecar(path);
    CHECK_THAT(open_error(path),
               Catch::Contains("holds 200 frames") && Catch::Contains("16 x 16 scan needs 256"));
  }
  SECTION("a corrupt frame header fails that frame's read, naming its offset") {
    const fs::path path = dir / "bad.mib";
    std::vector<unsigned char> bytes = mib_bytes(c, "U16");
    const std::size_t stride = 384 + 2048;
    bytes[7 * stride] = 'X';
    bytes[9 * stride + 6] = '9';  // frame number 000010 -> 009010
    write_bytes(path, bytes);
    write_text(dir / "bad.hdr", mib_acquisition_header(c.frames(), c.scan_cols));
    write_sidecar(path);
    auto d = open_recorded_dataset(path);
    std::vector<float> frame(d->frame_pixels());
    Status s = d->read_frame(7, frame);
    CHECK_THAT(s.message(),
               Catch::Contains(path.string()) &&
                   Catch::Contains("frame 7 at offset " + std::to_string(7 * stride)) &&
                   Catch::Contains("no Merlin frame header"));
    s = d->read_frame(9, frame);
    CHECK_THAT(s.message(), Catch::Contains("says frame 9010, expected 10"));
    CHECK(read(*d, 8) == c.frame(8));
  }
  SECTION("raw R64 is refused, with the counter depth") {
    Cube tiny{2, 2, 4, 10};
    const fs::path path = dir / "raw.mib";
    write_bytes(path, mib_bytes(tiny, "R64"));
    write_text(dir / "raw.hdr", mib_acquisition_header(4, 2, 12));
    write_sidecar(path);
    CHECK_THAT(open_error(path), Catch::Contains("raw pixel depth R64 (counter depth 12 bits)") &&
                                     Catch::Contains("not supported"));
  }
  SECTION("no scan shape anywhere") {
    const fs::path path = dir / "noshape.mib";
    write_bytes(path, mib_bytes(c, "U16"));
    write_sidecar(path);
    CHECK_THAT(open_error(path),
               Catch::Contains("scan shape is unknown") && Catch::Contains("noshape.hdr"));
  }
}

TEST_CASE("a session recorded by the recorder replays at its recorded positions",
          "[replay][recorder]") {
  TempDir dir;
  const Cube c{16, 16, 32, 60000};
  ServeConfig config;
  config.session.probe.window_px = 32;
  config.session.probe.detector_pixel_mrad = 3.0;
  config.session.probe.defocus_A = 20.0;
  config.session.raster = {16, 16, 0.3};
  RecorderConfig rc;
  rc.directory = dir.path();
  rc.min_free_bytes = 0;
  rc.reserve_bytes = 0;
  Hdf5Recorder recorder(rc);
  SessionInfo info;
  info.session_id = "adaptive";
  info.config_json = config.to_json().dump();
  info.versions_json = "{}";
  info.frame_rows = info.frame_cols = 32;
  info.pixel_A = 0.1;
  info.frame_dtype = PixelType::kUint16;
  REQUIRE(recorder.begin_session(info).ok());
  // Scattered approved positions, not a raster, and one of them twice.
  const std::vector<Vec2> positions = {{0.0, 0.0}, {0.9, 2.1}, {4.5, 4.5}, {3.3, 0.6},
                                       {0.9, 2.1}, {2.4, 4.2}, {1.2, 3.9}};
  std::vector<DetectorFrame> frames;
  for (std::size_t k = 0; k < positions.size(); ++k) {
    DetectorFrame f;
    f.session_id = "adaptive";
    f.frame_index = k;
    f.position_index = static_cast<std::uint32_t>(k);
    f.position_A = positions[k];
    f.rows = f.cols = 32;
    f.dtype = PixelType::kUint16;
    f.electrons_per_frame = 900.0;
    f.counts = c.frame(k);
    frames.push_back(std::move(f));
  }
  REQUIRE(recorder.write_frames(frames).ok());
  REQUIRE(recorder.end_session().ok());

  auto d = open_recorded_dataset(dir / "adaptive.h5");
  CHECK(d->info().format == "ptypilot-recording");
  CHECK(d->info().dtype == PixelType::kUint16);
  CHECK(d->info().probe.detector_pixel_mrad == 3.0);
  CHECK(d->info().probe.defocus_A == 20.0);
  CHECK(d->info().raster.rows == 16);
  CHECK(d->info().raster.step_A == 0.3);
  CHECK(d->info().electrons_per_frame == 900.0);
  REQUIRE(d->frame_count() == positions.size());
  for (std::size_t k = 0; k < positions.size(); ++k) {
    CHECK(d->positions_A()[k].y == positions[k].y);
    CHECK(d->positions_A()[k].x == positions[k].x);
    CHECK(read(*d, k) == c.frame(k));
  }
  const NearestPositionIndex index(d->positions_A());
  CHECK(index.nearest({1.0, 2.0}).index == 1);  // the first of the two recordings there
  CHECK(index.nearest({4.0, 4.0}).index == 2);
  CHECK(index.nearest({4.0, 4.0}).distance_A == Approx(std::hypot(0.5, 0.5)));
}
