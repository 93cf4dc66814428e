// The HDF5 recorded data sets: ptypilot recordings, DECTRIS master files and EMD / py4DSTEM data
// cubes (formats: recorded_dataset.hpp).
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ptypilot/wire/config_schema.hpp"
#include "ptypilot/wire/hdf5_support.hpp"
#include "ptypilot/wire/log.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "recorded_formats.hpp"

namespace ptypilot::recorded {

namespace fs = std::filesystem;
using hdf5::H5Id;
using hdf5::link_exists;

namespace {

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw std::runtime_error(path.string() + ": " + what);
}

std::optional<std::string> string_attribute(hid_t object, const char* name) {
  if (H5Aexists(object, name) <= 0) return std::nullopt;
  H5Id attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  H5Id type(H5Aget_type(attr.get()), H5Tclose);
  if (!attr.valid() || !type.valid() || H5Tget_class(type.get()) != H5T_STRING) return std::nullopt;
  H5Id space(H5Aget_space(attr.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) return std::nullopt;
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Id memtype(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memtype.get(), H5T_VARIABLE);
    H5Tset_cset(memtype.get(), H5Tget_cset(type.get()));
    char* text = nullptr;
    if (H5Aread(attr.get(), memtype.get(), &text) < 0 || text == nullptr) return std::nullopt;
    std::string value(text);
    H5free_memory(text);
    return value;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  H5Id memtype(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(memtype.get(), size);
  if (H5Aread(attr.get(), memtype.get(), value.data()) < 0) return std::nullopt;
  value.resize(std::strlen(value.c_str()));
  return value;
}

std::optional<double> number_attribute(hid_t object, const char* name) {
  if (H5Aexists(object, name) <= 0) return std::nullopt;
  H5Id attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  H5Id type(H5Aget_type(attr.get()), H5Tclose);
  const H5T_class_t c = H5Tget_class(type.get());
  if (c != H5T_INTEGER && c != H5T_FLOAT) return std::nullopt;
  H5Id space(H5Aget_space(attr.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) return std::nullopt;
  double value = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value) < 0) return std::nullopt;
  return value;
}

std::vector<hsize_t> dataset_shape(hid_t dataset) {
  H5Id space(H5Dget_space(dataset), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

std::string shape_text(const std::vector<hsize_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

// The stored number type of a dataset, or nullopt for one replay cannot send.
std::optional<ElementType> element_type_of(hid_t dataset) {
  H5Id type(H5Dget_type(dataset), H5Tclose);
  ElementType t;
  t.bytes = H5Tget_size(type.get());
  t.big_endian = H5Tget_order(type.get()) == H5T_ORDER_BE;
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER:
      t.kind = H5Tget_sign(type.get()) == H5T_SGN_2 ? 'i' : 'u';
      if (t.bytes != 1 && t.bytes != 2 && t.bytes != 4 && t.bytes != 8) return std::nullopt;
      return t;
    case H5T_FLOAT:
      t.kind = 'f';
      if (t.bytes != 4 && t.bytes != 8) return std::nullopt;
      return t;
    default:
      return std::nullopt;
  }
}

std::vector<double> read_doubles(hid_t dataset) {
  const std::vector<hsize_t> shape = dataset_shape(dataset);
  std::size_t n = 1;
  for (hsize_t d : shape) n *= d;
  std::vector<double> values(n);
  if (n > 0 &&
      H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
    return {};
  return values;
}

// Frames that are the trailing two dimensions of one dataset: (N, Ky, Kx) or (Ry, Rx, Ky, Kx),
// frame k at the leading index k (row-major over the scan dimensions). HDF5 converts to float
// and applies the dataset's filters (deflate and the like).
class FrameStack {
 public:
  FrameStack() = default;
  FrameStack(fs::path file, std::string name, H5Id dataset)
      : file_(std::move(file)), name_(std::move(name)), dataset_(std::move(dataset)) {
    shape_ = dataset_shape(dataset_.get());
    H5Id dcpl(H5Dget_create_plist(dataset_.get()), H5Pclose);
    chunked_ = H5Pget_layout(dcpl.get()) == H5D_CHUNKED;
  }
  const std::vector<hsize_t>& shape() const { return shape_; }
  hid_t dataset() const { return dataset_.get(); }

  Status read(std::size_t index, std::span<float> out) const {
    hdf5::CaptureErrors capture;
    const std::size_t scan_dims = shape_.size() - 2;
    std::vector<hsize_t> start(shape_.size(), 0), count(shape_.size(), 1);
    std::size_t rest = index;
    for (std::size_t d = scan_dims; d-- > 0;) {
      start[d] = rest % shape_[d];
      rest /= shape_[d];
    }
    count[scan_dims] = shape_[scan_dims];
    count[scan_dims + 1] = shape_[scan_dims + 1];
    H5Id file_space(H5Dget_space(dataset_.get()), H5Sclose);
    const hsize_t frame_dims[2] = {count[scan_dims], count[scan_dims + 1]};
    H5Id mem_space(H5Screate_simple(2, frame_dims, nullptr), H5Sclose);
    if (!file_space.valid() || !mem_space.valid() ||
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                            nullptr) < 0 ||
        H5Dread(dataset_.get(), H5T_NATIVE_FLOAT, mem_space.get(), file_space.get(), H5P_DEFAULT,
                out.data()) < 0) {
      const std::string why = hdf5::error_text();
      return {StatusCode::kInternal, file_.string() + ": frame " + std::to_string(index) + " of " +
                                         name_ + where(start) + ": cannot be read: " + why};
    }
    return Status::Ok();
  }

 private:
  // Where the frame's bytes are in the file, for the error message.
  std::string where(const std::vector<hsize_t>& start) const {
    haddr_t address = HADDR_UNDEF;
    hsize_t bytes = 0;
    if (chunked_) {
      unsigned mask = 0;
      if (H5Dget_chunk_info_by_coord(dataset_.get(), start.data(), &mask, &address, &bytes) < 0)
        address = HADDR_UNDEF;
    } else {
      const haddr_t base = H5Dget_offset(dataset_.get());
      if (base != HADDR_UNDEF) {
        H5Id type(H5Dget_type(dataset_.get()), H5Tclose);
        std::size_t element = 0;
        for (std::size_t d = 0; d < shape_.size(); ++d) element = element * shape_[d] + start[d];
        address = base + element * H5Tget_size(type.get());
      }
    }
    hdf5::forget_errors();
    if (address == HADDR_UNDEF) return "";
    return std::string(chunked_ ? " (its chunk" : " (its data") + " at file offset " +
           std::to_string(address) + (chunked_ ? ", " + std::to_string(bytes) + " bytes)" : ")");
  }

  fs::path file_;
  std::string name_;
  H5Id dataset_;
  std::vector<hsize_t> shape_;
  bool chunked_ = false;
};

H5Id open_dataset(const fs::path& path, hid_t file, const char* name) {
  H5Id dataset(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) fail(path, std::string("cannot open ") + name + ": " + hdf5::error_text());
  return dataset;
}

ElementType require_element_type(const fs::path& path, hid_t dataset, const std::string& name) {
  const std::optional<ElementType> t = element_type_of(dataset);
  if (!t) fail(path, name + ": not a dataset of integers or float32/float64");
  return *t;
}

// ---- ptypilot recordings (hdf5_recorder.hpp).

// The daemon's detector.geometry, as the recording's config_json has it. A recording without
// one predates the geometry, when the daemon took every frame in the FFT layout. The mask and
// flat-field files are named there but not read back: the recording is replayed as it arrived.
FrameGeometry recording_geometry(const nlohmann::json& config) {
  FrameGeometry g;
  g.layout = FrameLayout::kFft;
  const auto detector = config.find("detector");
  if (detector == config.end() || !detector->is_object()) return g;
  const auto block = detector->find("geometry");
  if (block == detector->end()) return g;
  g.layout = parse_frame_layout(block->value("layout", std::string("centred")));
  g.disk_offset_y_px = block->value("disk_offset_y_px", 0.0);
  g.disk_offset_x_px = block->value("disk_offset_x_px", 0.0);
  g.rotation_deg = block->value("rotation_deg", 0.0);
  g.flip = block->value("flip", false);
  g.crop_px = block->value("crop_px", 0);
  g.bin = block->value("bin", 1);
  g.rotation_in_positions = true;  // as the session did (scan_rotation.hpp)
  return g;
}

bool is_recording(hid_t file) {
  return H5Aexists(file, "layout_version") > 0 && link_exists(file, "/frames/counts") &&
         link_exists(file, "/frames/position_A");
}

class RecordingDataset final : public RecordedDataset {
 public:
  RecordingDataset(const fs::path& path, H5Id file) : file_(std::move(file)) {
    const hid_t f = file_.get();
    // Recordings since layout_version 2 store the counts bitshuffle + LZ4 (filter 32008), which
    // H5Dread then needs: the installed plugin, or ptypilot's own codec where there is none.
    if (!hdf5::ensure_bitshuffle_filter())
      fail(path, "cannot register the bitshuffle filter (32008) that /frames/counts needs: " +
                     hdf5::error_text());
    H5Id counts = open_dataset(path, f, "/frames/counts");
    const std::vector<hsize_t> shape = dataset_shape(counts.get());
    if (shape.size() != 3 || shape[1] == 0 || shape[2] == 0)
      fail(path, "/frames/counts has shape " + shape_text(shape) + ", not (N, rows, cols)");
    const ElementType element = require_element_type(path, counts.get(), "/frames/counts");
    H5Id positions = open_dataset(path, f, "/frames/position_A");
    const std::vector<hsize_t> pshape = dataset_shape(positions.get());
    if (pshape.size() != 2 || pshape[1] != 2 || pshape[0] != shape[0])
      fail(path, "/frames/position_A has shape " + shape_text(pshape) + ", not (" +
                     std::to_string(shape[0]) + ", 2) like /frames/counts");
    const std::vector<double> yx = read_doubles(positions.get());
    if (yx.size() != 2 * shape[0])
      fail(path, "cannot read /frames/position_A: " + hdf5::error_text());
    for (std::size_t i = 0; i < shape[0]; ++i) {
      if (!std::isfinite(yx[2 * i]) || !std::isfinite(yx[2 * i + 1]))
        fail(path, "/frames/position_A row " + std::to_string(i) + " is not finite");
      positions_A_.push_back({yx[2 * i], yx[2 * i + 1]});
    }

    const std::optional<std::string> config_text = string_attribute(f, "config_json");
    if (!config_text)
      fail(path, "no config_json attribute: the session's probe and raster are unknown");
    // The daemon wrote its whole configuration; the probe and the raster are what a reader
    // needs, and they are declared where this library can read them (config_schema.hpp).
    ProbeConfig probe;
    ScanRaster raster;
    try {
      const nlohmann::json config = nlohmann::json::parse(*config_text);
      const nlohmann::json& session = config.at("session");
      probe = read_config_section<ProbeConfig>(session.at("probe"), "session.probe");
      raster = read_config_section<ScanRaster>(session.at("raster"), "session.raster");
      info_.geometry = recording_geometry(config);
    } catch (const std::exception& e) {
      fail(path, std::string("config_json attribute is not a session configuration: ") + e.what());
    }
    info_.path = path;
    info_.format = "ptypilot-recording";
    info_.frame_rows = static_cast<int>(shape[1]);
    info_.frame_cols = static_cast<int>(shape[2]);
    info_.stored_dtype = describe(element);
    info_.dtype = wire_type_for(element);
    info_.probe = probe;
    int mapped_side = info_.frame_rows;
    try {
      mapped_side = FrameGeometryMap(info_.geometry, info_.frame_rows).out_side();
    } catch (const std::invalid_argument& e) {
      fail(path, std::string("config_json's detector.geometry: ") + e.what());
    }
    if (info_.probe.detector_side_px() != mapped_side)
      fail(path, "frames are " + std::to_string(info_.frame_rows) + " px (" +
                     std::to_string(mapped_side) +
                     " after the geometry) but config_json's session.probe gives a detector of " +
                     std::to_string(info_.probe.detector_side_px()) + " px");
    info_.raster = raster;
    const std::array<double, 2> tilt = probe_tilt_px(info_.geometry);
    info_.probe.tilt_y_px = tilt[0];
    info_.probe.tilt_x_px = tilt[1];
    if (link_exists(f, "/frames/electrons_per_frame")) {
      H5Id electrons = open_dataset(path, f, "/frames/electrons_per_frame");
      const std::vector<double> e = read_doubles(electrons.get());
      double sum = 0;
      for (double v : e) sum += v;
      if (!e.empty()) info_.electrons_per_frame = sum / static_cast<double>(e.size());
    }
    const std::optional<double> complete = number_attribute(f, "complete");
    if (!complete || *complete != 1.0)
      log::warn("recorded_dataset_incomplete_session",
                {{"path", path.string()},
                 {"frames", frame_count()},
                 {"note", "the session did not end cleanly; its recorded frames are replayed"}});
    frames_ = FrameStack(path, "/frames/counts", std::move(counts));
  }

  Status read_checked(std::size_t index, std::span<float> out) override {
    return frames_.read(index, out);
  }

 private:
  H5Id file_;
  FrameStack frames_;
};

// ---- EMD 1.0 / py4DSTEM.

struct EmdCandidates {
  std::vector<std::string> arrays;  // groups with emd_group_type = 1 and a 4-D `data`
  std::vector<std::string> others;  // such groups whose `data` is not 4-D, with its shape
};

bool is_emd_array_group(hid_t group) {
  if (H5Aexists(group, "emd_group_type") <= 0) return false;
  if (const std::optional<double> n = number_attribute(group, "emd_group_type")) return *n == 1.0;
  const std::optional<std::string> s = string_attribute(group, "emd_group_type");
  return s && *s == "array";
}

herr_t collect_emd_array(hid_t parent, const char* name, const hdf5::LinkInfo* info, void* data) {
  if (info->type != H5L_TYPE_HARD) return 0;
  H5Id group(H5Gopen2(parent, name, H5P_DEFAULT), H5Gclose);
  if (!group.valid()) {  // a dataset, not a group
    hdf5::forget_errors();
    return 0;
  }
  if (!is_emd_array_group(group.get()) || H5Lexists(group.get(), "data", H5P_DEFAULT) <= 0) {
    hdf5::forget_errors();
    return 0;
  }
  H5Id dataset(H5Dopen2(group.get(), "data", H5P_DEFAULT), H5Dclose);
  auto* found = static_cast<EmdCandidates*>(data);
  if (dataset.valid()) {
    const std::vector<hsize_t> shape = dataset_shape(dataset.get());
    if (shape.size() == 4)
      found->arrays.push_back(std::string("/") + name);
    else
      found->others.push_back(std::string("/") + name + "/data " + shape_text(shape) +
                              " at file offset " + std::to_string(H5Dget_offset(dataset.get())));
  }
  hdf5::forget_errors();
  return 0;
}

// A length unit's size in Angstrom; nullopt for pixels, an empty unit or one not recognised.
std::optional<double> angstrom_per_unit(std::string unit) {
  std::erase_if(unit, [](char c) { return c == '[' || c == ']' || c == '_' || c == ' '; });
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (unit == "a" || unit == "\xc3\xa5" || unit == "angstrom" || unit == "angstroms" ||
      unit == "ang")
    return 1.0;
  if (unit == "nm") return 10.0;
  if (unit == "pm") return 0.01;
  if (unit == "um" || unit == "\xc2\xb5m" || unit == "\xce\xbcm") return 1e4;
  return std::nullopt;
}

constexpr const char* kEmdNeeds =
    "An EMD / py4DSTEM data cube gives the scan step in its dimension vectors when their units "
    "are lengths; the sidecar NAME.json (or attributes of the same names on the array group) "
    "must give energy_keV, semiangle_mrad, detector_pixel_mrad and defocus_A, and scan_step_A "
    "when the dimensions are in pixels";

class EmdDataset final : public RecordedDataset {
 public:
  EmdDataset(const fs::path& path, H5Id file, const std::string& group_path)
      : file_(std::move(file)) {
    H5Id group(H5Gopen2(file_.get(), group_path.c_str(), H5P_DEFAULT), H5Gclose);
    if (!group.valid()) fail(path, "cannot open " + group_path + ": " + hdf5::error_text());
    const std::string data_name = group_path + "/data";
    H5Id data = open_dataset(path, file_.get(), data_name.c_str());
    const std::vector<hsize_t> shape = dataset_shape(data.get());
    for (hsize_t d : shape)
      if (d == 0 || d > static_cast<hsize_t>(std::numeric_limits<int>::max()))
        fail(path, data_name + " has shape " + shape_text(shape) +
                       " with an empty or oversized dimension");
    const ElementType element = require_element_type(path, data.get(), data_name);

    Settings from_file;
    from_file.energy_keV = number_attribute(group.get(), "energy_keV");
    from_file.semiangle_mrad = number_attribute(group.get(), "semiangle_mrad");
    from_file.scan_step_A = number_attribute(group.get(), "scan_step_A");
    from_file.detector_pixel_mrad = number_attribute(group.get(), "detector_pixel_mrad");
    from_file.defocus_A = number_attribute(group.get(), "defocus_A");
    from_file.Cs_mm = number_attribute(group.get(), "Cs_mm");
    from_file.rotation_deg = number_attribute(group.get(), "rotation_deg");
    from_file.dose_e_per_A2 = number_attribute(group.get(), "dose_e_per_A2");
    if (const std::optional<std::string> layout = string_attribute(group.get(), "frame_layout")) {
      try {
        from_file.frame_layout = parse_frame_layout(*layout);
      } catch (const std::invalid_argument& e) {
        fail(path, std::string("attribute frame_layout: ") + e.what());
      }
    }
    // The dimension vectors: dim1..dim4 in EMD 1.0, dim0..dim3 in py4DSTEM 0.13 and later.
    const int first_dim = H5Lexists(group.get(), "dim0", H5P_DEFAULT) > 0 ? 0 : 1;
    hdf5::forget_errors();
    std::optional<double> steps[2];
    for (int axis = 0; axis < 2; ++axis) {
      const std::string name = "dim" + std::to_string(first_dim + axis);
      if (H5Lexists(group.get(), name.c_str(), H5P_DEFAULT) <= 0) {
        hdf5::forget_errors();
        continue;
      }
      H5Id dim(H5Dopen2(group.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
      if (!dim.valid()) continue;
      const std::vector<double> v = read_doubles(dim.get());
      const std::optional<std::string> units = string_attribute(dim.get(), "units");
      const std::optional<double> scale = units ? angstrom_per_unit(*units) : std::nullopt;
      if (v.size() >= 2 && scale) steps[axis] = (v[1] - v[0]) * *scale;
    }
    hdf5::forget_errors();
    if (steps[0] && steps[1] && std::abs(*steps[0] - *steps[1]) > 1e-6 * std::abs(*steps[0]))
      fail(path, group_path + ": the scan steps differ between rows (" + std::to_string(*steps[0]) +
                     " A) and columns (" + std::to_string(*steps[1]) +
                     " A); replay needs one step (a square scan pixel)");
    const std::optional<double> dim_step = steps[0] ? steps[0] : steps[1];
    if (!from_file.scan_step_A && dim_step) from_file.scan_step_A = std::abs(*dim_step);

    info_.path = path;
    info_.format = "emd";
    info_.frame_rows = static_cast<int>(shape[2]);
    info_.frame_cols = static_cast<int>(shape[3]);
    info_.stored_dtype = describe(element);
    info_.dtype = wire_type_for(element);
    const Sidecar sidecar = read_sidecar(sidecar_path_for(path));
    const Settings settings = merge_settings(sidecar, from_file);
    if (settings.scan_shape && ((*settings.scan_shape)[0] != static_cast<int>(shape[0]) ||
                                (*settings.scan_shape)[1] != static_cast<int>(shape[1])))
      fail(sidecar.path, "scan_shape disagrees with " + data_name + " of " + path.string() +
                             ", whose shape is " + shape_text(shape));
    const double step = apply_settings(settings, sidecar, info_, kEmdNeeds);
    info_.raster = {static_cast<int>(shape[0]), static_cast<int>(shape[1]), step};
    info_.electrons_per_frame = electrons_per_frame(info_);
    positions_A_ = grid_positions(info_);
    frames_ = FrameStack(path, data_name, std::move(data));
  }

  Status read_checked(std::size_t index, std::span<float> out) override {
    return frames_.read(index, out);
  }

 private:
  H5Id file_;
  FrameStack frames_;
};

// ---- DECTRIS master files.

bool is_dectris_master(hid_t file) {
  return link_exists(file, "/entry/data") && link_exists(file, "/entry/instrument/detector") &&
         (link_exists(file, "/entry/data/data_000001") || link_exists(file, "/entry/data/data"));
}

}  // namespace

std::unique_ptr<RecordedDataset> open_dectris(const fs::path& path);

std::unique_ptr<RecordedDataset> open_hdf5(const fs::path& path) {
  hdf5::CaptureErrors capture;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    hdf5::forget_errors();
    fail(path,
         "not an HDF5 file (no HDF5 signature in its " + std::to_string(ec ? 0 : size) + " bytes)");
  }
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid())
    fail(path, "cannot open as HDF5 (" + std::to_string(ec ? 0 : size) +
                   " bytes; truncated or damaged?): " + hdf5::error_text());
  if (is_recording(file.get())) return std::make_unique<RecordingDataset>(path, std::move(file));
  if (is_dectris_master(file.get())) {
    file.reset();
    return open_dectris(path);
  }
  EmdCandidates candidates;
  H5Lvisit(file.get(), H5_INDEX_NAME, H5_ITER_INC, collect_emd_array, &candidates);
  hdf5::forget_errors();
  if (candidates.arrays.size() == 1)
    return std::make_unique<EmdDataset>(path, std::move(file), candidates.arrays[0]);
  if (candidates.arrays.size() > 1) {
    std::string list;
    for (const auto& a : candidates.arrays) list += (list.empty() ? "" : ", ") + a;
    fail(path, "holds several 4-D EMD arrays (" + list +
                   "); replay needs one: copy the one to replay into a file of its own");
  }
  if (!candidates.others.empty()) {
    std::string list;
    for (const auto& a : candidates.others) list += (list.empty() ? "" : "; ") + a;
    fail(path,
         "its EMD arrays are not 4-D (scan rows, scan cols, frame rows, frame cols): " + list);
  }
  fail(path,
       "not a recognised data set: found neither a ptypilot recording (/frames/counts, "
       "/frames/position_A), a DECTRIS master file (/entry/data/data_000001, "
       "/entry/instrument/detector), nor an EMD array (a group with emd_group_type = 1 "
       "and a 4-D 'data' dataset)");
}

}  // namespace ptypilot::recorded
