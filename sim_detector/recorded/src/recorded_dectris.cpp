// DECTRIS master/data HDF5 files (format: recorded_dataset.hpp). The master file holds the
// metadata and, in /entry/data, links data_000001, data_000002, ... (external links to the data
// files' /entry/data/data) to datasets of (n, Ky, Kx) images. The images are chunked, normally
// one per chunk, and compressed with bitshuffle + LZ4 (HDF5 filter 32008) or LZ4 (32004). Those
// chunks are read raw (H5Dread_chunk) and decoded by compression.hpp, the codec of the DECTRIS
// streams, so that no HDF5 filter plugin is needed; chunks with filters HDF5 has built in
// (deflate, shuffle, ...) or none are read through H5Dread.
#include <hdf5.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ptypilot/wire/compression.hpp"
#include "ptypilot/wire/hdf5_support.hpp"
#include "ptypilot/wire/log.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "recorded_formats.hpp"

namespace ptypilot::recorded {

namespace fs = std::filesystem;
using hdf5::H5Id;

namespace {

constexpr H5Z_filter_t kBitshuffleFilter = 32008;
constexpr H5Z_filter_t kLz4Filter = 32004;
constexpr unsigned kBitshuffleLz4 = 2;  // cd_values[4] of filter 32008: the LZ4 compressor

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw std::runtime_error(path.string() + ": " + what);
}

std::optional<double> scalar(hid_t file, const char* path) {
  if (!hdf5::link_exists(file, path)) return std::nullopt;
  H5Id d(H5Dopen2(file, path, H5P_DEFAULT), H5Dclose);
  if (!d.valid()) {
    hdf5::forget_errors();
    return std::nullopt;
  }
  H5Id space(H5Dget_space(d.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1) return std::nullopt;
  double v = 0;
  if (H5Dread(d.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0) {
    hdf5::forget_errors();
    return std::nullopt;
  }
  return v;
}

// The beam energy whose relativistic electron wavelength is `wavelength_A`, when it is one of an
// electron microscope (10 keV to 1 MeV); nullopt otherwise (an X-ray detector's wavelength).
std::optional<double> electron_energy_keV(double wavelength_A) {
  double lo = 10.0, hi = 1000.0;
  if (!(wavelength_A <= ptypilot::wavelength_A(lo) && wavelength_A >= ptypilot::wavelength_A(hi)))
    return std::nullopt;
  for (int i = 0; i < 100; ++i) {  // the wavelength falls with the energy
    const double mid = 0.5 * (lo + hi);
    (ptypilot::wavelength_A(mid) > wavelength_A ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// The external link's target file, for messages; the link's own name when it is not external.
std::string link_target(hid_t file, const std::string& link) {
  hdf5::LinkInfo info;
  if (H5Lget_info(file, link.c_str(), &info, H5P_DEFAULT) < 0 || info.type != H5L_TYPE_EXTERNAL) {
    hdf5::forget_errors();
    return link;
  }
  std::vector<char> value(info.u.val_size);
  const char* target_file = nullptr;
  const char* target_object = nullptr;
  unsigned flags = 0;
  if (H5Lget_val(file, link.c_str(), value.data(), value.size(), H5P_DEFAULT) < 0 ||
      H5Lunpack_elink_val(value.data(), value.size(), &flags, &target_file, &target_object) < 0) {
    hdf5::forget_errors();
    return link;
  }
  return std::string(target_file) + ":" + target_object;
}

// One data file's images, read chunk by chunk: a stack (n, rows, cols), or the NeXus 2024
// layout's 4-D (scan_y, scan_x, rows, cols), image i at scan (i / scan_x, i % scan_x).
class ImageBlock {
 public:
  ImageBlock(const fs::path& master, std::string name, H5Id dataset, ElementType element)
      : master_(master), name_(std::move(name)), dataset_(std::move(dataset)), element_(element) {
    const hid_t d = dataset_.get();
    H5Id space(H5Dget_space(d), H5Sclose);
    rank_ = H5Sget_simple_extent_ndims(space.get());
    if (rank_ != 3 && rank_ != 4)
      fail(master_, name_ + ": " + std::to_string(rank_) +
                        "-D; expected a stack of images (n, rows, cols) or a 4-D scan "
                        "(scan_y, scan_x, rows, cols)");
    H5Sget_simple_extent_dims(space.get(), shape_, nullptr);
    if (rank_ == 3) {  // one scan axis of n images: the same code as the 4-D layout
      shape_[3] = shape_[2], shape_[2] = shape_[1], shape_[1] = shape_[0], shape_[0] = 1;
    }
    for (int i = 0; i < 4; ++i)
      if (shape_[i] == 0) fail(master_, name_ + ": an empty dimension (shape " + shape_text() + ")");
    H5Id dcpl(H5Dget_create_plist(d), H5Pclose);
    if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED) {
      hsize_t chunk[4] = {1, 1, 1, 1};
      H5Pget_chunk(dcpl.get(), rank_, chunk);
      if (rank_ == 3) chunk_[0] = 1, chunk_[1] = chunk[0], chunk_[2] = chunk[1], chunk_[3] = chunk[2];
      else std::copy(chunk, chunk + 4, chunk_);
      if (chunk_[2] != shape_[2] || chunk_[3] != shape_[3])
        fail(master_, name_ + ": chunks of " + std::to_string(chunk_[2]) + " x " +
                          std::to_string(chunk_[3]) + " split its " + std::to_string(shape_[2]) +
                          " x " + std::to_string(shape_[3]) + " images; replay reads whole images");
      const int filters = H5Pget_nfilters(dcpl.get());
      for (int f = 0; f < filters; ++f) {
        unsigned flags = 0, cd[8] = {};
        std::size_t cd_count = 8;
        char filter_name[64] = {};
        const H5Z_filter_t id =
            H5Pget_filter2(dcpl.get(), static_cast<unsigned>(f), &flags, &cd_count, cd,
                           sizeof filter_name, filter_name, nullptr);
        if (id == kBitshuffleFilter || id == kLz4Filter) {
          if (filters != 1)
            fail(master_, name_ + ": filter " + std::to_string(id) +
                              " together with other filters; replay decodes it only alone");
          if (id == kBitshuffleFilter && cd_count >= 5 && cd[4] != kBitshuffleLz4)
            fail(master_, name_ + ": bitshuffle with compressor " + std::to_string(cd[4]) +
                              " (cd_values[4]); replay decodes bitshuffle with LZ4 (2) only");
          codec_ = id;
        }
      }
    }
    // A chunk of several images is decoded once for all of them.
    if (codec_ != 0)
      chunk_bytes_ = chunk_[0] * chunk_[1] * shape_[2] * shape_[3] * element_.bytes;
  }

  std::size_t images() const { return static_cast<std::size_t>(shape_[0] * shape_[1]); }
  int rows() const { return static_cast<int>(shape_[2]); }
  int cols() const { return static_cast<int>(shape_[3]); }
  bool four_d() const { return rank_ == 4; }
  // The 4-D layout's scan [scan_y, scan_x].
  std::array<hsize_t, 2> scan() const { return {shape_[0], shape_[1]}; }
  const std::string& name() const { return name_; }
  std::string shape_text() const {
    std::string t;
    for (int i = 4 - rank_; i < 4; ++i) t += (t.empty() ? "" : " x ") + std::to_string(shape_[i]);
    return t;
  }

  Status read(std::size_t image, std::span<float> out) {
    hdf5::CaptureErrors capture;
    const std::size_t pixels = static_cast<std::size_t>(shape_[2] * shape_[3]);
    const hsize_t y = image / shape_[1], x = image % shape_[1];
    if (codec_ == 0) {  // HDF5's own filters, or none
      const hsize_t start4[4] = {y, x, 0, 0}, count4[4] = {1, 1, shape_[2], shape_[3]};
      const hsize_t* start = start4 + (4 - rank_);
      const hsize_t* count = count4 + (4 - rank_);
      H5Id file_space(H5Dget_space(dataset_.get()), H5Sclose);
      H5Id mem_space(H5Screate_simple(rank_, count, nullptr), H5Sclose);
      if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) <
              0 ||
          H5Dread(dataset_.get(), H5T_NATIVE_FLOAT, mem_space.get(), file_space.get(), H5P_DEFAULT,
                  out.data()) < 0)
        return {StatusCode::kInternal, name_ + ": image " + std::to_string(image) +
                                           " cannot be read: " + hdf5::error_text()};
      return Status::Ok();
    }
    const hsize_t cy = y / chunk_[0], cx = x / chunk_[1];
    const hsize_t chunk_index = cy * ((shape_[1] + chunk_[1] - 1) / chunk_[1]) + cx;
    if (!cached_ || cached_chunk_ != chunk_index) {
      cached_ = false;
      if (Status s = decode_chunk(cy * chunk_[0], cx * chunk_[1], image); !s.ok()) return s;
      cached_ = true;
      cached_chunk_ = chunk_index;
    }
    // The chunk is C order (chunk_y, chunk_x, rows, cols), full size also at the edges.
    const std::size_t within = (y % chunk_[0]) * chunk_[1] + x % chunk_[1];
    to_float(element_, decoded_.data() + within * pixels * element_.bytes, element_.bytes, pixels,
             out.data());
    return Status::Ok();
  }

 private:
  Status decode_chunk(hsize_t y0, hsize_t x0, std::size_t image) {
    const hsize_t offset4[4] = {y0, x0, 0, 0};
    const hsize_t* offset = offset4 + (4 - rank_);
    unsigned mask = 0;
    haddr_t address = HADDR_UNDEF;
    hsize_t stored = 0;
    if (H5Dget_chunk_info_by_coord(dataset_.get(), offset, &mask, &address, &stored) < 0 ||
        address == HADDR_UNDEF) {
      return {StatusCode::kInternal,
              where(image, HADDR_UNDEF, 0) + ": the chunk is not in the file (never written)"};
    }
    raw_.resize(stored);
    std::uint32_t filters_skipped = 0;
    if (H5Dread_chunk(dataset_.get(), H5P_DEFAULT, offset, &filters_skipped, raw_.data()) < 0)
      return {StatusCode::kInternal,
              where(image, address, stored) + ": cannot be read: " + hdf5::error_text()};
    decoded_.resize(chunk_bytes_);
    Status s;
    if (filters_skipped & 1u) {  // the writer stored this chunk unfiltered
      s = compression::decode_none(raw_, decoded_);
    } else if (codec_ == kBitshuffleFilter) {
      s = compression::decode_bitshuffle_lz4(raw_, element_.bytes, decoded_);
    } else {
      s = compression::decode_lz4_hdf5(raw_, decoded_);
    }
    if (!s.ok())
      return {StatusCode::kInvalidArgument,
              where(image, address, stored) + ": corrupt " +
                  (codec_ == kBitshuffleFilter ? "bitshuffle-LZ4" : "LZ4") +
                  " chunk: " + s.message()};
    return Status::Ok();
  }

  std::string where(std::size_t image, haddr_t address, hsize_t bytes) const {
    std::string s = name_ + ": chunk of image " + std::to_string(image);
    if (address != HADDR_UNDEF)
      s += " (at file offset " + std::to_string(address) + ", " + std::to_string(bytes) + " bytes)";
    return s;
  }

  fs::path master_;
  std::string name_;  // "<data file>:<dataset>", for messages
  H5Id dataset_;
  ElementType element_;
  int rank_ = 3;
  hsize_t shape_[4] = {1, 0, 0, 0};  // (scan_y, scan_x, rows, cols); a stack: (1, n, rows, cols)
  hsize_t chunk_[4] = {1, 1, 0, 0};
  H5Z_filter_t codec_ = 0;  // 32008, 32004, or 0: HDF5 reads it
  std::size_t chunk_bytes_ = 0;
  std::vector<std::byte> raw_, decoded_;
  bool cached_ = false;
  hsize_t cached_chunk_ = 0;
};

constexpr const char* kDectrisNeeds =
    "A DECTRIS data set's scan comes from its sidecar (NAME.json or NAME_master.json): "
    "scan_shape [rows, cols] (else the 4-D data's first two dimensions, else ntrigger x "
    "nimages when both exceed 1), scan_step_A, "
    "semiangle_mrad and defocus_A; energy_keV and detector_pixel_mrad too unless the master "
    "gives an electron wavelength and x_pixel_size / detector_distance";

class DectrisRecordedDataset final : public RecordedDataset {
 public:
  explicit DectrisRecordedDataset(const fs::path& master) {
    hdf5::CaptureErrors capture;
    file_ = H5Id(H5Fopen(master.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!file_.valid()) fail(master, "cannot open: " + hdf5::error_text());
    const hid_t f = file_.get();
    // Data files are found beside the master, wherever the process runs.
    H5Id dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    const std::string directory =
        master.parent_path().empty() ? "." : master.parent_path().string();
    H5Pset_elink_prefix(dapl.get(), (directory + "/").c_str());

    std::vector<std::string> links;
    H5Id group(H5Gopen2(f, "/entry/data", H5P_DEFAULT), H5Gclose);
    H5G_info_t ginfo;
    if (!group.valid() || H5Gget_info(group.get(), &ginfo) < 0)
      fail(master, "cannot open /entry/data: " + hdf5::error_text());
    for (hsize_t i = 0; i < ginfo.nlinks; ++i) {
      char name[256] = {};
      if (H5Lget_name_by_idx(group.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                             H5P_DEFAULT) < 0)
        continue;
      const std::string n = name;
      if (n.rfind("data_", 0) == 0 && n.size() == 11 &&
          std::all_of(n.begin() + 5, n.end(), [](char c) { return c >= '0' && c <= '9'; }))
        links.push_back("/entry/data/" + n);
    }
    std::sort(links.begin(),
              links.end());  // data_000001, data_000002, ...: name order is number order
    if (links.empty() && hdf5::link_exists(f, "/entry/data/data"))
      links.push_back("/entry/data/data");
    if (links.empty()) fail(master, "/entry/data has no data_NNNNNN links and no data dataset");

    std::optional<ElementType> element;
    for (const std::string& link : links) {
      const std::string target = link_target(f, link);
      H5Id d(H5Dopen2(f, link.c_str(), dapl.get()), H5Dclose);
      if (!d.valid())
        fail(master,
             link + " -> " + target +
                 ": cannot open (is the data file beside the master?): " + hdf5::error_text());
      H5Id type(H5Dget_type(d.get()), H5Tclose);
      ElementType t;
      t.bytes = H5Tget_size(type.get());
      t.big_endian = H5Tget_order(type.get()) == H5T_ORDER_BE;
      const H5T_class_t c = H5Tget_class(type.get());
      t.kind = c == H5T_FLOAT ? 'f' : (H5Tget_sign(type.get()) == H5T_SGN_2 ? 'i' : 'u');
      if ((c != H5T_INTEGER && c != H5T_FLOAT) ||
          (t.bytes != 1 && t.bytes != 2 && t.bytes != 4 && t.bytes != 8))
        fail(master, target + ": images of a type other than integers or float32/float64");
      if (element && (element->bytes != t.bytes || element->kind != t.kind))
        fail(master, target + ": its image type differs from the first data file's");
      element = t;
      blocks_.emplace_back(master, target, std::move(d), t);
      if (blocks_.back().rows() != blocks_.front().rows() ||
          blocks_.back().cols() != blocks_.front().cols())
        fail(master, target + ": its image shape differs from the first data file's");
      total_ += blocks_.back().images();
    }

    info_.path = master;
    info_.format = "dectris-hdf5";
    info_.frame_rows = blocks_.front().rows();
    info_.frame_cols = blocks_.front().cols();
    info_.stored_dtype = describe(*element);
    info_.dtype = wire_type_for(*element);

    Settings from_file;
    if (const auto lambda = scalar(f, "/entry/instrument/beam/incident_wavelength"))
      from_file.energy_keV = electron_energy_keV(*lambda);
    const auto pixel_m = scalar(f, "/entry/instrument/detector/x_pixel_size");
    const auto distance_m = scalar(f, "/entry/instrument/detector/detector_distance");
    if (pixel_m && distance_m && *pixel_m > 0 && *distance_m > 0)
      from_file.detector_pixel_mrad = 1e3 * std::atan(*pixel_m / *distance_m);
    const auto nimages = scalar(f, "/entry/instrument/detector/detectorSpecific/nimages");
    const auto ntrigger = scalar(f, "/entry/instrument/detector/detectorSpecific/ntrigger");
    if (nimages && ntrigger && *nimages > 1 && *ntrigger > 1 && *nimages < 1e9 && *ntrigger < 1e9)
      from_file.scan_shape =
          std::array<int, 2>{static_cast<int>(*ntrigger), static_cast<int>(*nimages)};

    // The direct beam's pixel on the detector, when the master has one inside the frame: the
    // disk's offset from floor(D/2), unless the sidecar gives disk_offset_px.
    const auto centre_x = scalar(f, "/entry/instrument/detector/beam_center_x");
    const auto centre_y = scalar(f, "/entry/instrument/detector/beam_center_y");
    if (centre_x && centre_y && *centre_x > 0 && *centre_y > 0 && *centre_x < info_.frame_cols &&
        *centre_y < info_.frame_rows)
      from_file.disk_offset_px = std::array<double, 2>{
          *centre_y - std::floor(info_.frame_rows / 2.0), *centre_x - std::floor(info_.frame_cols / 2.0)};

    Sidecar sidecar = read_sidecar(sidecar_path_for(master));
    std::string stem = master.stem().string();
    if (!sidecar.present && stem.size() > 7 && stem.ends_with("_master")) {
      fs::path plain = master;
      plain.replace_filename(stem.substr(0, stem.size() - 7) + ".json");
      sidecar = read_sidecar(plain);
    }

    // The NeXus 2024 layout: one 4-D /entry/data/data (scan_y, scan_x, rows, cols), whose
    // first two dimensions are the scan. What else says the scan must agree with it.
    const auto four_d = std::find_if(blocks_.begin(), blocks_.end(),
                                     [](const ImageBlock& b) { return b.four_d(); });
    if (four_d != blocks_.end() && blocks_.size() != 1)
      fail(master, four_d->name() + ": 4-D data together with other data links; the 4-D "
                                    "layout has one dataset, /entry/data/data");
    if (four_d != blocks_.end()) {
      const ImageBlock& block = *four_d;
      const auto [sy, sx] = block.scan();
      if (sy > 1'000'000 || sx > 1'000'000)
        fail(master, block.name() + ": a scan of " + block.shape_text() + " is not plausible");
      const std::array<int, 2> scan{static_cast<int>(sy), static_cast<int>(sx)};
      if (sidecar.scan_shape && *sidecar.scan_shape != scan)
        fail(master, "inconsistent: " + sidecar.path.string() + " says scan_shape [" +
                         std::to_string((*sidecar.scan_shape)[0]) + ", " +
                         std::to_string((*sidecar.scan_shape)[1]) + "], but " + block.name() +
                         " is " + block.shape_text() + " (scan_y, scan_x, rows, cols)");
      if (nimages && ntrigger && *nimages >= 1 && *ntrigger >= 1 &&
          *nimages * *ntrigger != static_cast<double>(sy * sx))
        fail(master, "inconsistent: the master's ntrigger x nimages is " +
                         std::to_string(static_cast<long long>(*ntrigger)) + " x " +
                         std::to_string(static_cast<long long>(*nimages)) + " images, but " +
                         block.name() + " is a scan of " + std::to_string(sy) + " x " +
                         std::to_string(sx) + " (" + block.shape_text() + ")");
      from_file.scan_shape = scan;
    }
    const Settings settings = merge_settings(sidecar, from_file);
    if (!settings.scan_shape)
      fail(master, "the scan shape is unknown: " + sidecar.path.string() +
                       (sidecar.present ? " has no scan_shape" : " does not exist") +
                       ", and the master's nimages and ntrigger do not give one. " + kDectrisNeeds);
    const auto [rows, cols] = *settings.scan_shape;
    const std::size_t needed = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    if (total_ < needed)
      fail(master, "holds " + std::to_string(total_) + " images, but the " + std::to_string(rows) +
                       " x " + std::to_string(cols) + " scan needs " + std::to_string(needed));
    if (total_ > needed)
      log::warn("recorded_dataset_extra_frames",
                {{"path", master.string()},
                 {"frames", total_},
                 {"scan_frames", needed},
                 {"note", "the images after the scan are not replayed"}});
    const double step = apply_settings(settings, sidecar, info_, kDectrisNeeds);
    info_.raster = {rows, cols, step};
    info_.electrons_per_frame = electrons_per_frame(info_);
    positions_A_ = grid_positions(info_);
  }

  Status read_checked(std::size_t index, std::span<float> out) override {
    std::size_t image = index;
    for (ImageBlock& block : blocks_) {
      if (image < block.images()) {
        Status s = block.read(image, out);
        if (!s.ok())
          return {s.code(),
                  info_.path.string() + ": frame " + std::to_string(index) + ": " + s.message()};
        return s;
      }
      image -= block.images();
    }
    return out_of_range(info_.path.string() + ": no frame " + std::to_string(index));
  }

 private:
  H5Id file_;
  std::vector<ImageBlock> blocks_;
  std::size_t total_ = 0;
};

}  // namespace

std::unique_ptr<RecordedDataset> open_dectris(const fs::path& path) {
  return std::make_unique<DectrisRecordedDataset>(path);
}

}  // namespace ptypilot::recorded
