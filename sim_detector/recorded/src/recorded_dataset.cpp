// RecordedDataset: what all formats share (the sidecar, element conversion, the nearest-position
// index, the session config fragment) and the .npy reader. The HDF5 formats are in
// recorded_hdf5.cpp, Merlin MIB in recorded_mib.cpp.
#include "ptypilot/recorded/recorded_dataset.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <stdexcept>

#include "ptypilot/wire/log.hpp"
#include "mapped_file.hpp"
#include "ptypilot/wire/npy.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "recorded_formats.hpp"

namespace ptypilot {

namespace fs = std::filesystem;

namespace recorded {

// ---- The sidecar.

fs::path sidecar_path_for(const fs::path& data_file) {
  fs::path sidecar = data_file;
  sidecar.replace_extension(".json");
  return sidecar;
}

namespace {

[[noreturn]] void sidecar_error(const fs::path& path, const std::string& what) {
  throw std::runtime_error(path.string() + ": " + what);
}

double finite_number(const nlohmann::json& j, const fs::path& path, const std::string& key) {
  if (!j.is_number()) sidecar_error(path, key + ": expected a number, got " + j.dump());
  const double v = j.get<double>();
  if (!std::isfinite(v)) sidecar_error(path, key + ": must be finite");
  return v;
}

}  // namespace

Sidecar read_sidecar(const fs::path& path) {
  Sidecar s;
  s.path = path;
  std::error_code ec;
  if (!fs::exists(path, ec)) return s;
  std::ifstream in(path);
  if (!in) sidecar_error(path, "cannot read the sidecar");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::exception& e) {
    // Not only parse_error: a number too large for a double is out_of_range (fuzz_recorded_dataset).
    sidecar_error(path, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) sidecar_error(path, "must be a JSON object of probe and scan settings");
  s.present = true;
  struct Key {
    const char* name;
    std::optional<double>* field;
    bool positive;
  };
  const Key keys[] = {
      {"energy_keV", &s.energy_keV, true},
      {"semiangle_mrad", &s.semiangle_mrad, true},
      {"scan_step_A", &s.scan_step_A, true},
      {"detector_pixel_mrad", &s.detector_pixel_mrad, true},
      {"defocus_A", &s.defocus_A, false},
      {"Cs_mm", &s.Cs_mm, false},
      {"rotation_deg", &s.rotation_deg, false},
      {"dose_e_per_A2", &s.dose_e_per_A2, true},
      {"window_px", &s.window_px, true},
  };
  std::string known;
  for (const Key& k : keys) known += std::string(known.empty() ? "" : ", ") + k.name;
  known += ", scan_shape, true_potential, frame_layout, disk_offset_px, flip";
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (key == "scan_shape") {
      const auto& v = it.value();
      if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() ||
          !v[1].is_number_integer() || v[0].get<long long>() <= 0 || v[1].get<long long>() <= 0 ||
          v[0].get<long long>() > std::numeric_limits<int>::max() ||
          v[1].get<long long>() > std::numeric_limits<int>::max())
        sidecar_error(path,
                      "scan_shape: expected [rows, cols], two positive integers, got " + v.dump());
      s.scan_shape = std::array<int, 2>{v[0].get<int>(), v[1].get<int>()};
      continue;
    }
    if (key == "frame_layout") {
      const auto& v = it.value();
      try {
        if (!v.is_string()) throw std::invalid_argument("not a string");
        s.frame_layout = parse_frame_layout(v.get<std::string>());
      } catch (const std::invalid_argument&) {
        sidecar_error(path, "frame_layout: expected \"centred\" (the zero frequency at pixel "
                            "floor(D/2), as detectors and py4DSTEM store frames) or \"fft\" "
                            "(at pixel 0), got " + v.dump());
      }
      continue;
    }
    if (key == "disk_offset_px") {
      const auto& v = it.value();
      if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
        sidecar_error(path, "disk_offset_px: expected [dy, dx] in pixels, got " + v.dump());
      s.disk_offset_px = std::array<double, 2>{finite_number(v[0], path, key),
                                               finite_number(v[1], path, key)};
      continue;
    }
    if (key == "flip") {
      if (!it.value().is_boolean())
        sidecar_error(path, "flip: expected true or false, got " + it.value().dump());
      s.flip = it.value().get<bool>();
      continue;
    }
    if (key == "true_potential") {
      const auto& v = it.value();
      if (!v.is_string() || v.get<std::string>().empty())
        sidecar_error(path, "true_potential: expected the path of a .npy file, got " + v.dump());
      const fs::path file = path.parent_path() / fs::path(v.get<std::string>());
      std::error_code ec;
      if (!fs::is_regular_file(file, ec))
        sidecar_error(path, "true_potential: no such file " + file.string());
      s.true_potential = file;
      continue;
    }
    const Key* match = nullptr;
    for (const Key& k : keys)
      if (key == k.name) match = &k;
    if (match == nullptr) sidecar_error(path, key + ": unknown key (known: " + known + ")");
    const double v = finite_number(it.value(), path, key);
    if (match->positive && !(v > 0)) sidecar_error(path, key + ": must be > 0");
    *match->field = v;
  }
  return s;
}

