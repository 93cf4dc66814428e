// DECTRIS master/data HDF5 files as the detector's file writer lays them out: a master file with
// the metadata and external links /entry/data/data_NNNNNN to data files whose images are chunks
// compressed with bitshuffle + LZ4 (HDF5 filter 32008). The chunks are written here with
// H5Dwrite_chunk and the shared encoder, so neither side needs the filter plugin.
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <optional>

#include "ptypilot/wire/compression.hpp"
#include "ptypilot/recorded/recorded_dataset.hpp"
#include "ptypilot/optics.hpp"
#include "recorded_fixtures.hpp"

using namespace ptypilot;
using namespace ptypilot::test;

namespace {

constexpr H5Z_filter_t kBitshuffle = 32008;
constexpr H5Z_filter_t kLz4 = 32004;

void h5_scalar(hid_t parent, const std::string& path, double value) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t d = H5Dcreate2(parent, path.c_str(), H5T_IEEE_F64LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value);
  H5Dclose(d);
  H5Sclose(space);
  H5Pclose(lcpl);
}

struct DectrisLayout {
  std::vector<std::size_t> images_per_file = {100, 156};
  std::size_t images_per_chunk = 1;
  H5Z_filter_t filter = kBitshuffle;
  bool metadata = true;  // wavelength, pixel size, distance, nimages, ntrigger
};

// <dir>/<name>_master.h5 and <name>_data_00000k.h5, the cube's frames in order.
fs::path write_dectris(const TempDir& dir, const std::string& name, const Cube& c,
                       const DectrisLayout& layout = {}) {
  const fs::path master = dir / (name + "_master.h5");
  std::size_t first = 0;
  for (std::size_t file = 0; file < layout.images_per_file.size(); ++file) {
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "_data_%06zu.h5", file + 1);
    const std::string data_name = name + suffix;
    {
      H5File data(dir / data_name);
      hid_t g = h5_group(data.id, "/entry/data");
      const hsize_t n = layout.images_per_file[file];
      const hsize_t dims[3] = {n, static_cast<hsize_t>(c.frame_px),
                               static_cast<hsize_t>(c.frame_px)};
      const hsize_t chunk[3] = {layout.images_per_chunk, dims[1], dims[2]};
      hid_t space = H5Screate_simple(3, dims, nullptr);
      hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
      H5Pset_chunk(dcpl, 3, chunk);
      // The bitshuffle filter's cd_values: version 0.2, element size, block size 0 (the
      // default), compressor 2 (LZ4). The filter is not registered here; optional, so HDF5
      // records it without asking for it.
      const unsigned bitshuffle_cd[5] = {0, 2, 2, 0, 2};
      const unsigned lz4_cd[1] = {0};
      if (layout.filter == kBitshuffle)
        REQUIRE(H5Pset_filter(dcpl, kBitshuffle, H5Z_FLAG_OPTIONAL, 5, bitshuffle_cd) >= 0);
      else
        REQUIRE(H5Pset_filter(dcpl, kLz4, H5Z_FLAG_OPTIONAL, 1, lz4_cd) >= 0);
      hid_t d = H5Dcreate2(g, "data", H5T_STD_U16LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      REQUIRE(d >= 0);
      h5_number_attribute(d, "image_nr_low", static_cast<double>(first + 1), H5T_NATIVE_INT);
      h5_number_attribute(d, "image_nr_high", static_cast<double>(first + n), H5T_NATIVE_INT);
      for (hsize_t k = 0; k < n; k += layout.images_per_chunk) {
        std::vector<std::byte> raw;
        for (hsize_t j = 0; j < layout.images_per_chunk; ++j)
          for (std::size_t p = 0; p < c.pixels(); ++p) {
            // Past the last image, the edge chunk is padded (HDF5 stores whole chunks).
            const std::uint16_t v =
                k + j < n ? static_cast<std::uint16_t>(c.count(first + k + j, p)) : 0;
            raw.push_back(static_cast<std::byte>(v & 0xff));
            raw.push_back(static_cast<std::byte>(v >> 8));
          }
        std::vector<std::byte> encoded;
        const Status s = layout.filter == kBitshuffle
                             ? compression::encode_bitshuffle_lz4(raw, 2, &encoded)
                             : compression::encode_lz4_hdf5(raw, &encoded);
        REQUIRE(s.ok());
        const hsize_t offset[3] = {k, 0, 0};
        REQUIRE(H5Dwrite_chunk(d, H5P_DEFAULT, 0, offset, encoded.size(), encoded.data()) >= 0);
      }
      H5Dclose(d);
      H5Pclose(dcpl);
      H5Sclose(space);
      H5Gclose(g);
    }
    first += layout.images_per_file[file];
  }
  H5File m(master);
  hid_t g = h5_group(m.id, "/entry/data");
  for (std::size_t file = 0; file < layout.images_per_file.size(); ++file) {
    char link[32], target[256];
    std::snprintf(link, sizeof link, "data_%06zu", file + 1);
    std::snprintf(target, sizeof target, "%s_data_%06zu.h5", name.c_str(), file + 1);
    REQUIRE(H5Lcreate_external(target, "/entry/data/data", g, link, H5P_DEFAULT, H5P_DEFAULT) >= 0);
  }
  H5Gclose(g);
  hid_t det = h5_group(m.id, "/entry/instrument/detector");
  H5Gclose(det);
  if (layout.metadata) {
    h5_scalar(m.id, "/entry/instrument/beam/incident_wavelength", wavelength_A(200.0));
    h5_scalar(m.id, "/entry/instrument/detector/x_pixel_size", 75e-6);
    h5_scalar(m.id, "/entry/instrument/detector/y_pixel_size", 75e-6);
    h5_scalar(m.id, "/entry/instrument/detector/detector_distance", 0.5);
    h5_scalar(m.id, "/entry/instrument/detector/detectorSpecific/nimages", c.scan_cols);
    h5_scalar(m.id, "/entry/instrument/detector/detectorSpecific/ntrigger", c.scan_rows);
    h5_scalar(m.id, "/entry/instrument/detector/detectorSpecific/x_pixels_in_detector", c.frame_px);
  }
  return master;
}

