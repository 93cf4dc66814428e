#include "ptypilot/policy/crystal_lattice.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <unordered_map>

namespace ptypilot {
namespace {

double length(Vec2 v) { return std::hypot(v.y, v.x); }
Vec2 operator+(Vec2 a, Vec2 b) { return {a.y + b.y, a.x + b.x}; }
Vec2 operator-(Vec2 a, Vec2 b) { return {a.y - b.y, a.x - b.x}; }
Vec2 operator*(double s, Vec2 a) { return {s * a.y, s * a.x}; }

// Separable Gaussian blur of an image window.
std::vector<double> gaussian_blur(const std::vector<double>& in, int rows, int cols, double sigma_px) {
  const int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma_px)));
  std::vector<double> kernel(2 * radius + 1);
  double sum = 0;
  for (int t = -radius; t <= radius; ++t) sum += kernel[t + radius] = std::exp(-0.5 * t * t / (sigma_px * sigma_px));
  for (double& k : kernel) k /= sum;
  // Edges clamp: the window is the FOV, whose border is no less real than its interior.
  auto at = [](int i, int n) { return std::clamp(i, 0, n - 1); };
  std::vector<double> tmp(in.size()), out(in.size());
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      double s = 0;
      for (int t = -radius; t <= radius; ++t) s += kernel[t + radius] * in[r * cols + at(c + t, cols)];
      tmp[r * cols + c] = s;
    }
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      double s = 0;
      for (int t = -radius; t <= radius; ++t) s += kernel[t + radius] * tmp[at(r + t, rows) * cols + c];
      out[r * cols + c] = s;
    }
  return out;
}

// Offset of a parabola's vertex through three samples, in [-0.5, 0.5].
double vertex_offset(double before, double centre, double after) {
  const double curvature = before - 2 * centre + after;
  if (!(curvature < 0)) return 0.0;
  return std::clamp(0.5 * (before - after) / curvature, -0.5, 0.5);
}

// Solves the symmetric positive definite n x n system `a` x = b in place (Cholesky), for two
// right-hand sides; false if `a` is singular to working precision.
bool solve_normal_equations(std::vector<double>& a, int n, std::vector<double>& b1,
                            std::vector<double>& b2) {
  double scale = 0;
  for (int i = 0; i < n; ++i) scale = std::max(scale, a[i * n + i]);
  for (int j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 1e-10 * scale)) return false;
    a[j * n + j] = std::sqrt(d);
    for (int i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (int k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / a[j * n + j];
    }
  }
  for (std::vector<double>* b : {&b1, &b2}) {
    std::vector<double>& v = *b;
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < i; ++k) v[i] -= a[i * n + k] * v[k];
      v[i] /= a[i * n + i];
    }
    for (int i = n - 1; i >= 0; --i) {
      for (int k = i + 1; k < n; ++k) v[i] -= a[k * n + i] * v[k];
      v[i] /= a[i * n + i];
    }
  }
  return true;
}

struct Basis2 {
  Vec2 a1, a2;
  // Fractional coordinates (i, j) of v: v = i a1 + j a2.
  std::array<double, 2> fractional(Vec2 v) const {
    const double det = a1.y * a2.x - a1.x * a2.y;
    return {(v.y * a2.x - v.x * a2.y) / det, (a1.y * v.x - a1.x * v.y) / det};
  }
  Vec2 cartesian(double i, double j) const { return i * a1 + j * a2; }
};

// The peaks in square cells of the tolerance's side, so that "is a peak within the tolerance of
// p" looks at the 3 x 3 cells around p, not at every peak: the fit asks it n times for each
// candidate translation.
class PeakCells {
 public:
  PeakCells(std::span<const Vec2> peaks, double cell_A) : peaks_(peaks), cell_(cell_A) {
    for (std::size_t k = 0; k < peaks.size(); ++k) cells_[key(cell_of(peaks[k].y), cell_of(peaks[k].x))].push_back(k);
  }
  bool any_within(Vec2 p, double distance) const {
    const long cy = cell_of(p.y), cx = cell_of(p.x);
    for (long dy = -1; dy <= 1; ++dy)
      for (long dx = -1; dx <= 1; ++dx) {
        const auto it = cells_.find(key(cy + dy, cx + dx));
        if (it == cells_.end()) continue;
        for (std::size_t k : it->second) {
          const Vec2 d = peaks_[k] - p;
          if (d.y * d.y + d.x * d.x < distance * distance) return true;
        }
      }
    return false;
  }

