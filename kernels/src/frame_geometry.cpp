// Frame geometry (frame_geometry.hpp): the map from a detector's frames to the reconstructor's.
#include "ptypilot/frame_geometry.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <stdexcept>

namespace ptypilot {

FrameLayout parse_frame_layout(std::string_view text) {
  if (text == "centred") return FrameLayout::kCentred;
  if (text == "fft") return FrameLayout::kFft;
  throw std::invalid_argument("frame layout '" + std::string(text) +
                              "': expected centred (the zero frequency at pixel floor(D/2), as "
                              "detectors send frames) or fft (at pixel 0)");
}

std::string_view to_string(FrameLayout layout) {
  return layout == FrameLayout::kCentred ? "centred" : "fft";
}

namespace {

// out[(r + dr) mod rows, (c + dc) mod cols] = in[r, c].
void roll(std::span<const float> in, int rows, int cols, int dr, int dc, std::span<float> out) {
  dr = ((dr % rows) + rows) % rows;
  dc = ((dc % cols) + cols) % cols;
  // Each row in two pieces, not a modulo per pixel: 0.5 us instead of 2.6 us for a 64 x 64 frame,
  // which the ingest path shifts at every frame.
  for (int r = 0; r < rows; ++r) {
    const float* src = in.data() + std::size_t(r) * cols;
    float* dst = out.data() + std::size_t((r + dr) % rows) * cols;
    std::copy(src, src + (cols - dc), dst + dc);
    std::copy(src + (cols - dc), src + cols, dst);
  }
}

int wrap(int i, int n) { return ((i % n) + n) % n; }

// Where aligned pixel (r, col) of an n x n frame reads at an angle that is no quarter turn:
// c + round(d) + F R k for k its offset from the centre c, with Keys' cubic weights of the
// 4 x 4 pixels from (y0 - 1, x0 - 1). The counts' taps and the weights' minimum both use it.
struct CubicSource {
  int y0 = 0, x0 = 0;
  double wy[4] = {}, wx[4] = {};
};

CubicSource cubic_source(const FrameGeometry& g, int n, int r, int col) {
  const int c0 = n / 2;
  const double dy = std::round(g.disk_offset_y_px), dx = std::round(g.disk_offset_x_px);
  const double theta = frame_rotation_deg(g) * std::numbers::pi / 180.0;
  const double cs = std::cos(theta), sn = std::sin(theta);
  const double ky = r - c0, kx = col - c0;
  // R rotates (x, y) by theta: x' = x cos - y sin, y' = x sin + y cos; F swaps y and x.
  double sy = kx * sn + ky * cs, sx = kx * cs - ky * sn;
  if (g.flip) std::swap(sy, sx);
  const double py = c0 + dy + sy, px = c0 + dx + sx;
  CubicSource source;
  source.y0 = int(std::floor(py));
  source.x0 = int(std::floor(px));
  keys_cubic_weights(py - source.y0, source.wy);
  keys_cubic_weights(px - source.x0, source.wx);
  return source;
}

}  // namespace

void keys_cubic_weights(double t, double* w) {
  // Keys (1981), a = -1/2: pixels at -1, 0, 1, 2 from floor(x), t = x - floor(x) in [0, 1).
  const double t2 = t * t, t3 = t2 * t;
  w[0] = -0.5 * t3 + t2 - 0.5 * t;
  w[1] = 1.5 * t3 - 2.5 * t2 + 1.0;
  w[2] = -1.5 * t3 + 2.0 * t2 + 0.5 * t;
  w[3] = 0.5 * t3 - 0.5 * t2;
}

void fftshift_image(std::span<const float> in, int rows, int cols, std::span<float> out) {
  roll(in, rows, cols, rows / 2, cols / 2, out);
}

void ifftshift_image(std::span<const float> in, int rows, int cols, std::span<float> out) {
  roll(in, rows, cols, -(rows / 2), -(cols / 2), out);
}

double frame_rotation_deg(const FrameGeometry& g) {
  return g.rotation_in_positions ? 90.0 * std::round(g.rotation_deg / 90.0) : g.rotation_deg;
}

double position_rotation_deg(const FrameGeometry& g) {
  return g.rotation_deg - frame_rotation_deg(g);
}

std::array<double, 2> probe_tilt_px(const FrameGeometry& g) {
  const double fy = g.disk_offset_y_px - std::round(g.disk_offset_y_px);
  const double fx = g.disk_offset_x_px - std::round(g.disk_offset_x_px);
  // The raw offset is M v with M = F R (the map's step 4, R the frames' part of the rotation),
  // so v = R(-theta) F d.
  double sy = fy, sx = fx;
  if (g.flip) std::swap(sy, sx);
  const double theta = frame_rotation_deg(g) * std::numbers::pi / 180.0;
  const double cs = std::cos(theta), sn = std::sin(theta);
  const double ky = sy * cs - sx * sn, kx = sx * cs + sy * sn;
  return {ky / g.bin, kx / g.bin};
}

FrameGeometryMap::FrameGeometryMap(FrameGeometry geometry, int raw_side)
    : geometry_(std::move(geometry)), raw_side_(raw_side) {
  const FrameGeometry& g = geometry_;
  if (raw_side <= 0) throw std::invalid_argument("frame geometry: frames have no pixels");
  const std::size_t pixels = raw_pixels();
  auto check_map = [&](const std::vector<float>& map, const char* name, bool allow_nonpositive) {
    if (map.empty()) return;
    if (map.size() != pixels)
      throw std::invalid_argument(std::string("frame geometry: the ") + name + " has " +
                                  std::to_string(map.size()) + " pixels, the frames " +
                                  std::to_string(raw_side) + " x " + std::to_string(raw_side));
    for (float v : map)
      if (!std::isfinite(v) || (!allow_nonpositive && v < 0))
        throw std::invalid_argument(std::string("frame geometry: the ") + name +
                                    " holds a negative or non-finite value");
  };
  check_map(g.mask, "mask", false);
  check_map(g.flat_field, "flat-field", true);
  for (double v : {g.disk_offset_y_px, g.disk_offset_x_px, g.rotation_deg, g.disk_radius_px})
    if (!std::isfinite(v))
      throw std::invalid_argument(
          "frame geometry: a disk offset, radius or rotation is not finite");
  if (std::abs(g.disk_offset_y_px) >= raw_side / 2.0 ||
      std::abs(g.disk_offset_x_px) >= raw_side / 2.0)
    throw std::invalid_argument("frame geometry: a disk offset of half the frame or more");
  if (g.crop_px < 0 || g.crop_px > raw_side)
    throw std::invalid_argument("frame geometry: crop_px " + std::to_string(g.crop_px) +
                                " is outside 0 .. the frames' " + std::to_string(raw_side));
  cropped_side_ = g.crop_px > 0 ? g.crop_px : raw_side;
  if (g.bin < 1 || cropped_side_ % g.bin != 0)
    throw std::invalid_argument("frame geometry: bin " + std::to_string(g.bin) +
                                " does not divide the cropped side " +
                                std::to_string(cropped_side_));
  out_side_ = cropped_side_ / g.bin;
  const double quarters = frame_rotation_deg(g) / 90.0;
  quarter_turns_ = std::abs(quarters - std::round(quarters)) < 1e-9;
  turns_ = quarter_turns_ ? wrap(static_cast<int>(std::llround(quarters)), 4) : 0;
  if (g.recentres() && !quarter_turns_) {
    // The taps of step 4 (transform() reads them), from cubic_source.
    const int n = raw_side;
    taps_.resize(pixels * 16);
    for (int r = 0; r < n; ++r)
      for (int col = 0; col < n; ++col) {
        const CubicSource source = cubic_source(g, n, r, col);
        Tap* tap = taps_.data() + (std::size_t(r) * n + col) * 16;
        for (int a = 0; a < 4; ++a)
          for (int b = 0; b < 4; ++b, ++tap) {
            const int y = source.y0 - 1 + a, x = source.x0 - 1 + b;
            if (y < 0 || y >= n || x < 0 || x >= n) continue;  // weight 0
            tap->index = static_cast<std::uint32_t>(std::size_t(y) * n + x);
            tap->weight = static_cast<float>(source.wy[a] * source.wx[b]);
          }
      }
  }

  if (g.recentres() && quarter_turns_) {
    // Aligned pixel k (from the centre) reads c + round(d) + F R k, R a quarter turn, taken
    // cyclically as the roll by the whole-pixel offset is.
    const int n = raw_side, c0 = n / 2;
    const int dy = int(std::lround(g.disk_offset_y_px)), dx = int(std::lround(g.disk_offset_x_px));
    const int cs_i[4] = {1, 0, -1, 0}, sn_i[4] = {0, 1, 0, -1};
    const int cs = cs_i[turns_], sn = sn_i[turns_];
    permutation_.resize(pixels);
    for (int r = 0; r < n; ++r)
      for (int col = 0; col < n; ++col) {
        const int ky = r - c0, kx = col - c0;
        // R rotates (x, y) by theta: x' = x cos - y sin, y' = x sin + y cos; F swaps y and x.
        int sy = kx * sn + ky * cs, sx = kx * cs - ky * sn;
        if (g.flip) std::swap(sy, sx);
        permutation_[std::size_t(r) * n + col] = static_cast<std::uint32_t>(
            std::size_t(wrap(c0 + sy + dy, n)) * n + wrap(c0 + sx + dx, n));
      }
  }

  // The weights travel through the same steps: a bad pixel, or a pixel read from outside the
  // frame, taints every output pixel it contributes to.
  std::vector<float> weight(pixels, 1.0f);
  for (std::size_t i = 0; i < pixels; ++i) {
    if (!g.mask.empty()) weight[i] = g.mask[i];
    if (!g.flat_field.empty() && !(g.flat_field[i] > 0)) weight[i] = 0.0f;
  }
  std::vector<float> centred(pixels);
  if (g.layout == FrameLayout::kFft)
    fftshift_image(weight, raw_side, raw_side, centred);
  else
    centred = weight;
  std::vector<float> out_mask(out_pixels());
  transform(centred, out_mask, /*weights=*/true);
  if (std::any_of(out_mask.begin(), out_mask.end(), [](float w) { return w != 1.0f; }))
    out_mask_ = std::move(out_mask);
}

bool FrameGeometryMap::apply(std::span<const float> raw, std::span<float> out) const {
  if (raw.size() != raw_pixels() || out.size() != out_pixels()) return false;
  const FrameGeometry& g = geometry_;
  // The usual case, a geometry that only names the layout: steps 4 to 6 move nothing, so the
  // frame is the reconstructor's after at most one shift. The same values as the general path
  // below, without its four copies: at 100k frames/s this map runs on every frame.
  if (g.flat_field.empty() && g.mask.empty() && !g.recentres() && out_side_ == raw_side_) {
    if (g.layout == FrameLayout::kFft) std::copy(raw.begin(), raw.end(), out.begin());
    else ifftshift_image(raw, raw_side_, raw_side_, out);
    return true;
  }
  std::vector<float> corrected(raw.begin(), raw.end());
  for (std::size_t i = 0; i < corrected.size(); ++i) {
    if (!g.flat_field.empty())
      corrected[i] = g.flat_field[i] > 0 ? corrected[i] / g.flat_field[i] : 0.0f;
    if (!g.mask.empty() && g.mask[i] == 0.0f) corrected[i] = 0.0f;
  }
  if (g.layout == FrameLayout::kFft) {
    std::vector<float> centred(corrected.size());
    fftshift_image(corrected, raw_side_, raw_side_, centred);
    transform(centred, out, false);
  } else {
    transform(corrected, out, false);
  }
  return true;
}

void FrameGeometryMap::transform(std::span<const float> centred, std::span<float> out,
                                 bool weights) const {
  const FrameGeometry& g = geometry_;
  const int n = raw_side_;
  const int c0 = n / 2;
  auto at = [&](std::span<const float> img, int r, int c) { return img[std::size_t(r) * n + c]; };

  // Step 4: reconstructor pixel k (from the centre) reads c + d + F R k.
  std::vector<float> aligned(centred.begin(), centred.end());
  if (!weights && !taps_.empty()) {
    // Another angle, the counts: the cubic taps computed once (the constructor); counts cannot
    // be negative, so the kernel's undershoot next to the disk's edge is cut at 0.
    const Tap* tap = taps_.data();
    for (std::size_t i = 0; i < aligned.size(); ++i, tap += 16) {
      double value = 0.0;
      for (int t = 0; t < 16; ++t) value += double(tap[t].weight) * centred[tap[t].index];
      aligned[i] = static_cast<float>(std::max(value, 0.0));
    }
  } else if (!permutation_.empty()) {
    for (std::size_t i = 0; i < aligned.size(); ++i) aligned[i] = centred[permutation_[i]];
  } else if (g.recentres()) {
    // Another angle, the weights (the counts take taps_, above): the minimum over the 4 x 4
    // pixels of Keys' cubic convolution (cubic_source) with a nonzero weight; outside the
    // frame, 0 (which taps_ cannot tell from a zero weight).
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) {
        const CubicSource source = cubic_source(g, n, r, c);
        float w = 1.0f;
        for (int a = 0; a < 4; ++a)
          for (int b = 0; b < 4; ++b) {
            const int y = source.y0 - 1 + a, x = source.x0 - 1 + b;
            const bool inside = y >= 0 && y < n && x >= 0 && x < n;
            if (source.wy[a] * source.wx[b] != 0)
              w = std::min(w, inside ? at(centred, y, x) : 0.0f);
          }
        aligned[std::size_t(r) * n + c] = w;
      }
  }