// The scan and probe the master file lacks.
void write_scan_sidecar(const TempDir& dir, const std::string& name) {
  write_text(
      dir / (name + ".json"),
      nlohmann::json{{"scan_step_A", 0.3}, {"semiangle_mrad", 25.0}, {"defocus_A", 10.0}}.dump());
}

std::vector<float> read(RecordedDataset& d, std::size_t k) {
  std::vector<float> f(d.frame_pixels());
  const Status s = d.read_frame(k, f);
  INFO(s.message());
  REQUIRE(s.ok());
  return f;
}

}  // namespace

TEST_CASE("DECTRIS master and data files with bitshuffle-LZ4 chunks", "[replay][compression]") {
  TempDir dir;
  const Cube c;
  SECTION("two data files, one image per chunk; energy and detector pixel from the master") {
    const fs::path master = write_dectris(dir, "scan", c);
    write_scan_sidecar(dir, "scan");
    auto d = open_recorded_dataset(master);
    const RecordedDatasetInfo& info = d->info();
    CHECK(info.format == "dectris-hdf5");
    CHECK(info.dtype == PixelType::kUint16);
    CHECK(info.frame_rows == 32);
    CHECK(info.probe.energy_keV == Approx(200.0).epsilon(1e-9));
    CHECK(info.probe.detector_pixel_mrad == Approx(1e3 * std::atan(75e-6 / 0.5)));
    CHECK(info.probe.semiangle_mrad == 25.0);
    CHECK(info.raster.rows == 16);
    CHECK(info.raster.cols == 16);
    REQUIRE(d->frame_count() == 256);
    for (std::size_t k : {0, 1, 99, 100, 101, 200, 255}) {
      INFO("frame " << k);
      CHECK(read(*d, k) == c.frame(k));
    }
  }
  SECTION("four images per chunk, the sidecar named after the master, and the sidecar wins") {
    DectrisLayout layout;
    layout.images_per_file = {256};
    layout.images_per_chunk = 4;
    const fs::path master = write_dectris(dir, "many", c, layout);
    nlohmann::json sidecar = probe_sidecar();  // energy 60 keV, detector pixel 2 mrad
    sidecar["scan_shape"] = {16, 16};
    write_text(dir / "many_master.json", sidecar.dump());
    auto d = open_recorded_dataset(master);
    CHECK(d->info().probe.energy_keV == 60.0);
    CHECK(d->info().probe.detector_pixel_mrad == 2.0);
    for (std::size_t k : {0, 3, 4, 5, 130, 255}) CHECK(read(*d, k) == c.frame(k));
  }
  SECTION("plain LZ4 chunks (filter 32004)") {
    DectrisLayout layout;
    layout.filter = kLz4;
    const fs::path master = write_dectris(dir, "lz", c, layout);
    write_scan_sidecar(dir, "lz");
    auto d = open_recorded_dataset(master);
    for (std::size_t k : {0, 150, 255}) CHECK(read(*d, k) == c.frame(k));
  }
}

