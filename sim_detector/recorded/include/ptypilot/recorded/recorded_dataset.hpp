// RecordedDataset: a recorded 4D-STEM data set, one diffraction frame per recorded scan position,
// read lazily (data sets are many GB). `ptypilot replay` plays one in the detector's role, and
// `ptypilot eval --dataset-dir` reconstructs its full grid as the ground truth.
//
// Formats, told apart by open_recorded_dataset():
//   .npy          4-D (Ry, Rx, Ky, Kx), C or Fortran order, any byte order; u1/u2/u4/u8,
//                 i1/i2/i4/i8, f4, f8, b1. Memory-mapped. Needs the sidecar NAME.json.
//   .mib          Quantum Detectors Merlin: frames of "MQ1,..." header + big-endian pixels in
//                 U08/U16/U32 (raw R64 is refused). Memory-mapped. The scan shape comes from the
//                 sidecar's scan_shape or else from NAME.hdr (Frames in Acquisition / Frames per
//                 Trigger, one trigger per scan row); the probe from the sidecar.
//   .h5/.hdf5/.emd/.nxs, by content:
//     ptypilot recording  a session of `ptypilot serve` (layout: hdf5_recorder.hpp): frames at
//                 the positions the session approved, probe and raster from its config_json.
//     DECTRIS     master file of a DECTRIS detector (Eiger/ELA/Arina file writer):
//                 /entry/data/data_NNNNNN (external links to data files) of (n, Ky, Kx) images
//                 in chunks compressed with bitshuffle+LZ4 (HDF5 filter 32008). The raw chunks
//                 are read with H5Dread_chunk and decoded here, so no filter plugin is needed.
//                 Probe and scan from the sidecar; energy_keV and detector_pixel_mrad fall back
//                 to /entry/instrument/beam/incident_wavelength and x_pixel_size /
//                 detector_distance of /entry/instrument/detector when the sidecar lacks them,
//                 and the disk offset to beam_center_x/y - floor(D/2) when those lie inside the
//                 frame and the sidecar has no disk_offset_px. DECTRIS's NeXus 2024 layout: one
//                 4-D /entry/data/data (scan_y, scan_x, rows, cols), in the master or an external
//                 link; the scan is its first two dimensions, and a sidecar scan_shape or an
//                 ntrigger x nimages that disagrees is refused as inconsistent.
//     EMD 1.0 / py4DSTEM  the first group with attribute emd_group_type = 1 holding a 4-D `data`
//                 dataset (Ry, Rx, Ky, Kx) and its dimension vectors dim1..dim4 (EMD 1.0) or
//                 dim0..dim3 (py4DSTEM 0.13+, where a linear vector may hold its first two
//                 values only). The scan step comes from the first dimension vector when its
//                 `units` attribute is a length (A, Angstrom, nm, pm); probe settings from the
//                 sidecar, else from attributes of the same names on the group.
//
// The sidecar NAME.json (NAME: the data file's name without its extension; for DECTRIS the
// master's, without _master) is a JSON object with these keys (unknown keys are refused, so a
// typo does not become a silent default); where a key is also in the file, the sidecar wins:
//   energy_keV, semiangle_mrad, scan_step_A, detector_pixel_mrad, defocus_A   (required unless
//                 the format gives them, see above)
//   Cs_mm (default 0), rotation_deg (default 0; the scan-to-detector rotation, applied to
//                 the frames as frame_geometry.hpp says), dose_e_per_A2 (electrons per A^2
//                 of the full raster; unknown when absent), scan_shape [rows, cols] (MIB and DECTRIS; for the others it must
//                 agree with the file), true_potential (the path, relative to the sidecar, of a
//                 .npy of the specimen's true phase; replay ignores it, `ptypilot eval` scores
//                 against it, and opening refuses a path that is not a file), window_px (the
//                 reconstruction window per side, an even integer >= the frames' size; larger
//                 reconstructs that many times finer than the frames sample, the angles beyond
//                 the detector left free: ProbeConfig::detector_px; default the frames' size),
//                 frame_layout ("centred": the zero frequency at pixel floor(D/2), as detectors,
//                 py4DSTEM and EMD store frames, the default when absent; "fft": at pixel 0),
//                 disk_offset_px ([dy, dx], the bright-field disk's centre from floor(D/2)),
//                 flip (the scan axes transposed on the detector). With rotation_deg these are
//                 the data set's frame geometry (frame_geometry.hpp).
//
// Recorded positions are [y, x] in Angstrom from the FOV origin, y the slow (row) axis: row-major
// raster nodes (i * step, j * step) for the grid formats, the recorded positions for a ptypilot
// recording. The raster is the one that covers them; a session of `serve` configured with it
// (session_config_fragment) asks only for positions inside it.
//
// Errors. Opening throws std::runtime_error naming the file and, for bad bytes, the offset:
// truncated files, wrong shapes, unknown dtypes, missing sidecar keys. read_frame() is on the
// per-frame path and returns a Status instead (a corrupt chunk, a bad MIB frame header, an I/O
// error), naming the file, the frame and the offset.
//
// Threads: one thread at a time per data set (the HDF5 formats share the process' one HDF5 lock
// discipline, see hdf5_recorder.hpp).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ptypilot/wire/frame.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/image.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

