// Quantum Detectors Merlin .mib files (format: recorded_dataset.hpp). Each frame is an ASCII
// header of comma-separated fields,
//   MQ1,<frame number>,<header bytes>,<chips>,<width>,<height>,<pixel depth>,<layout>,...
// followed by width x height big-endian pixels. Every frame of a file has the same header size
// and shape, so frame k starts at k * (header bytes + pixel bytes). The frame header and the .hdr
// are parsed by the protocol's one parser, ptypilot/wire/merlin.hpp, which the live source uses too.
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/wire/log.hpp"
#include "ptypilot/wire/merlin.hpp"
#include "mapped_file.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "recorded_formats.hpp"

namespace ptypilot::recorded {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw std::runtime_error(path.string() + ": " + what);
}

// The frame header at `offset` (the protocol's one parser, ptypilot/wire/merlin.hpp), or a
// reason it is not one.
std::optional<merlin::FrameHeader> parse_frame_header(std::span<const std::byte> file,
                                                      std::size_t offset, std::string* why) {
  return merlin::parse_frame_header(file.subspan(offset), why);
}

// What the acquisition header NAME.hdr says about the scan.
struct AcquisitionHeader : merlin::AcquisitionHeader {
  bool present = false;
};

AcquisitionHeader read_acquisition_header(const fs::path& path) {
  AcquisitionHeader h;
  std::ifstream in(path, std::ios::binary);
  if (!in) return h;
  h.present = true;
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static_cast<merlin::AcquisitionHeader&>(h) = merlin::parse_acquisition_header(text);
  return h;
}

constexpr const char* kMibNeeds =
    "A Merlin data set's probe and scan step come from its sidecar NAME.json: energy_keV, "
    "semiangle_mrad, scan_step_A, detector_pixel_mrad and defocus_A (optionally scan_shape, Cs_mm, "
    "rotation_deg, dose_e_per_A2)";

