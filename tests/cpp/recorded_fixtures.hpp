// Small recorded data sets, generated per test in a temporary folder: every file written byte by
// byte per its format (or through the HDF5 C API), so that the readers are tested against the
// formats and not against themselves.
#pragma once

#include <hdf5.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ptypilot::test {

namespace fs = std::filesystem;

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "replay") {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() / ("ptypilot-" + tag + "-" + std::to_string(::getpid()) +
                                         "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// The reference 4D-STEM data set: scan_rows x scan_cols frames of frame_px x frame_px counts,
// count(frame, pixel) distinct enough that a wrong frame, pixel order or byte order shows.
struct Cube {
  int scan_rows = 16;
  int scan_cols = 16;
  int frame_px = 32;
  std::uint32_t modulus = 60000;  // keeps the counts inside the stored type

  std::size_t frames() const { return static_cast<std::size_t>(scan_rows) * scan_cols; }
  std::size_t pixels() const { return static_cast<std::size_t>(frame_px) * frame_px; }
  std::uint32_t count(std::size_t frame, std::size_t pixel) const {
    return static_cast<std::uint32_t>((frame * 131 + pixel * 7 + (pixel % 5) * frame) % modulus);
  }
  std::vector<float> frame(std::size_t k) const {
    std::vector<float> f(pixels());
    for (std::size_t p = 0; p < pixels(); ++p) f[p] = static_cast<float>(count(k, p));
    return f;
  }
};

inline nlohmann::json probe_sidecar() {
  return {{"energy_keV", 60.0},         {"semiangle_mrad", 25.0}, {"scan_step_A", 0.3},
          {"detector_pixel_mrad", 2.0}, {"defocus_A", 50.0},      {"Cs_mm", 0.5},
          {"dose_e_per_A2", 1e4},       {"frame_layout", "fft"}};
}

inline void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline void write_bytes(const fs::path& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<unsigned char> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Stores `value` in `bytes` bytes, little- or big-endian.
inline void put_uint(std::vector<unsigned char>& out, std::uint64_t value, std::size_t bytes,
                     bool big_endian) {
  for (std::size_t i = 0; i < bytes; ++i) {
    const std::size_t shift = 8 * (big_endian ? bytes - 1 - i : i);
    out.push_back(static_cast<unsigned char>((value >> shift) & 0xff));
  }
}

// An .npy file (format 1.0) with this header and these data bytes.
inline void write_npy_file(const fs::path& path, const std::string& descr,
                           const std::vector<std::size_t>& shape, bool fortran,
                           const std::vector<unsigned char>& data) {
  std::string dims;
  for (std::size_t d : shape) dims += std::to_string(d) + ", ";
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': (" +
                       dims + "), }";
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<unsigned char> bytes = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  put_uint(bytes, header.size(), 2, false);
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), data.begin(), data.end());
  write_bytes(path, bytes);
}

// The cube as unsigned integers of `bytes` bytes, scan-major (C order) or Fortran order.
inline std::vector<unsigned char> cube_bytes(const Cube& c, std::size_t bytes, bool big_endian,
                                             bool fortran = false) {
  std::vector<unsigned char> out;
  out.reserve(c.frames() * c.pixels() * bytes);
  if (!fortran) {
    for (std::size_t k = 0; k < c.frames(); ++k)
      for (std::size_t p = 0; p < c.pixels(); ++p) put_uint(out, c.count(k, p), bytes, big_endian);
    return out;
  }
  const std::size_t n = c.frame_px;
  for (std::size_t kx = 0; kx < n; ++kx)
    for (std::size_t ky = 0; ky < n; ++ky)
      for (int j = 0; j < c.scan_cols; ++j)
        for (int i = 0; i < c.scan_rows; ++i)
          put_uint(out, c.count(static_cast<std::size_t>(i) * c.scan_cols + j, ky * n + kx), bytes,
                   big_endian);
  return out;
}

// A Merlin .mib file: per frame a header of `header_bytes` bytes, "MQ1,<number>,<header
// bytes>,01,<width>,<height>,<depth>,   1x1,..." padded with NULs, then big-endian pixels.
inline std::vector<unsigned char> mib_bytes(const Cube& c, const std::string& depth,
                                            std::size_t header_bytes = 384, int first_number = 1) {
  const std::size_t px = depth == "U08" ? 1 : depth == "U16" ? 2 : 4;
  std::vector<unsigned char> out;
  char width[8];
  std::snprintf(width, sizeof width, "%04d", c.frame_px);
  char size[8];
  std::snprintf(size, sizeof size, "%05zu", header_bytes);
  for (std::size_t k = 0; k < c.frames(); ++k) {
    char number[16];
    std::snprintf(number, sizeof number, "%06zu", k + static_cast<std::size_t>(first_number));
    std::string header = std::string("MQ1,") + number + "," + size + ",01," + width + "," + width +
                         "," + depth + ",   1x1,01,2024-01-02 03:04:05.678901,0.001000,0,0,0," +
                         "1.000000E+1,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,"
                         "0.000000E+0,0.000000E+0,0.000000E+0,3RX,0,0,0,0,0,0,0,0";
    header.resize(header_bytes, '\0');
    out.insert(out.end(), header.begin(), header.end());
    for (std::size_t p = 0; p < c.pixels(); ++p) put_uint(out, c.count(k, p), px, true);
  }
  return out;
}

inline std::string mib_acquisition_header(std::size_t frames, int frames_per_trigger,
                                          int counter_depth = 12) {
  return "HDR,\t\nTime and Date Stamp (day, mnth, yr, hr, min, s):\t02/01/2024 03:04:05\n"
         "Chip ID:\tW529_F5,-,-,-\nAssembly Size (NX1, 2X2):\t   1x1\n"
         "Counter Depth (number):\t" +
         std::to_string(counter_depth) +
         "\n"
         "Frames in Acquisition (Number):\t" +
         std::to_string(frames) +
         "\n"
         "Frames per Trigger (Number):\t" +
         std::to_string(frames_per_trigger) +
         "\n"
         "Readout System:\tMerlin Quad\nEnd\t\n";
}

// ---- HDF5.

struct H5File {
  hid_t id;
  explicit H5File(const fs::path& path)
      : id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) {}
  ~H5File() { H5Fclose(id); }
};