struct RecordedDatasetInfo {
  std::filesystem::path path;
  std::string format;  // npy | merlin-mib | ptypilot-recording | dectris-hdf5 | emd
  int frame_rows = 0;
  int frame_cols = 0;
  std::string stored_dtype;  // as the file has it, e.g. "<u2", ">u2", "uint16"
  // What the frames go out as: the stored dtype where the native wire has it (uint8, uint16,
  // uint32, float32), float32 for every other number type.
  PixelType dtype = PixelType::kFloat32;
  ProbeConfig probe;          // window_px = frame_rows
  ScanRaster raster;          // covers every recorded position
  double rotation_deg = 0.0;  // scan rotation against the detector, as recorded
  // How the frames map onto the reconstructor's: the sidecar's frame_layout (absent: centred),
  // disk_offset_px, rotation_deg and flip; a ptypilot recording's detector.geometry (absent: fft,
  // the layout the daemon assumed before it had a geometry).
  FrameGeometry geometry;
  std::optional<double> dose_e_per_A2;
  double electrons_per_frame = 0.0;  // 0: unknown
  std::optional<std::filesystem::path> true_potential;  // the sidecar's, as a path from here
};

class RecordedDataset {
 public:
  virtual ~RecordedDataset() = default;

  const RecordedDatasetInfo& info() const { return info_; }
  // One per frame: frame i was recorded at positions_A()[i].
  std::span<const Vec2> positions_A() const { return positions_A_; }
  std::size_t frame_count() const { return positions_A_.size(); }
  std::size_t frame_pixels() const {
    return static_cast<std::size_t>(info_.frame_rows) * static_cast<std::size_t>(info_.frame_cols);
  }

  // Frame `index` as frame_rows x frame_cols floats, row-major, into `out` (exactly
  // frame_pixels() long). Never throws: an index past the end or a buffer of another size is an
  // error Status, and so is what the format's reader finds wrong.
  Status read_frame(std::size_t index, std::span<float> out);
  // Frame `index` as the reconstructor takes it: info().geometry applied (frame_geometry.hpp),
  // FFT layout, reconstructor_side()^2 floats. What `ptypilot eval` and the Python readers
  // reconstruct from; replay sends read_frame() and names the geometry in its config fragment.
  // As in a session, the geometry's rotation beyond quarter turns is not applied to the frames
  // (rotation_in_positions): a reader turns the positions by position_rotation_deg(
  // info().geometry) (scan_rotation.hpp; Python: scan_rotation_deg).
  Status read_reconstructor_frame(std::size_t index, std::span<float> out);

 protected:
  // read_frame() for an index below frame_count() and a buffer of frame_pixels() floats.
  virtual Status read_checked(std::size_t index, std::span<float> out) = 0;

  RecordedDatasetInfo info_;
  std::vector<Vec2> positions_A_;

 private:
  std::unique_ptr<FrameGeometryMap> geometry_map_;
  std::vector<float> raw_;
};

// Opens the data set at `path`, telling the format from the extension and, for HDF5, from the
// content (see above). Throws std::runtime_error with a message that names the file.
std::unique_ptr<RecordedDataset> open_recorded_dataset(const std::filesystem::path& path);

// The part of a `serve` configuration that the data set decides, for `ptypilot replay
// --print-config` and its ready line:
//   {"session": {"probe": {...}, "raster": {"rows", "cols", "step_A"}},
//    "detector": {"dtype", "geometry": {"layout", ...}}}
// Replay sends the frames as stored; the geometry tells serve how to read them.
// Throws std::runtime_error for frames that are not square (the reconstructor's window is).
nlohmann::json session_config_fragment(const RecordedDatasetInfo& info);
// A geometry as serve's detector.geometry block (only what differs from the defaults, but the
// layout always).
nlohmann::json geometry_json(const FrameGeometry& geometry);

// Where each recorded position is, for the nearest one to any position: a uniform grid of
// buckets about one mean spacing wide, so a query looks at a few buckets, whatever the layout
// (a full raster or the scattered positions of an adaptive session).
class NearestPositionIndex {
 public:
  explicit NearestPositionIndex(std::span<const Vec2> positions_A);

  struct Match {
    std::size_t index = 0;
    double distance_A = 0.0;
  };
  // The nearest recorded position; of equally near ones, the lowest index. Requires at least one
  // position and a finite query.
  Match nearest(Vec2 position_A) const;

 private:
  std::vector<Vec2> positions_;
  Vec2 origin_;
  double bucket_A_ = 1.0;
  int bucket_rows_ = 1;
  int bucket_cols_ = 1;
  std::vector<std::size_t> bucket_start_;  // bucket b holds order_[bucket_start_[b] .. [b + 1])
  std::vector<std::size_t> order_;
};

}  // namespace ptypilot