 private:
  long cell_of(double v) const { return static_cast<long>(std::floor(v / cell_)); }
  static std::int64_t key(long cy, long cx) { return (static_cast<std::int64_t>(cy) << 32) ^ (cx & 0xffffffffL); }
  std::span<const Vec2> peaks_;
  double cell_;
  std::unordered_map<std::int64_t, std::vector<std::size_t>> cells_;
};

}  // namespace

std::vector<Vec2> find_column_peaks(const RealImage& phase, const ObjectGrid& grid,
                                    std::span<const char> lit, const ColumnPeakOptions& options) {
  const int rows = static_cast<int>(phase.rows()), cols = static_cast<int>(phase.cols());
  if (rows < 3 || cols < 3 || lit.size() != static_cast<std::size_t>(rows) * cols ||
      !(grid.pixel_A > 0))
    return {};
  const double sigma_px = std::max(options.smoothing_sigma_A / grid.pixel_A, 0.3);
  const int half = std::max(1, static_cast<int>(std::lround(options.min_separation_A / grid.pixel_A)) / 2);
  // Only the box around the lit pixels is smoothed (the object image is mostly the margin
  // around the FOV, and early in a session mostly unlit). Its margin covers what a lit pixel's
  // smoothed value, its maximum test and its parabola read, and what those values' blur reads,
  // so the result is the same as smoothing the whole image.
  int top = rows, bottom = -1, left = cols, right = -1;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      if (lit[static_cast<std::size_t>(r) * cols + c])
        top = std::min(top, r), bottom = std::max(bottom, r), left = std::min(left, c), right = std::max(right, c);
  if (bottom < 0) return {};
  const int margin = half + 1 + static_cast<int>(std::ceil(3 * sigma_px)) + 1;
  const int r0 = std::max(0, top - margin), r1 = std::min(rows - 1, bottom + margin);
  const int c0 = std::max(0, left - margin), c1 = std::min(cols - 1, right + margin);
  const int box_rows = r1 - r0 + 1, box_cols = c1 - c0 + 1;
  std::vector<double> values(static_cast<std::size_t>(box_rows) * box_cols);
  for (int r = 0; r < box_rows; ++r)
    for (int c = 0; c < box_cols; ++c) {
      const double v = phase(r0 + r, c0 + c);
      values[static_cast<std::size_t>(r) * box_cols + c] = std::isfinite(v) ? v : 0.0;
    }
  const std::vector<double> smooth = gaussian_blur(values, box_rows, box_cols, sigma_px);
  auto is_lit = [&](int r, int c) { return lit[static_cast<std::size_t>(r0 + r) * cols + c0 + c] != 0; };

  std::vector<double> lit_values;
  for (int r = 0; r < box_rows; ++r)
    for (int c = 0; c < box_cols; ++c)
      if (is_lit(r, c)) lit_values.push_back(smooth[static_cast<std::size_t>(r) * box_cols + c]);
  const std::size_t k = static_cast<std::size_t>(std::floor(0.99 * (lit_values.size() - 1)));
  std::nth_element(lit_values.begin(), lit_values.begin() + static_cast<long>(k), lit_values.end());
  const double threshold = options.relative_threshold * lit_values[k];
  if (!(lit_values[k] > 0)) return {};

  auto smoothed = [&](int r, int c) { return smooth[static_cast<std::size_t>(r) * box_cols + c]; };
  std::vector<Vec2> peaks;
  for (int r = 0; r < box_rows; ++r)
    for (int c = 0; c < box_cols; ++c) {
      // The parabola needs both neighbours within the image.
      if (r0 + r < 1 || r0 + r + 1 >= rows || c0 + c < 1 || c0 + c + 1 >= cols) continue;
      const double v = smoothed(r, c);
      if (!is_lit(r, c) || !(v > threshold)) continue;
      bool maximum = true;
      for (int dr = -half; dr <= half && maximum; ++dr)
        for (int dc = -half; dc <= half; ++dc) {
          const int rr = r + dr, cc = c + dc;
          if ((dr == 0 && dc == 0) || rr < 0 || rr >= box_rows || cc < 0 || cc >= box_cols) continue;
          const double w = smoothed(rr, cc);
          // A plateau of equal values yields its first pixel in raster order only.
          if (w > v || (w == v && (dr < 0 || (dr == 0 && dc < 0)))) {
            maximum = false;
            break;
          }
        }
      if (!maximum) continue;
      const double fy = r + vertex_offset(smoothed(r - 1, c), v, smoothed(r + 1, c));
      const double fx = c + vertex_offset(smoothed(r, c - 1), v, smoothed(r, c + 1));
      peaks.push_back({(r0 + fy) * grid.pixel_A - grid.fov_origin_A.y,
                       (c0 + fx) * grid.pixel_A - grid.fov_origin_A.x});
    }
  return peaks;
}