Settings merge_settings(const Sidecar& sidecar, const Settings& from_file) {
  Settings m = from_file;
  auto take = [](std::optional<double>& into, const std::optional<double>& over) {
    if (over) into = over;
  };
  take(m.energy_keV, sidecar.energy_keV);
  take(m.semiangle_mrad, sidecar.semiangle_mrad);
  take(m.scan_step_A, sidecar.scan_step_A);
  take(m.detector_pixel_mrad, sidecar.detector_pixel_mrad);
  take(m.defocus_A, sidecar.defocus_A);
  take(m.Cs_mm, sidecar.Cs_mm);
  take(m.rotation_deg, sidecar.rotation_deg);
  take(m.dose_e_per_A2, sidecar.dose_e_per_A2);
  if (sidecar.scan_shape) m.scan_shape = sidecar.scan_shape;
  if (sidecar.frame_layout) m.frame_layout = sidecar.frame_layout;
  return m;
}

double apply_settings(const Settings& settings, const Sidecar& sidecar, RecordedDatasetInfo& info,
                      const std::string& format_needs) {
  auto require = [&](const std::optional<double>& v, const char* key, const char* meaning) {
    if (v) return *v;
    const std::string where = sidecar.present ? sidecar.path.string() + " has no '" + key + "'"
                                              : "there is no sidecar " + sidecar.path.string();
    throw std::runtime_error(info.path.string() + ": no " + meaning + " (" + key + "): " + where +
                             ". " + format_needs);
  };
  ProbeConfig& p = info.probe;
  p.energy_keV = require(settings.energy_keV, "energy_keV", "beam energy");
  p.semiangle_mrad = require(settings.semiangle_mrad, "semiangle_mrad", "convergence semi-angle");
  p.detector_pixel_mrad =
      require(settings.detector_pixel_mrad, "detector_pixel_mrad", "angular detector pixel");
  p.defocus_A = require(settings.defocus_A, "defocus_A", "defocus");
  const double step = require(settings.scan_step_A, "scan_step_A", "scan step");
  p.Cs_mm = settings.Cs_mm.value_or(0.0);
  p.window_px = info.frame_rows;
  p.detector_px = 0;
  if (sidecar.window_px) {
    const double w = *sidecar.window_px;
    if (w != std::floor(w) || w < info.frame_rows || w > 8192 || int(w) % 2 != 0)
      throw std::runtime_error(sidecar.path.string() + ": window_px must be an even integer of at "
                               "least the frames' " + std::to_string(info.frame_rows) +
                               " pixels, got " + std::to_string(w));
    p.window_px = static_cast<int>(w);
    if (p.window_px != info.frame_rows) p.detector_px = info.frame_rows;
  }
  info.rotation_deg = settings.rotation_deg.value_or(0.0);
  info.geometry.layout = settings.frame_layout.value_or(FrameLayout::kCentred);
  info.geometry.rotation_deg = info.rotation_deg;
  if (const auto offset = sidecar.disk_offset_px ? sidecar.disk_offset_px : settings.disk_offset_px) {
    info.geometry.disk_offset_y_px = (*offset)[0];
    info.geometry.disk_offset_x_px = (*offset)[1];
  }
  info.geometry.flip = sidecar.flip.value_or(false);
  // As in a session: the rotation beyond quarter turns is the positions' (scan_rotation.hpp),
  // for whoever reconstructs from read_reconstructor_frame (scan_rotation_deg()).
  info.geometry.rotation_in_positions = true;
  const std::array<double, 2> tilt = probe_tilt_px(info.geometry);
  info.probe.tilt_y_px = tilt[0];
  info.probe.tilt_x_px = tilt[1];
  info.dose_e_per_A2 = settings.dose_e_per_A2;
  info.true_potential = sidecar.true_potential;
  return step;
}