class MibRecordedDataset final : public RecordedDataset {
 public:
  explicit MibRecordedDataset(const fs::path& path) : file_(path) {
    const std::span<const std::byte> bytes = file_.bytes();
    if (bytes.empty()) fail(path, "empty file");
    fs::path hdr_path = path;
    hdr_path.replace_extension(".hdr");
    const AcquisitionHeader acquisition = read_acquisition_header(hdr_path);

    std::string why;
    const std::optional<merlin::FrameHeader> first = parse_frame_header(bytes, 0, &why);
    if (!first) fail(path, "frame 0 at offset 0: " + why);
    if (first->depth.size() == 3 && first->depth[0] == 'R')
      fail(path,
           "frame 0 at offset 0: raw pixel depth " + first->depth +
               (acquisition.counter_depth
                    ? " (counter depth " + std::to_string(*acquisition.counter_depth) + " bits)"
                    : std::string()) +
               " is not supported: raw frames keep the Medipix3 chip's readout order; "
               "record with raw mode off (U08, U16 or U32 frames)");
    if (first->depth == "U08")
      element_ = {'u', 1, true};
    else if (first->depth == "U16")
      element_ = {'u', 2, true};
    else if (first->depth == "U32")
      element_ = {'u', 4, true};
    else
      fail(path, "frame 0 at offset 0: pixel depth '" + first->depth +
                     "' is not supported (U08, U16, U32)");
    header_bytes_ = first->header_bytes;
    first_number_ = static_cast<long long>(first->number);
    const std::size_t pixel_bytes =
        static_cast<std::size_t>(first->width) * first->height * element_.bytes;
    stride_ = header_bytes_ + pixel_bytes;
    const std::size_t whole = bytes.size() / stride_;
    const std::size_t tail = bytes.size() % stride_;
    if (tail != 0)
      fail(path, "truncated: frame " + std::to_string(whole) + " at offset " +
                     std::to_string(whole * stride_) + " has " + std::to_string(tail) + " of its " +
                     std::to_string(stride_) + " bytes (a " + std::to_string(header_bytes_) +
                     "-byte header and " + std::to_string(first->width) + " x " +
                     std::to_string(first->height) + " " + first->depth + " pixels)");
    // The last frame must sit where the first one's size says; else the sizes changed midway.
    if (whole > 1) {
      const std::size_t last = (whole - 1) * stride_;
      const std::optional<merlin::FrameHeader> h = parse_frame_header(bytes, last, &why);
      if (!h)
        fail(path, "frame " + std::to_string(whole - 1) + " at offset " + std::to_string(last) +
                       ": " + why);
      if (h->header_bytes != header_bytes_ || h->width != first->width ||
          h->height != first->height || h->depth != first->depth)
        fail(path, "frame " + std::to_string(whole - 1) + " at offset " + std::to_string(last) +
                       ": its header size, shape or depth differs from frame 0's");
    }

    info_.path = path;
    info_.format = "merlin-mib";
    info_.frame_rows = first->height;
    info_.frame_cols = first->width;
    info_.stored_dtype = describe(element_);
    info_.dtype = wire_type_for(element_);
    const Sidecar sidecar = read_sidecar(sidecar_path_for(path));
    Settings settings = merge_settings(sidecar, {});
    if (!settings.scan_shape) {
      const auto& a = acquisition;
      if (a.frames_in_acquisition && a.frames_per_trigger && *a.frames_per_trigger > 1 &&
          *a.frames_in_acquisition > 0 && *a.frames_in_acquisition % *a.frames_per_trigger == 0 &&
          *a.frames_in_acquisition / *a.frames_per_trigger <= std::numeric_limits<int>::max())
        settings.scan_shape =
            std::array<int, 2>{static_cast<int>(*a.frames_in_acquisition / *a.frames_per_trigger),
                               static_cast<int>(*a.frames_per_trigger)};
      else
        fail(path,
             "the scan shape is unknown: " + sidecar.path.string() + " has no scan_shape and " +
                 (a.present
                      ? hdr_path.string() + " does not give one trigger per scan row (Frames in "
                                            "Acquisition a multiple of Frames per Trigger > 1)"
                      : "there is no " + hdr_path.string()));
    }
    const auto [rows, cols] = *settings.scan_shape;
    const std::size_t needed = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
    if (whole < needed)
      fail(path, "holds " + std::to_string(whole) + " frames, but the " + std::to_string(rows) +
                     " x " + std::to_string(cols) + " scan needs " + std::to_string(needed) +
                     " (the file ends at offset " + std::to_string(bytes.size()) + ")");
    if (whole > needed)
      log::warn("recorded_dataset_extra_frames",
                {{"path", path.string()},
                 {"frames", whole},
                 {"scan_frames", needed},
                 {"note", "the frames after the scan are not replayed"}});
    const double step = apply_settings(settings, sidecar, info_, kMibNeeds);
    info_.raster = {rows, cols, step};
    info_.electrons_per_frame = electrons_per_frame(info_);
    positions_A_ = grid_positions(info_);
  }

  Status read_checked(std::size_t index, std::span<float> out) override {
    const std::size_t offset = index * stride_;
    std::string why;
    const std::optional<merlin::FrameHeader> h = parse_frame_header(file_.bytes(), offset, &why);
    if (!h)
      return invalid_argument(info_.path.string() + ": frame " + std::to_string(index) +
                              " at offset " + std::to_string(offset) + ": " + why);
    if (h->header_bytes != header_bytes_ || h->width != info_.frame_cols ||
        h->height != info_.frame_rows)
      return invalid_argument(info_.path.string() + ": frame " + std::to_string(index) +
                              " at offset " + std::to_string(offset) +
                              ": its header size or shape differs from frame 0's");
    const long long expected = first_number_ + static_cast<long long>(index);
    if (static_cast<long long>(h->number) != expected)
      return invalid_argument(info_.path.string() + ": frame " + std::to_string(index) +
                              " at offset " + std::to_string(offset) + ": its header says frame " +
                              std::to_string(h->number) + ", expected " + std::to_string(expected) +
                              " (a frame is missing or repeated in the file)");
    to_float(element_, file_.bytes().data() + offset + header_bytes_, element_.bytes,
             frame_pixels(), out.data());
    return Status::Ok();
  }

 private:
  MappedFile file_;
  ElementType element_;
  std::size_t header_bytes_ = 0;
  std::size_t stride_ = 0;
  long long first_number_ = 0;
};

}  // namespace

std::unique_ptr<RecordedDataset> open_mib(const fs::path& path) {
  return std::make_unique<MibRecordedDataset>(path);
}

}  // namespace ptypilot::recorded