  // Steps 5 and 6: the central crop, then bin x bin blocks (summed; a weight's minimum).
  const int cropped = cropped_side_, b = g.bin, m = out_side_;
  const int first = c0 - cropped / 2;
  std::vector<float> binned(std::size_t(m) * m);
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < m; ++c) {
      float acc = weights ? 1.0f : 0.0f;
      for (int a = 0; a < b; ++a)
        for (int e = 0; e < b; ++e) {
          const float v = aligned[std::size_t(first + r * b + a) * n + (first + c * b + e)];
          acc = weights ? std::min(acc, v) : acc + v;
        }
      binned[std::size_t(r) * m + c] = acc;
    }
  // Step 7.
  ifftshift_image(binned, m, m, out);
}

FrameGeometryCheck::FrameGeometryCheck(int side, double disk_radius_px)
    : side_(side), radius_px_(disk_radius_px) {}

void FrameGeometryCheck::add(std::span<const float> frame) {
  if (frame.size() != std::size_t(side_) * side_) return;
  const int n = side_;
  const double reach = radius_px_ + 1.0, reach2 = reach * reach;
  const double com_reach = 1.5 * radius_px_ + 1.0, com_reach2 = com_reach * com_reach;
  auto signed_index = [n](int k) { return k < (n + 1) / 2 ? k : k - n; };
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      const double v = frame[std::size_t(r) * n + c];
      const double y = signed_index(r), x = signed_index(c);
      const double d2 = y * y + x * x;
      const double yc = r - n / 2, xc = c - n / 2;
      total_ += v;
      if (d2 <= reach2) near_zero_ += v;
      if (yc * yc + xc * xc <= reach2) near_centre_ += v;
      if (d2 <= com_reach2) {
        com_y_ += v * y;
        com_x_ += v * x;
        com_weight_ += v;
      }
    }
  ++frames_;
}