// ---- Element types.

std::string describe(ElementType t) {
  const char order = t.bytes == 1 ? '|' : (t.big_endian ? '>' : '<');
  return std::string(1, order) + t.kind + std::to_string(t.bytes);
}

PixelType wire_type_for(ElementType t) {
  if (t.kind == 'u' && t.bytes == 1) return PixelType::kUint8;
  if (t.kind == 'u' && t.bytes == 2) return PixelType::kUint16;
  if (t.kind == 'u' && t.bytes == 4) return PixelType::kUint32;
  return PixelType::kFloat32;
}

namespace {

template <typename T>
void convert(const std::byte* first, std::size_t stride, std::size_t count, bool swap, float* out) {
  using Bits = std::conditional_t<
      sizeof(T) == 1, std::uint8_t,
      std::conditional_t<sizeof(T) == 2, std::uint16_t,
                         std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
  for (std::size_t i = 0; i < count; ++i) {
    Bits bits;
    std::memcpy(&bits, first + i * stride, sizeof bits);
    if constexpr (sizeof(T) == 2) {
      if (swap) bits = __builtin_bswap16(bits);
    } else if constexpr (sizeof(T) == 4) {
      if (swap) bits = __builtin_bswap32(bits);
    } else if constexpr (sizeof(T) == 8) {
      if (swap) bits = __builtin_bswap64(bits);
    }
    out[i] = static_cast<float>(std::bit_cast<T>(bits));
  }
}

}  // namespace

void to_float(ElementType t, const std::byte* first, std::size_t stride, std::size_t count,
              float* out) {
  static_assert(std::endian::native == std::endian::little);
  const bool swap = t.big_endian && t.bytes > 1;
  switch (t.kind) {
    case 'b':
    case 'u':
      if (t.bytes == 1) return convert<std::uint8_t>(first, stride, count, swap, out);
      if (t.bytes == 2) return convert<std::uint16_t>(first, stride, count, swap, out);
      if (t.bytes == 4) return convert<std::uint32_t>(first, stride, count, swap, out);
      return convert<std::uint64_t>(first, stride, count, swap, out);
    case 'i':
      if (t.bytes == 1) return convert<std::int8_t>(first, stride, count, swap, out);
      if (t.bytes == 2) return convert<std::int16_t>(first, stride, count, swap, out);
      if (t.bytes == 4) return convert<std::int32_t>(first, stride, count, swap, out);
      return convert<std::int64_t>(first, stride, count, swap, out);
    case 'f':
      if (t.bytes == 4) return convert<float>(first, stride, count, swap, out);
      return convert<double>(first, stride, count, swap, out);
  }
  std::fill(out, out + count, 0.0f);  // the openers admit no other kind
}

double electrons_per_frame(const RecordedDatasetInfo& info) {
  if (!info.dose_e_per_A2) return 0.0;
  return *info.dose_e_per_A2 * info.raster.step_A * info.raster.step_A;
}

std::vector<Vec2> grid_positions(const RecordedDatasetInfo& info) {
  const auto frames =
      static_cast<std::size_t>(info.raster.rows) * static_cast<std::size_t>(info.raster.cols);
  if (frames > kMaxFrames)
    throw std::runtime_error(info.path.string() + ": a scan of " +
                             std::to_string(info.raster.rows) + " x " +
                             std::to_string(info.raster.cols) + " positions is more than " +
                             std::to_string(kMaxFrames) + " frames");
  return raster_positions(info.raster.rows, info.raster.cols, info.raster.step_A);
}

// ---- .npy: memory-mapped, C or Fortran order.