std::vector<Vec2> CrystalLattice::sites_within(Vec2 lo, Vec2 hi) const {
  const Basis2 lattice{a1, a2};
  std::vector<Vec2> sites;
  for (const Vec2& b : basis) {
    double i_lo = INFINITY, i_hi = -INFINITY, j_lo = INFINITY, j_hi = -INFINITY;
    for (const Vec2& corner : {lo, Vec2{lo.y, hi.x}, Vec2{hi.y, lo.x}, hi}) {
      const auto f = lattice.fractional(corner - b);
      i_lo = std::min(i_lo, f[0]), i_hi = std::max(i_hi, f[0]);
      j_lo = std::min(j_lo, f[1]), j_hi = std::max(j_hi, f[1]);
    }
    for (long i = static_cast<long>(std::floor(i_lo)); i <= static_cast<long>(std::ceil(i_hi)); ++i)
      for (long j = static_cast<long>(std::floor(j_lo)); j <= static_cast<long>(std::ceil(j_hi)); ++j) {
        const Vec2 p = b + lattice.cartesian(static_cast<double>(i), static_cast<double>(j));
        if (p.y >= lo.y && p.y <= hi.y && p.x >= lo.x && p.x <= hi.x) sites.push_back(p);
      }
  }
  return sites;
}

