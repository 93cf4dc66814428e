// Frame geometry: how a detector's frames map onto the reconstructor's frames. One
// implementation, used by the daemon at ingest (Session), by recorded data sets read directly
// (RecordedDataset::read_reconstructor_frame, `ptypilot eval`, Python training through
// ptypilot_core) and by the pictures in the README (models/ptypilot/geometry_figure.py).
//
// The reconstructor's frames are in the unshifted FFT layout: the zero frequency (the centre of
// the bright-field disk) at pixel [0, 0] (detector.hpp). Detectors, py4DSTEM and EMD files store
// frames centred: the zero frequency at pixel [floor(D/2), floor(D/2)] of a D x D frame, the
// convention of numpy.fft.fftshift for both even and odd D. Converting centred -> FFT layout is
// numpy.fft.ifftshift (a roll by -floor(D/2) on each axis), FFT -> centred is fftshift.
//
// A raw frame (as the detector sends it, and as the recorder keeps it) becomes a reconstructor
// frame in this order, each step in the centred view:
//   1. flat-field: divide each pixel by its gain; a gain <= 0 marks the pixel bad;
//   2. mask: bad pixels (mask weight 0, or gain <= 0) are set to 0 counts; their weight 0 goes to
//      the reconstructor's loss (ReconstructorConfig::detector_mask), which then leaves the model
//      free there, so no value has to be invented for them;
//   3. layout: an FFT-layout frame is fftshifted into the centred view;
//   4. re-centring and scan rotation, as one map: reconstructor pixel k (from the centre) reads
//      the raw pixel c + round(d) + F R k, with c = floor(D/2), d the disk centre's offset from
//      c, R the rotation by rotation_deg and F the transpose when flip is set. So rotation_deg
//      and flip describe how the scan's axes appear on the detector (py4DSTEM's rotation and
//      "QR flip"). A quarter turn and the flip are exact pixel permutations and the
//      whole-pixel offset an exact roll. Any other angle: with rotation_in_positions (the
//      daemon's sessions, recorded data sets) the frames get only the nearest quarter turn and
//      the rest turns the positions instead (scan_rotation.hpp: the frames of a turned detector
//      are the exact frames of the turned object at turned positions, the probe being round),
//      and the reconstruction is turned back into scan axes for the object grid, the policy,
//      Safety and the recording. Without it (consumers that cannot turn positions:
//      apply_frame_geometry's default) one resampling of the frames by Keys' cubic convolution on
//      4 x 4 pixels (keys_cubic_weights), its undershoot cut at 0 (pixels whose taps fall outside
//      the frame get weight 0), which cannot be exact: a pattern sampled at the detector's pixels
//      is aliased. graphene-small turned 12 degrees with its disk 0.7 px off reconstructed at
//      SSIM 0.61 against the ideal geometry's reconstruction with bilinear frames, 0.93 with
//      cubic frames and 0.996 with the rotation in the positions (tests/python/
//      test_scan_rotation.py).
//      The sub-pixel rest of d is not resampled: it goes to the model, as the probe's tilt
//      (probe_tilt_px -> ProbeConfig::tilt_y_px / tilt_x_px), so the reconstructor's patterns
//      have the disk exactly where the frames do. Resampling counts cannot do that: a pattern
//      sampled at the detector's pixels is aliased (the intensity's band is twice the wave's),
//      so any interpolation changes the speckle, and on Poisson counts a Fourier shift rings
//      below zero in the dark field while bilinear interpolation smooths it; on graphene-small
//      with a 0.7 px offset both reconstructed about as badly as leaving the offset alone;
//   5. crop to the central crop_px x crop_px (the zero frequency stays at floor(crop_px / 2));
//   6. bin: sum bin x bin blocks (a block with a bad pixel has weight 0);
//   7. layout: ifftshift into the reconstructor's FFT layout.
// A frame whose geometry is the identity but for its layout is converted exactly (a
// permutation): centred data named centred and FFT data named fft give bit-identical
// reconstructor frames. Applied on the CPU; the CUDA path takes the same frames (a GPU version
// of the map is future work: at 128 x 128 pixels the CPU map costs microseconds per frame).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ptypilot {

enum class FrameLayout { kCentred, kFft };

// "centred" | "fft"; throws std::invalid_argument naming both for anything else.
FrameLayout parse_frame_layout(std::string_view text);
std::string_view to_string(FrameLayout layout);

// numpy.fft.fftshift / ifftshift of a rows x cols row-major image (out must not alias in).
void fftshift_image(std::span<const float> in, int rows, int cols, std::span<float> out);
void ifftshift_image(std::span<const float> in, int rows, int cols, std::span<float> out);

struct FrameGeometry {
  FrameLayout layout = FrameLayout::kCentred;
  // The bright-field disk's centre minus the nominal zero frequency floor(D/2), in raw detector
  // pixels along rows (y) and columns (x), as it appears in the centred view.
  double disk_offset_y_px = 0.0;
  double disk_offset_x_px = 0.0;
  // The disk's radius in raw pixels; 0: unknown, take semiangle / detector pixel (checks only).
  double disk_radius_px = 0.0;
  double rotation_deg = 0.0;  // scan-to-detector rotation (see above)
  bool flip = false;          // scan axes transposed on the detector
  // Where step 4 puts the rotation. false: all of it into the frames (one bilinear resampling
  // unless a quarter turn): for consumers that cannot turn positions (apply_frame_geometry's
  // default). true (the daemon's sessions, RecordedDataset::read_reconstructor_frame, whose
  // reader turns positions by scan_rotation_deg): the frames get only the nearest quarter turn
  // (exact, a permutation), the rest, position_rotation_deg(), goes to the positions
  // (scan_rotation.hpp), so no frame is resampled.
  bool rotation_in_positions = false;
  int crop_px = 0;            // 0: no crop
  int bin = 1;
  std::vector<float> mask;        // raw D x D weights as the detector lays them out; empty: all 1
  std::vector<float> flat_field;  // raw D x D gains; empty: all 1