inline void h5_number_attribute(hid_t object, const char* name, double value,
                                hid_t type = H5T_NATIVE_DOUBLE) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (type == H5T_NATIVE_INT) {
    const int v = static_cast<int>(value);
    H5Awrite(attr, H5T_NATIVE_INT, &v);
  } else {
    H5Awrite(attr, H5T_NATIVE_DOUBLE, &value);
  }
  H5Aclose(attr);
  H5Sclose(space);
}

inline void h5_string_attribute(hid_t object, const char* name, const std::string& value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, value.size() + 1);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, type, value.c_str());
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

inline hid_t h5_group(hid_t parent, const std::string& path) {
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t g = H5Gcreate2(parent, path.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  return g;
}

inline void h5_vector(hid_t parent, const char* name, const std::vector<double>& values,
                      const std::string& units, const std::string& dim_name) {
  const hsize_t n = values.size();
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t d = H5Dcreate2(parent, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  h5_string_attribute(d, "units", units);
  h5_string_attribute(d, "name", dim_name);
  H5Dclose(d);
  H5Sclose(space);
}

// An EMD array group at `group_path` holding the cube as `data` (uint16, chunked per frame,
// deflated when asked) with dimension vectors dim{first_dim}..dim{first_dim + 3}: the scan in
// `scan_units` at `scan_step` per pixel (all values, or the first two when `linear_pair`).
struct EmdLayout {
  std::string group_path = "/4DSTEM_experiment/data/datacubes/datacube_0";
  int first_dim = 1;
  std::string scan_units = "[n_m]";
  double scan_step = 0.03;  // 0.3 A in nm
  bool linear_pair = false;
  bool deflate = false;
  int emd_group_type = 1;
};

inline void write_emd(const fs::path& path, const Cube& c, const EmdLayout& layout = {}) {
  H5File file(path);
  h5_number_attribute(file.id, "version_major", 1, H5T_NATIVE_INT);
  h5_number_attribute(file.id, "version_minor", 0, H5T_NATIVE_INT);
  hid_t g = h5_group(file.id, layout.group_path);
  h5_number_attribute(g, "emd_group_type", layout.emd_group_type, H5T_NATIVE_INT);
  const hsize_t dims[4] = {static_cast<hsize_t>(c.scan_rows), static_cast<hsize_t>(c.scan_cols),
                           static_cast<hsize_t>(c.frame_px), static_cast<hsize_t>(c.frame_px)};
  const hsize_t chunk[4] = {1, 1, dims[2], dims[3]};
  hid_t space = H5Screate_simple(4, dims, nullptr);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 4, chunk);
  if (layout.deflate) H5Pset_deflate(dcpl, 4);
  hid_t d = H5Dcreate2(g, "data", H5T_STD_U16LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  std::vector<std::uint16_t> values(c.frames() * c.pixels());
  for (std::size_t k = 0; k < c.frames(); ++k)
    for (std::size_t p = 0; p < c.pixels(); ++p)
      values[k * c.pixels() + p] = static_cast<std::uint16_t>(c.count(k, p));
  H5Dwrite(d, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  auto vector_of = [&](int n, double step) {
    std::vector<double> v;
    for (int i = 0; i < (layout.linear_pair ? 2 : n); ++i) v.push_back(i * step);
    return v;
  };
  const std::string names[4] = {"R_x", "R_y", "Q_x", "Q_y"};
  const int sizes[4] = {c.scan_rows, c.scan_cols, c.frame_px, c.frame_px};
  for (int axis = 0; axis < 4; ++axis) {
    const std::string name = "dim" + std::to_string(layout.first_dim + axis);
    const bool scan = axis < 2;
    h5_vector(g, name.c_str(), vector_of(sizes[axis], scan ? layout.scan_step : 1.0),
              scan ? layout.scan_units : "[pix]", names[axis]);
  }
  H5Gclose(g);
}

}  // namespace ptypilot::test