namespace {

std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

constexpr const char* kNpyNeeds =
    "A .npy data set carries no metadata: its sidecar NAME.json must give energy_keV, "
    "semiangle_mrad, scan_step_A, detector_pixel_mrad and defocus_A (optionally Cs_mm, "
    "rotation_deg, dose_e_per_A2)";

class NpyRecordedDataset final : public RecordedDataset {
 public:
  explicit NpyRecordedDataset(const fs::path& path) : file_(path) {
    const NpyHeader h = parse_npy_header(file_.bytes(), path);
    if (h.shape.size() != 4)
      throw std::runtime_error(path.string() + ": shape " + shape_text(h.shape) +
                               " (the header, ending at offset " + std::to_string(h.data_offset) +
                               ") is not 4-D (scan rows, scan cols, frame rows, frame cols)");
    for (std::size_t d : h.shape)
      if (d == 0 || d > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        throw std::runtime_error(path.string() + ": shape " + shape_text(h.shape) +
                                 " has an empty or oversized dimension");
    if (h.data_offset + h.data_bytes() > file_.size()) {
      std::string where;
      if (!h.fortran_order) {
        const std::size_t frame_bytes = h.shape[2] * h.shape[3] * h.item_bytes;
        const std::size_t whole =
            (file_.size() - std::min(file_.size(), h.data_offset)) / frame_bytes;
        where = "; frame " + std::to_string(whole) +
                ", the first incomplete one, starts at offset " +
                std::to_string(h.data_offset + whole * frame_bytes);
      }
      throw std::runtime_error(path.string() + ": truncated: the header declares shape " +
                               shape_text(h.shape) + " of '" + h.descr + "', " +
                               std::to_string(h.data_bytes()) + " bytes from offset " +
                               std::to_string(h.data_offset) + ", but the file ends at offset " +
                               std::to_string(file_.size()) + where);
    }
    shape_ = h.shape;
    fortran_ = h.fortran_order;
    element_ = {h.kind, h.item_bytes, h.byte_order == '>'};
    data_ = file_.bytes().data() + h.data_offset;

    info_.path = path;
    info_.format = "npy";
    info_.frame_rows = static_cast<int>(h.shape[2]);
    info_.frame_cols = static_cast<int>(h.shape[3]);
    info_.stored_dtype = describe(element_);
    info_.dtype = wire_type_for(element_);
    const Sidecar sidecar = read_sidecar(sidecar_path_for(path));
    const Settings settings = merge_settings(sidecar, {});
    if (settings.scan_shape && ((*settings.scan_shape)[0] != static_cast<int>(h.shape[0]) ||
                                (*settings.scan_shape)[1] != static_cast<int>(h.shape[1])))
      throw std::runtime_error(sidecar.path.string() + ": scan_shape [" +
                               std::to_string((*settings.scan_shape)[0]) + ", " +
                               std::to_string((*settings.scan_shape)[1]) + "] disagrees with " +
                               path.string() + ", whose shape is " + shape_text(h.shape));
    const double step = apply_settings(settings, sidecar, info_, kNpyNeeds);
    info_.raster = {static_cast<int>(h.shape[0]), static_cast<int>(h.shape[1]), step};
    info_.electrons_per_frame = electrons_per_frame(info_);
    positions_A_ = grid_positions(info_);
  }

  Status read_checked(std::size_t index, std::span<float> out) override {
    const std::size_t item = element_.bytes;
    if (!fortran_) {
      to_float(element_, data_ + index * frame_pixels() * item, item, frame_pixels(), out.data());
      return Status::Ok();
    }
    // Fortran order: element (i, j, ky, kx) at i + Ry * (j + Rx * (ky + Ky * kx)), so the
    // pixels of one frame are Ry * Rx * Ky elements apart along kx.
    const std::size_t ry = shape_[0], rx = shape_[1], ky = shape_[2], kx = shape_[3];
    const std::size_t i = index / rx, j = index % rx;
    for (std::size_t r = 0; r < ky; ++r)
      to_float(element_, data_ + (i + ry * (j + rx * r)) * item, ry * rx * ky * item, kx,
               out.data() + r * kx);
    return Status::Ok();
  }

 private:
  MappedFile file_;
  std::vector<std::size_t> shape_;
  bool fortran_ = false;
  ElementType element_;
  const std::byte* data_ = nullptr;
};

}  // namespace

std::unique_ptr<RecordedDataset> open_npy(const fs::path& path) {
  return std::make_unique<NpyRecordedDataset>(path);
}

}  // namespace recorded

Status RecordedDataset::read_frame(std::size_t index, std::span<float> out) {
  if (index >= frame_count())
    return out_of_range(info_.path.string() + ": no frame " + std::to_string(index) + " (" +
                        std::to_string(frame_count()) + " frames)");
  if (out.size() != frame_pixels())
    return invalid_argument("read_frame: the buffer holds " + std::to_string(out.size()) +
                            " floats, a frame " + std::to_string(frame_pixels()));
  return read_checked(index, out);
}