  // Whether step 4 moves pixels (a sub-pixel offset alone goes to the model instead).
  bool recentres() const {
    return disk_offset_y_px != 0.0 || disk_offset_x_px != 0.0 || rotation_deg != 0.0 || flip;
  }
};

// The weights of Keys' cubic convolution kernel (a = -1/2) for the pixels at -1, 0, 1 and 2 from
// floor(x), t = x - floor(x) in [0, 1): they sum to 1, reproduce quadratics exactly, and give
// (0, 1, 0, 0) at t = 0. The map's interpolation for angles other than quarter turns.
void keys_cubic_weights(double t, double* w);

// The rotation step 4 applies to the frames: all of rotation_deg, or with rotation_in_positions
// its nearest multiple of 90 degrees; and the rest, for ScanRotation (0 without
// rotation_in_positions). frame + position = rotation_deg.
double frame_rotation_deg(const FrameGeometry& geometry);
double position_rotation_deg(const FrameGeometry& geometry);

// What of the disk offset the map leaves to the model: the part beyond whole pixels, in the
// reconstructor's pixels and axes (after rotation, flip and bin), for ProbeConfig::tilt_y_px /
// tilt_x_px. The reconstructor's patterns then carry the disk where the frames have it.
std::array<double, 2> probe_tilt_px(const FrameGeometry& geometry);

// A geometry prepared for frames of raw_side x raw_side pixels. Immutable after construction,
// so one map may serve several threads.
class FrameGeometryMap {
 public:
  // Throws std::invalid_argument saying what is wrong: a mask or flat-field of another size, a
  // negative or non-finite weight or gain, a crop larger than the frame, a bin that does not
  // divide the cropped side, a non-finite offset or angle.
  FrameGeometryMap(FrameGeometry geometry, int raw_side);

  int raw_side() const { return raw_side_; }
  int out_side() const { return out_side_; }
  std::size_t raw_pixels() const { return std::size_t(raw_side_) * raw_side_; }
  std::size_t out_pixels() const { return std::size_t(out_side_) * out_side_; }
  const FrameGeometry& geometry() const { return geometry_; }

  // raw: raw_pixels() floats as the detector sent them; out: out_pixels() floats, the
  // reconstructor's frame in FFT layout. Never throws; false for spans of the wrong size.
  bool apply(std::span<const float> raw, std::span<float> out) const;

  // The reconstructor's per-pixel weights (out_side^2, FFT layout) for
  // ReconstructorConfig::detector_mask: empty when every pixel has weight 1.
  const std::vector<float>& reconstructor_mask() const { return out_mask_; }

 private:
  // Steps 4 to 7 on a centred raw frame, or on its weights (weights: a taint's minimum).
  void transform(std::span<const float> centred, std::span<float> out, bool weights) const;

  FrameGeometry geometry_;
  int raw_side_;
  int cropped_side_;
  int out_side_;
  bool quarter_turns_ = true;  // step 4 is a permutation plus a shift
  int turns_ = 0;              // quarter turns of R
  // Another angle: each centred pixel's 4 x 4 cubic taps into the centred raw frame, computed
  // once (a tap outside the frame has weight 0), so a frame costs 16 multiply-adds a pixel.
  struct Tap {
    std::uint32_t index = 0;
    float weight = 0.0f;
  };
  std::vector<Tap> taps_;
  // A quarter turn, the flip and the whole-pixel roll: the centred raw pixel each aligned pixel
  // reads, computed once, so a frame costs one gather (it was 25 ns a pixel of index
  // arithmetic, 0.4 ms a 128 px frame).
  std::vector<std::uint32_t> permutation_;
  std::vector<float> out_mask_;
};

// Checks reconstructor frames (FFT layout) against what the geometry promises: the bright-field
// disk around the zero frequency. Fed the first frames of a session or data set, it says whether
// the layout is likely wrong (the disk where the other layout puts it), and where the disk's
// centre of mass is. Whether the disk is where, and as large as, the geometry says is measured on
// the raw frames (calibration.hpp, check_disk), where the answer is the setting to change.
// Counts, no allocation per frame.
class FrameGeometryCheck {
 public:
  // disk_radius_px: of the bright-field disk in reconstructor pixels.
  FrameGeometryCheck(int side, double disk_radius_px);
  void add(std::span<const float> frame);
  std::size_t frames() const { return frames_; }

  struct Finding {
    double near_zero = 0;    // fraction of the counts within radius + 1 px of [0, 0]
    double near_centre = 0;  // ... of [side/2, side/2], where the other layout puts the disk
    double offset_y_px = 0;  // mean centre of mass of the disk, from the zero frequency
    double offset_x_px = 0;
  };
  Finding finding() const;

  struct Warning {
    std::string code;     // frame_layout_mismatch
    std::string message;  // one line a person can act on
  };
  // The first problem found, if any, over the frames added so far.
  std::optional<Warning> warning() const;

  // A disk is there to measure when this share of the counts lies within its radius + 1 px.
  static constexpr double kDiskShare = 0.2;

 private:
  int side_;
  double radius_px_;
  std::size_t frames_ = 0;
  double near_zero_ = 0, near_centre_ = 0, total_ = 0;
  double com_y_ = 0, com_x_ = 0, com_weight_ = 0;
};

}  // namespace ptypilot