TEST_CASE("DECTRIS errors: a corrupt chunk, a missing data file, no scan shape",
          "[replay][compression]") {
  TempDir dir;
  const Cube c;
  SECTION("a corrupt chunk fails its frame only, naming the data file and the chunk's offset") {
    const fs::path master = write_dectris(dir, "bad", c);
    write_scan_sidecar(dir, "bad");
    const fs::path data = dir / "bad_data_000002.h5";
    haddr_t address = 0;
    hsize_t size = 0;
    {
      hid_t f = H5Fopen(data.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      hid_t d = H5Dopen2(f, "/entry/data/data", H5P_DEFAULT);
      const hsize_t at[3] = {20, 0, 0};  // frame 120
      unsigned mask = 0;
      REQUIRE(H5Dget_chunk_info_by_coord(d, at, &mask, &address, &size) >= 0);
      H5Dclose(d);
      H5Fclose(f);
    }
    std::vector<unsigned char> bytes = read_bytes(data);
    // Past the 12-byte header and the first block's size: the LZ4 stream itself.
    for (hsize_t i = 16; i < size; ++i) bytes[address + i] = 0xff;
    write_bytes(data, bytes);
    auto d = open_recorded_dataset(master);
    CHECK(read(*d, 119) == c.frame(119));
    std::vector<float> frame(d->frame_pixels());
    const Status s = d->read_frame(120, frame);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains(master.string()) && Catch::Contains("frame 120") &&
                                Catch::Contains("bad_data_000002.h5") &&
                                Catch::Contains("file offset " + std::to_string(address)) &&
                                Catch::Contains("corrupt bitshuffle-LZ4 chunk"));
    CHECK(read(*d, 121) == c.frame(121));
  }
  SECTION("a data file that is not there") {
    const fs::path master = write_dectris(dir, "gone", c);
    write_scan_sidecar(dir, "gone");
    fs::remove(dir / "gone_data_000002.h5");
    try {
      open_recorded_dataset(master);
      FAIL("opened a data set without its data file");
    } catch (const std::exception& e) {
      CHECK_THAT(e.what(), Catch::Contains(master.string()) &&
                               Catch::Contains("/entry/data/data_000002 -> gone_data_000002.h5"));
    }
  }
  SECTION("no scan shape") {
    DectrisLayout layout;
    layout.metadata = false;
    const fs::path master = write_dectris(dir, "bare", c, layout);
    write_scan_sidecar(dir, "bare");
    CHECK_THROWS_WITH(open_recorded_dataset(master),
                      Catch::Contains("scan shape is unknown") && Catch::Contains("bare.json"));
  }
}

// ---- DECTRIS's NeXus 2024 layout: one 4-D /entry/data/data (scan_y, scan_x, rows, cols) --------