Status RecordedDataset::read_reconstructor_frame(std::size_t index, std::span<float> out) {
  if (!geometry_map_) {
    try {
      geometry_map_ = std::make_unique<FrameGeometryMap>(info_.geometry, info_.frame_rows);
    } catch (const std::invalid_argument& e) {
      return invalid_argument(info_.path.string() + ": " + e.what());
    }
  }
  if (info_.frame_rows != info_.frame_cols)
    return invalid_argument(info_.path.string() + ": frames are not square");
  if (out.size() != geometry_map_->out_pixels())
    return invalid_argument("read_reconstructor_frame: the buffer holds " +
                            std::to_string(out.size()) + " floats, a frame " +
                            std::to_string(geometry_map_->out_pixels()));
  raw_.resize(frame_pixels());
  if (Status s = read_frame(index, raw_); !s.ok()) return s;
  geometry_map_->apply(raw_, out);
  return Status::Ok();
}

// ---- Format detection.

std::unique_ptr<RecordedDataset> open_recorded_dataset(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw std::runtime_error(path.string() + ": no such data set");
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  std::unique_ptr<RecordedDataset> dataset;
  if (ext == ".npy") {
    dataset = recorded::open_npy(path);
  } else if (ext == ".mib") {
    dataset = recorded::open_mib(path);
  } else if (ext == ".h5" || ext == ".hdf5" || ext == ".emd" || ext == ".nxs" || ext == ".hdf") {
    dataset = recorded::open_hdf5(path);
  } else {
    throw std::runtime_error(path.string() +
                             ": unknown data set format; replay reads .npy (with NAME.json), "
                             ".mib (Merlin, with NAME.hdr), and HDF5 (.h5, .hdf5, .emd, .nxs): "
                             "ptypilot recordings, DECTRIS master files, EMD 1.0 / py4DSTEM");
  }
  if (dataset->frame_count() == 0) throw std::runtime_error(path.string() + ": holds no frames");
  return dataset;
}

nlohmann::json geometry_json(const FrameGeometry& g) {
  nlohmann::json j = {{"layout", std::string(to_string(g.layout))}};
  if (g.disk_offset_y_px != 0) j["disk_offset_y_px"] = g.disk_offset_y_px;
  if (g.disk_offset_x_px != 0) j["disk_offset_x_px"] = g.disk_offset_x_px;
  if (g.rotation_deg != 0) j["rotation_deg"] = g.rotation_deg;
  if (g.flip) j["flip"] = true;
  if (g.crop_px != 0) j["crop_px"] = g.crop_px;
  if (g.bin != 1) j["bin"] = g.bin;
  return j;
}

nlohmann::json session_config_fragment(const RecordedDatasetInfo& info) {
  if (info.frame_rows != info.frame_cols)
    throw std::runtime_error(info.path.string() + ": frames are " +
                             std::to_string(info.frame_rows) + " x " +
                             std::to_string(info.frame_cols) +
                             "; the reconstructor needs square frames (crop or bin them)");
  const ProbeConfig& p = info.probe;
  nlohmann::json probe = {
      {"energy_keV", p.energy_keV}, {"semiangle_mrad", p.semiangle_mrad},
      {"defocus_A", p.defocus_A},   {"Cs_mm", p.Cs_mm},
      {"window_px", p.window_px},   {"detector_pixel_mrad", p.detector_pixel_mrad}};
  if (p.aperture_edge_mrad >= 0) probe["aperture_edge_mrad"] = p.aperture_edge_mrad;
  if (p.detector_px != 0) probe["detector_px"] = p.detector_px;
  return {{"session",
           {{"probe", probe},
            {"raster",
             {{"rows", info.raster.rows},
              {"cols", info.raster.cols},
              {"step_A", info.raster.step_A}}}}},
          {"detector",
           {{"dtype", to_string(info.dtype)}, {"geometry", geometry_json(info.geometry)}}}};
}

// ---- NearestPositionIndex.