FrameGeometryCheck::Finding FrameGeometryCheck::finding() const {
  Finding f;
  if (total_ > 0) {
    f.near_zero = near_zero_ / total_;
    f.near_centre = near_centre_ / total_;
  }
  if (com_weight_ > 0) {
    f.offset_y_px = com_y_ / com_weight_;
    f.offset_x_px = com_x_ / com_weight_;
  }
  return f;
}

std::optional<FrameGeometryCheck::Warning> FrameGeometryCheck::warning() const {
  if (frames_ == 0 || !(total_ > 0)) return std::nullopt;
  const Finding f = finding();
  char text[400];
  // Only a bright-field disk is measured: frames with no concentration of counts (flat, noise,
  // a benchmark's) say nothing about the layout, and a small excess is noise, not a disk.
  if (f.near_centre > kDiskShare && f.near_centre > 2 * f.near_zero) {
    std::snprintf(text, sizeof text,
                  "the bright-field disk is where the other frame layout puts it: %.0f%% of the "
                  "counts lie near the frame's centre after the layout conversion, %.0f%% near "
                  "the zero frequency; the frames' layout is likely not the one configured "
                  "(detector.geometry.layout, a data set's frame_layout)",
                  100 * f.near_centre, 100 * f.near_zero);
    return Warning{"frame_layout_mismatch", text};
  }
  return std::nullopt;
}

}  // namespace ptypilot