namespace {

struct Layout4d {
  hsize_t chunk_y = 1, chunk_x = 1;  // scan positions per chunk (edge chunks padded)
  bool external = false;             // in a data file, linked from the master; else in the master
  bool metadata = true;              // wavelength, pixel size, distance, beam centre
  std::optional<std::array<double, 2>> beam_center_yx;
  std::optional<std::array<double, 2>> ntrigger_nimages;
};

void write_nexus_metadata(hid_t file, const Layout4d& layout) {
  H5Gclose(h5_group(file, "/entry/instrument/detector"));
  if (layout.metadata) {
    h5_scalar(file, "/entry/instrument/beam/incident_wavelength", wavelength_A(300.0));
    h5_scalar(file, "/entry/instrument/detector/x_pixel_size", 55e-6);
    h5_scalar(file, "/entry/instrument/detector/detector_distance", 0.25);
  }
  if (layout.beam_center_yx) {
    h5_scalar(file, "/entry/instrument/detector/beam_center_y", (*layout.beam_center_yx)[0]);
    h5_scalar(file, "/entry/instrument/detector/beam_center_x", (*layout.beam_center_yx)[1]);
  }
  if (layout.ntrigger_nimages) {
    h5_scalar(file, "/entry/instrument/detector/detectorSpecific/ntrigger",
              (*layout.ntrigger_nimages)[0]);
    h5_scalar(file, "/entry/instrument/detector/detectorSpecific/nimages",
              (*layout.ntrigger_nimages)[1]);
  }
}

// <dir>/<name>_master.h5, with the 4-D data in it or in <name>_data_000001.h5.
fs::path write_dectris_4d(const TempDir& dir, const std::string& name, const Cube& c,
                          const Layout4d& layout = {}) {
  const fs::path master = dir / (name + "_master.h5");
  const std::string data_name = name + "_data_000001.h5";
  {
    H5File data(layout.external ? dir / data_name : master);
    hid_t g = h5_group(data.id, "/entry/data");
    const hsize_t sy = c.scan_rows, sx = c.scan_cols, px = c.frame_px;
    const hsize_t dims[4] = {sy, sx, px, px};
    const hsize_t chunk[4] = {layout.chunk_y, layout.chunk_x, px, px};
    hid_t space = H5Screate_simple(4, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    const unsigned bitshuffle_cd[5] = {0, 2, 2, 0, 2};
    REQUIRE(H5Pset_filter(dcpl, kBitshuffle, H5Z_FLAG_OPTIONAL, 5, bitshuffle_cd) >= 0);
    hid_t d = H5Dcreate2(g, "data", H5T_STD_U16LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    REQUIRE(d >= 0);
    for (hsize_t y0 = 0; y0 < sy; y0 += layout.chunk_y)
      for (hsize_t x0 = 0; x0 < sx; x0 += layout.chunk_x) {
        std::vector<std::byte> raw;
        for (hsize_t y = y0; y < y0 + layout.chunk_y; ++y)
          for (hsize_t x = x0; x < x0 + layout.chunk_x; ++x)
            for (std::size_t p = 0; p < c.pixels(); ++p) {
              const std::uint16_t v =
                  y < sy && x < sx ? static_cast<std::uint16_t>(c.count(y * sx + x, p)) : 0;
              raw.push_back(static_cast<std::byte>(v & 0xff));
              raw.push_back(static_cast<std::byte>(v >> 8));
            }
        std::vector<std::byte> encoded;
        REQUIRE(compression::encode_bitshuffle_lz4(raw, 2, &encoded).ok());
        const hsize_t offset[4] = {y0, x0, 0, 0};
        REQUIRE(H5Dwrite_chunk(d, H5P_DEFAULT, 0, offset, encoded.size(), encoded.data()) >= 0);
      }
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Gclose(g);
    if (!layout.external) write_nexus_metadata(data.id, layout);
  }
  if (layout.external) {
    H5File m(master);
    hid_t g = h5_group(m.id, "/entry/data");
    REQUIRE(H5Lcreate_external(data_name.c_str(), "/entry/data/data", g, "data", H5P_DEFAULT,
                               H5P_DEFAULT) >= 0);
    H5Gclose(g);
    write_nexus_metadata(m.id, layout);
  }
  return master;
}

}  // namespace

TEST_CASE("DECTRIS NeXus 2024: a 4-D /entry/data/data gives the scan and the frames",
          "[replay][compression]") {
  TempDir dir;
  Cube c;
  c.scan_rows = 6;
  c.scan_cols = 10;
  SECTION("in the master, one image per chunk; scan from the data, optics from the NeXus metadata") {
    Layout4d layout;
    layout.beam_center_yx = std::array<double, 2>{17.0, 15.5};
    const fs::path master = write_dectris_4d(dir, "nx", c, layout);
    write_scan_sidecar(dir, "nx");  // step, semiangle, defocus: what NeXus does not say
    auto d = open_recorded_dataset(master);
    const RecordedDatasetInfo& info = d->info();
    CHECK(info.format == "dectris-hdf5");
    CHECK(info.raster.rows == 6);
    CHECK(info.raster.cols == 10);
    CHECK(info.frame_rows == 32);
    CHECK(info.probe.energy_keV == Approx(300.0).epsilon(1e-9));
    CHECK(info.probe.detector_pixel_mrad == Approx(1e3 * std::atan(55e-6 / 0.25)));
    CHECK(info.geometry.disk_offset_y_px == 1.0);   // 17 - floor(32 / 2)
    CHECK(info.geometry.disk_offset_x_px == -0.5);  // 15.5 - 16
    CHECK(std::abs(info.probe.tilt_x_px) == 0.5);  // the sub-pixel rest goes to the model
    CHECK(info.probe.tilt_y_px == 0.0);
    REQUIRE(d->frame_count() == 60);
    for (std::size_t k : {0, 1, 9, 10, 33, 59}) {
      INFO("frame " << k);
      CHECK(read(*d, k) == c.frame(k));
    }
  }
  SECTION("in a data file, chunks of 4 x 3 scan positions with padded edges; ntrigger x nimages agree") {
    Layout4d layout;
    layout.external = true;
    layout.chunk_y = 4;
    layout.chunk_x = 3;
    layout.ntrigger_nimages = std::array<double, 2>{1, 60};
    const fs::path master = write_dectris_4d(dir, "chunky", c, layout);
    write_scan_sidecar(dir, "chunky");
    auto d = open_recorded_dataset(master);
    CHECK(d->info().raster.rows == 6);
    CHECK(d->info().raster.cols == 10);
    CHECK(d->info().geometry.disk_offset_y_px == 0.0);  // no beam centre: none
    for (std::size_t k = 0; k < 60; ++k) {
      INFO("frame " << k);
      CHECK(read(*d, k) == c.frame(k));
    }
  }
  SECTION("the sidecar gives the optics and a matching scan_shape; it wins") {
    const fs::path master = write_dectris_4d(dir, "side", c);
    nlohmann::json sidecar = probe_sidecar();
    sidecar["scan_shape"] = {6, 10};
    sidecar["disk_offset_px"] = {0.25, 0.0};
    write_text(dir / "side.json", sidecar.dump());
    auto d = open_recorded_dataset(master);
    CHECK(d->info().probe.energy_keV == 60.0);
    CHECK(d->info().probe.detector_pixel_mrad == 2.0);
    CHECK(d->info().geometry.disk_offset_y_px == 0.25);
    CHECK(read(*d, 42) == c.frame(42));
  }
}

TEST_CASE("DECTRIS NeXus 2024: inconsistent files are refused, saying what disagrees",
          "[replay][compression]") {
  TempDir dir;
  Cube c;
  c.scan_rows = 6;
  c.scan_cols = 10;
  SECTION("a sidecar scan_shape other than the data's") {
    const fs::path master = write_dectris_4d(dir, "shape", c);
    nlohmann::json sidecar = probe_sidecar();
    sidecar["scan_shape"] = {10, 6};
    write_text(dir / "shape.json", sidecar.dump());
    CHECK_THROWS_WITH(open_recorded_dataset(master),
                      Catch::Contains("inconsistent") && Catch::Contains("scan_shape [10, 6]") &&
                          Catch::Contains("6 x 10 x 32 x 32"));
  }
  SECTION("ntrigger x nimages other than the data's scan") {
    Layout4d layout;
    layout.ntrigger_nimages = std::array<double, 2>{8, 8};
    const fs::path master = write_dectris_4d(dir, "count", c, layout);
    write_scan_sidecar(dir, "count");
    CHECK_THROWS_WITH(open_recorded_dataset(master),
                      Catch::Contains("inconsistent") && Catch::Contains("8 x 8 images") &&
                          Catch::Contains("scan of 6 x 10"));
  }
  SECTION("a 5-D dataset") {
    const fs::path master = dir / "five_master.h5";
    {
      H5File m(master);
      hid_t g = h5_group(m.id, "/entry/data");
      const hsize_t dims[5] = {2, 2, 2, 4, 4};
      hid_t space = H5Screate_simple(5, dims, nullptr);
      hid_t d = H5Dcreate2(g, "data", H5T_STD_U16LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dclose(d);
      H5Sclose(space);
      H5Gclose(g);
      H5Gclose(h5_group(m.id, "/entry/instrument/detector"));
    }
    write_scan_sidecar(dir, "five");
    CHECK_THROWS_WITH(open_recorded_dataset(master),
                      Catch::Contains("5-D") && Catch::Contains("(scan_y, scan_x, rows, cols)"));
  }
}