NearestPositionIndex::NearestPositionIndex(std::span<const Vec2> positions_A)
    : positions_(positions_A.begin(), positions_A.end()) {
  if (positions_.empty()) return;
  Vec2 lo = positions_[0], hi = positions_[0];
  for (const Vec2& p : positions_) {
    lo = {std::min(lo.y, p.y), std::min(lo.x, p.x)};
    hi = {std::max(hi.y, p.y), std::max(hi.x, p.x)};
  }
  origin_ = lo;
  const double height = hi.y - lo.y, width = hi.x - lo.x;
  const double n = static_cast<double>(positions_.size());
  // About one position per bucket: a raster puts one in each.
  double bucket =
      (height > 0 && width > 0) ? std::sqrt(height * width / n) : std::max(height, width) / n;
  if (!(bucket > 0) || !std::isfinite(bucket)) bucket = 1.0;
  // Clustered positions with a far outlier would ask for a huge grid; a few buckets per position
  // is enough.
  auto buckets_along = [&](double extent) { return std::floor(extent / bucket) + 1.0; };
  while (buckets_along(height) * buckets_along(width) > 4.0 * n + 16.0) bucket *= 2.0;
  bucket_A_ = bucket;
  bucket_rows_ = static_cast<int>(buckets_along(height));
  bucket_cols_ = static_cast<int>(buckets_along(width));

  auto bucket_of = [&](const Vec2& p) {
    const int r =
        std::clamp(static_cast<int>(std::floor((p.y - lo.y) / bucket)), 0, bucket_rows_ - 1);
    const int c =
        std::clamp(static_cast<int>(std::floor((p.x - lo.x) / bucket)), 0, bucket_cols_ - 1);
    return static_cast<std::size_t>(r) * bucket_cols_ + c;
  };
  const std::size_t buckets = static_cast<std::size_t>(bucket_rows_) * bucket_cols_;
  bucket_start_.assign(buckets + 1, 0);
  for (const Vec2& p : positions_) ++bucket_start_[bucket_of(p) + 1];
  for (std::size_t b = 0; b < buckets; ++b) bucket_start_[b + 1] += bucket_start_[b];
  order_.resize(positions_.size());
  std::vector<std::size_t> fill(bucket_start_.begin(), bucket_start_.end() - 1);
  for (std::size_t i = 0; i < positions_.size(); ++i) order_[fill[bucket_of(positions_[i])]++] = i;
}

NearestPositionIndex::Match NearestPositionIndex::nearest(Vec2 q) const {
  Match best{0, std::numeric_limits<double>::infinity()};
  if (positions_.empty()) return best;
  double best_d2 = std::numeric_limits<double>::infinity();
  const long long qr = static_cast<long long>(std::floor((q.y - origin_.y) / bucket_A_));
  const long long qc = static_cast<long long>(std::floor((q.x - origin_.x) / bucket_A_));
  auto visit = [&](long long r, long long c) {
    const std::size_t b = static_cast<std::size_t>(r) * bucket_cols_ + static_cast<std::size_t>(c);
    for (std::size_t k = bucket_start_[b]; k < bucket_start_[b + 1]; ++k) {
      const std::size_t i = order_[k];
      const double dy = positions_[i].y - q.y, dx = positions_[i].x - q.x;
      const double d2 = dy * dy + dx * dx;
      if (d2 < best_d2 || (d2 == best_d2 && i < best.index)) {
        best_d2 = d2;
        best.index = i;
      }
    }
  };
  const long long rows = bucket_rows_, cols = bucket_cols_;
  auto visit_row = [&](long long r, long long c0, long long c1) {
    if (r < 0 || r >= rows) return;
    for (long long c = std::max(c0, 0LL); c <= std::min(c1, cols - 1); ++c) visit(r, c);
  };
  auto visit_column = [&](long long c, long long r0, long long r1) {
    if (c < 0 || c >= cols) return;
    for (long long r = std::max(r0, 0LL); r <= std::min(r1, rows - 1); ++r) visit(r, c);
  };
  // Rings of buckets around the query's own. Every position beyond ring r is at least r buckets
  // away, so once the best is nearer than that the search is done; a tie at exactly that
  // distance looks one ring further for a lower index.
  const long long last_ring = std::max(
      {std::llabs(qr), std::llabs(qc), std::llabs(rows - 1 - qr), std::llabs(cols - 1 - qc)});
  for (long long ring = 0; ring <= last_ring; ++ring) {
    visit_row(qr - ring, qc - ring, qc + ring);
    if (ring > 0) {
      visit_row(qr + ring, qc - ring, qc + ring);
      visit_column(qc - ring, qr - ring + 1, qr + ring - 1);
      visit_column(qc + ring, qr - ring + 1, qr + ring - 1);
    }
    const double reach = static_cast<double>(ring) * bucket_A_;
    if (best_d2 < reach * reach) break;
  }
  best.distance_A = std::sqrt(best_d2);
  return best;
}

}  // namespace ptypilot