std::optional<CrystalLattice> fit_crystal_lattice(std::span<const Vec2> peaks,
                                                  const std::function<bool(Vec2)>& observable,
                                                  const LatticeFitOptions& options) {
  const std::size_t n = peaks.size();
  const double tol = options.tolerance_A;
  if (n < 6) return std::nullopt;

  // Candidate translations: the differences between peaks, in one half-plane (v and -v are the
  // same translation), clustered greedily in the order of the peaks.
  struct Candidate {
    Vec2 sum;
    int count = 0;
    Vec2 mean() const { return (1.0 / count) * sum; }
  };
  std::vector<Candidate> candidates;
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t b = 0; b < n; ++b) {
      const Vec2 v = peaks[b] - peaks[a];
      const double len2 = v.y * v.y + v.x * v.x;
      if (!(len2 > options.min_vector_A * options.min_vector_A &&
            len2 < options.max_vector_A * options.max_vector_A))
        continue;
      if (v.y < 0 || (v.y == 0 && v.x < 0)) continue;
      // Squared distances: this runs for every pair against every candidate so far.
      auto it = std::find_if(candidates.begin(), candidates.end(), [&](const Candidate& c) {
        const Vec2 d = c.mean() - v;
        return d.y * d.y + d.x * d.x < tol * tol;
      });
      if (it == candidates.end()) candidates.push_back({v, 1});
      else it->sum = it->sum + v, ++it->count;
    }

  // How well a translation maps the peaks onto peaks, among those whose image is observable.
  const PeakCells cells(peaks, tol);
  auto repeat_score = [&](Vec2 v) {
    int seen = 0, matched = 0;
    for (const Vec2& p : peaks) {
      const Vec2 image = p + v;
      if (!observable(image)) continue;
      ++seen;
      matched += cells.any_within(image, tol);
    }
    return seen > 0 ? static_cast<double>(matched) / seen : 0.0;
  };
  struct Scored {
    Vec2 v;
    double score;
  };
  std::vector<Scored> scored;
  double best = 0;
  for (const Candidate& c : candidates) {
    if (c.count < 3) continue;
    const Vec2 v = c.mean();
    const double score = 0.5 * (repeat_score(v) + repeat_score(-1.0 * v));
    scored.push_back({v, score});
    best = std::max(best, score);
  }
  if (!(best > 0)) return std::nullopt;
  std::vector<Vec2> good;
  for (const Scored& s : scored)
    if (s.score >= options.min_relative_score * best) good.push_back(s.v);
  std::stable_sort(good.begin(), good.end(), [](Vec2 a, Vec2 b) { return length(a) < length(b); });
  if (good.size() < 2) return std::nullopt;
  Basis2 lattice{good[0], {}};
  bool found = false;
  for (std::size_t i = 1; i < good.size() && !found; ++i) {
    const Vec2 v = good[i];
    const double sine = std::abs(lattice.a1.y * v.x - lattice.a1.x * v.y) / (length(lattice.a1) * length(v));
    if (sine > 0.5) lattice.a2 = v, found = true;
  }
  if (!found) return std::nullopt;

  // Refinement: fold the peaks into one cell to find the basis sites, then fit a1, a2 and the
  // sites to every peak that falls on one, by least squares. Three rounds let the folding use
  // the refined vectors.
  std::vector<Vec2> basis;
  const Vec2 anchor = peaks[0];
  for (int round = 0; round < 3; ++round) {
    struct Site {
      double fi = 0, fj = 0;
      int count = 0;
    };
    std::vector<Site> sites;
    std::vector<std::array<double, 2>> fractional(n);
    for (std::size_t k = 0; k < n; ++k) {
      fractional[k] = lattice.fractional(peaks[k] - anchor);
      double fi = fractional[k][0] - std::floor(fractional[k][0] + 0.5);
      double fj = fractional[k][1] - std::floor(fractional[k][1] + 0.5);
      auto it = std::find_if(sites.begin(), sites.end(), [&](const Site& s) {
        double di = fi - s.fi / s.count, dj = fj - s.fj / s.count;
        di -= std::round(di), dj -= std::round(dj);
        return length(lattice.cartesian(di, dj)) < 1.5 * tol;
      });
      if (it == sites.end()) {
        sites.push_back({fi, fj, 1});
      } else {
        // Unwrap to the site's side of the cell before adding, so that a site on the cell's
        // edge does not average to its middle.
        double di = fi - it->fi / it->count, dj = fj - it->fj / it->count;
        it->fi += it->fi / it->count + (di - std::round(di));
        it->fj += it->fj / it->count + (dj - std::round(dj));
        ++it->count;
      }
    }
    const double min_count = std::max(2.0, 0.15 * static_cast<double>(n) / static_cast<double>(sites.size()));
    std::vector<std::array<double, 2>> centres;
    for (const Site& s : sites)
      if (s.count >= min_count) centres.push_back({s.fi / s.count, s.fj / s.count});
    const int nb = static_cast<int>(centres.size());
    if (nb == 0 || nb > 8) return std::nullopt;

    // Unknowns: a1 and a2 (their y, x), and each site's offset; y and x share one design.
    const int m = 2 + nb;
    std::vector<double> normal(static_cast<std::size_t>(m) * m, 0.0), rhs_y(m, 0.0), rhs_x(m, 0.0);
    int used = 0;
    for (std::size_t k = 0; k < n; ++k) {
      int site = -1;
      double site_distance = INFINITY, ci = 0, cj = 0;
      for (int s = 0; s < nb; ++s) {
        const double di = fractional[k][0] - centres[s][0], dj = fractional[k][1] - centres[s][1];
        const double d = length(lattice.cartesian(di - std::round(di), dj - std::round(dj)));
        if (d < site_distance) site_distance = d, site = s, ci = std::round(di), cj = std::round(dj);
      }
      if (!(site_distance < 1.5 * tol)) continue;
      ++used;
      std::vector<double> row(m, 0.0);
      row[0] = ci, row[1] = cj, row[2 + site] = 1.0;
      for (int a = 0; a < m; ++a) {
        for (int b = 0; b < m; ++b) normal[a * m + b] += row[a] * row[b];
        rhs_y[a] += row[a] * peaks[k].y;
        rhs_x[a] += row[a] * peaks[k].x;
      }
    }
    if (used < m + 2 || !solve_normal_equations(normal, m, rhs_y, rhs_x)) return std::nullopt;
    lattice.a1 = {rhs_y[0], rhs_x[0]};
    lattice.a2 = {rhs_y[1], rhs_x[1]};
    basis.clear();
    for (int s = 0; s < nb; ++s) basis.push_back({rhs_y[2 + s], rhs_x[2 + s]});
    const double sine = std::abs(lattice.a1.y * lattice.a2.x - lattice.a1.x * lattice.a2.y) /
                        (length(lattice.a1) * length(lattice.a2));
    if (!(sine > 0.5) || !(length(lattice.a1) > options.min_vector_A)) return std::nullopt;
  }
  // The basis sites are offsets of the cell at `anchor`'s origin, already absolute (the design
  // had no separate origin), so they are scan coordinates.
  return CrystalLattice{lattice.a1, lattice.a2, std::move(basis)};
}

}  // namespace ptypilot
