// The simulator's experimental effects (kernels/include/ptypilot/experimental_effects.hpp): each
// changes the frames as its physics says, and adds nothing when it is off.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "ptypilot/experimental_effects.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/presets.hpp"
#include "ptypilot/sim/frame_provider.hpp"
#include "ptypilot/simulator.hpp"

using namespace ptypilot;
using namespace ptypilot::sim;

namespace {

const SimulatedSpecimen& specimen() {
  static const SimulatedSpecimen s = simulate_specimen(experiment_preset("graphene-small"), 5);
  return s;
}

int pixels() { return specimen().preset.probe.window_px * specimen().preset.probe.window_px; }

std::vector<Vec2> some_positions() {
  return {{1.0, 1.0}, {2.3, 4.1}, {5.0, 3.3}, {7.7, 6.2}, {4.4, 8.8}, {3.0, 0.5}};
}

std::vector<float> simulate(const ExperimentalEffects& effects, std::span<const Vec2> positions,
                            double dose = 0.0, std::uint64_t noise_seed = 7) {
  FrameSimulator simulator(specimen(), dose, noise_seed, effects);
  std::vector<float> frames(positions.size() * pixels());
  REQUIRE(simulator.frames(positions, frames).ok());
  return frames;
}

// The forward model without any effect, for a probe and a phase of our choosing.
std::vector<float> ideal(const ProbeConfig& probe, const RealImage& phase,
                         std::span<const Vec2> positions) {
  ForwardModel model(probe, specimen().grid);
  std::vector<float> frames(positions.size() * pixels());
  REQUIRE(model.intensities(phase, positions, frames).ok());
  return frames;
}

double max_abs_difference(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::abs(a[i] - b[i])));
  return d;
}

// Centre of mass of one frame along x in detector pixels: the differential phase contrast
// signal of the phase gradient along x.
double com_x(std::span<const float> frame, int n) {
  double sum = 0, moment = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int fx = j < n / 2 ? j : j - n;  // unshifted layout: zero angle at (0, 0)
      sum += frame[i * n + j];
      moment += fx * frame[i * n + j];
    }
  return moment / sum;
}

double variance(const std::vector<double>& v) {
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  double s = 0;
  for (double x : v) s += (x - mean) * (x - mean);
  return s / v.size();
}

}  // namespace

TEST_CASE("no effects: today's frames, bit for bit", "[simulator][effects]") {
  const ExperimentalEffects none = parse_experimental_effects("");
  CHECK_FALSE(none.any());
  // Magnitudes of 0 and settings that only matter with an effect on are no effect.
  CHECK_FALSE(parse_experimental_effects("jitter_rms_A=0,source_order=5,phonon_rms_A=0.1").any());
  const auto positions = some_positions();
  const auto noise_free = simulate(none, positions);
  CHECK(noise_free == ideal(specimen().preset.probe, specimen().phase_rad, positions));
  // Noisy: the same Poisson stream as the simulator made before effects existed.
  FrameSimulator before(specimen(), 1e4, 3);
  std::vector<float> expected(positions.size() * pixels());
  REQUIRE(before.frames(positions, expected).ok());
  CHECK(simulate(none, positions, 1e4, 3) == expected);
}

TEST_CASE("effects parse from text and print back", "[simulator][effects]") {
  const ExperimentalEffects e = parse_experimental_effects(
      "source_fwhm_A=0.4, defocus_error_A=30,cs_error_mm=0.002,astigmatism_A=10,"
      "astigmatism_angle_deg=30,jitter_rms_A=0.07,drift_y_A_per_frame=6e-05,"
      "drift_x_A_per_frame=-1e-4,psf_sigma_px=0.5,read_noise_e=0.05,phonon_configs=4,"
      "phonon_rms_A=0.08,phonon_rms_A_Z42=0.055,phonon_seed=3");
  CHECK(e.source_fwhm_A == 0.4);
  CHECK(e.drift_x_A_per_frame == -1e-4);
  CHECK(e.phonon_configs == 4);
  CHECK(e.phonon_rms_for(42) == 0.055);
  CHECK(e.phonon_rms_for(16) == 0.08);
  CHECK(to_string(parse_experimental_effects(to_string(e))) == to_string(e));
  CHECK(to_string(ExperimentalEffects{}).empty());
  CHECK_THROWS_WITH(parse_experimental_effects("jitter=0.1"), Catch::Contains("unknown key 'jitter'"));
  CHECK_THROWS_WITH(parse_experimental_effects("jitter_rms_A=-0.1"), Catch::Contains(">= 0"));
  CHECK_THROWS_WITH(parse_experimental_effects("jitter_rms_A=abc"), Catch::Contains("not a number"));
  CHECK_THROWS_WITH(parse_experimental_effects("phonon_configs=1.5"), Catch::Contains("whole"));
  CHECK_THROWS_WITH(parse_experimental_effects("source_order=9"), Catch::Contains("1 to 5"));
  CHECK_THROWS_WITH(parse_experimental_effects("phonon_rms_A_Z200=0.1"), Catch::Contains("element"));
  CHECK_FALSE(experimental_effects_reference().empty());
}

TEST_CASE("drift: frame n is the ideal frame at the nominal position plus n times the drift",
          "[simulator][effects]") {
  ExperimentalEffects e;
  e.drift_y_A_per_frame = 0.05;
  e.drift_x_A_per_frame = -0.03;
  const auto positions = some_positions();
  FrameSimulator simulator(specimen(), 0.0, 1, e);
  // Two calls: the frame index runs on across them, as a detector's does within a series.
  std::vector<float> first(2 * pixels()), rest((positions.size() - 2) * pixels());
  REQUIRE(simulator.frames(std::span(positions).first(2), first).ok());
  REQUIRE(simulator.frames(std::span(positions).subspan(2), rest).ok());
  first.insert(first.end(), rest.begin(), rest.end());
  std::vector<Vec2> shifted;
  for (std::size_t n = 0; n < positions.size(); ++n)
    shifted.push_back({positions[n].y + double(n) * e.drift_y_A_per_frame,
                       positions[n].x + double(n) * e.drift_x_A_per_frame});
  CHECK(first == ideal(specimen().preset.probe, specimen().phase_rad, shifted));
  CHECK(first != ideal(specimen().preset.probe, specimen().phase_rad, positions));
}

TEST_CASE("jitter: Gaussian, per frame, repeatable in its seed", "[simulator][effects]") {
  ExperimentalEffects e;
  e.jitter_rms_A = 0.1;
  const std::vector<Vec2> nominal(4000, Vec2{4.0, 4.0});
  ExperimentalSimulator a(specimen(), e, 11), b(specimen(), e, 11), c(specimen(), e, 12);
  const auto actual = a.actual_positions(nominal);
  double sum_y = 0, sum_yy = 0, sum_xx = 0;
  for (const Vec2& p : actual) {
    sum_y += p.y - 4.0;
    sum_yy += (p.y - 4.0) * (p.y - 4.0);
    sum_xx += (p.x - 4.0) * (p.x - 4.0);
  }
  CHECK(std::abs(sum_y / nominal.size()) < 0.01);
  CHECK(std::sqrt(sum_yy / nominal.size()) == Approx(0.1).epsilon(0.05));
  CHECK(std::sqrt(sum_xx / nominal.size()) == Approx(0.1).epsilon(0.05));
  const auto again = b.actual_positions(nominal), other = c.actual_positions(nominal);
  CHECK(std::equal(actual.begin(), actual.end(), again.begin(),
                   [](Vec2 p, Vec2 q) { return p.y == q.y && p.x == q.x; }));
  CHECK(actual[0].y != other[0].y);
  // Frames: repeatable, and not the nominal ones.
  const auto positions = some_positions();
  CHECK(simulate(e, positions, 1e4) == simulate(e, positions, 1e4));
  CHECK(simulate(e, positions) != ideal(specimen().preset.probe, specimen().phase_rad, positions));
  // The beam cannot land outside the field the object covers: clamped to the FOV's edge.
  const std::vector<Vec2> corner(200, Vec2{0.0, 0.0});
  for (const Vec2& p : a.actual_positions(corner)) CHECK((p.y >= 0 && p.x >= 0));
}

TEST_CASE("source size: the Gauss-Hermite mean over probe offsets", "[simulator][effects]") {
  for (int order = 1; order <= 5; ++order) {
    const auto nodes = source_quadrature(0.4, order);
    REQUIRE(nodes.size() == std::size_t(order * order));
    double w = 0, yy = 0, yyyy = 0, xy = 0;
    for (const SourceNode& n : nodes) {
      w += n.weight;
      yy += n.weight * n.offset_A.y * n.offset_A.y;
      yyyy += n.weight * std::pow(n.offset_A.y, 4);
      xy += n.weight * n.offset_A.x * n.offset_A.y;
    }
    const double sigma = 0.4 / 2.3548200450309493;
    CHECK(w == Approx(1.0).epsilon(1e-12));
    CHECK(xy == Approx(0.0).margin(1e-15));
    if (order >= 2) CHECK(yy == Approx(sigma * sigma).epsilon(1e-12));
    if (order >= 3) CHECK(yyyy == Approx(3 * std::pow(sigma, 4)).epsilon(1e-12));
  }
  // One position's frame is the weighted mean of the ideal frames at the offset positions.
  ExperimentalEffects e;
  e.source_fwhm_A = 0.4;
  const std::vector<Vec2> one{{4.0, 5.0}};
  const auto frame = simulate(e, one);
  std::vector<double> expected(pixels(), 0.0);
  for (const SourceNode& n : source_quadrature(0.4, 3)) {
    const std::vector<Vec2> at{{4.0 + n.offset_A.y, 5.0 + n.offset_A.x}};
    const auto f = ideal(specimen().preset.probe, specimen().phase_rad, at);
    for (int k = 0; k < pixels(); ++k) expected[k] += n.weight * f[k];
  }
  for (int k = 0; k < pixels(); ++k) CHECK(frame[k] == Approx(expected[k]).margin(1e-7));
}

TEST_CASE("source size blurs the scan: the centre-of-mass contrast falls",
          "[simulator][effects]") {
  // A far-field pattern does not see where the probe is, only what it meets, so a finite source
  // does not blur the disk edge; it blurs every signal along the scan. The differential phase
  // contrast (centre of mass along the line) over a line across the graphene lattice loses
  // contrast. (Across the line it need not: the blur brings in neighbouring rows.)
  std::vector<Vec2> line;
  for (int i = 0; i < 40; ++i) line.push_back({4.0, 2.0 + 0.05 * i});
  const int n = specimen().preset.probe.window_px;
  const auto contrast = [&](double fwhm) {
    ExperimentalEffects e;
    e.source_fwhm_A = fwhm;
    const auto frames = simulate(e, line);
    std::vector<double> com;
    for (std::size_t p = 0; p < line.size(); ++p)
      com.push_back(com_x(std::span(frames).subspan(p * pixels(), pixels()), n));
    return variance(com);
  };
  const double sharp = contrast(0.0), blurred = contrast(0.5), very = contrast(1.0);
  CHECK(blurred < 0.6 * sharp);
  CHECK(very < 0.5 * blurred);
}

TEST_CASE("residual aberrations: the frames come from a probe the reconstructor does not know",
          "[simulator][effects]") {
  const ProbeConfig assumed = specimen().preset.probe;
  ExperimentalEffects e;
  e.defocus_error_A = 30;
  e.cs_error_mm = 0.002;
  const ProbeConfig truth = true_probe(assumed, e);
  CHECK(truth.defocus_A == assumed.defocus_A + 30);
  CHECK(truth.Cs_mm == assumed.Cs_mm + 0.002);
  const auto positions = some_positions();
  const auto frames = simulate(e, positions);
  CHECK(frames == ideal(truth, specimen().phase_rad, positions));
  CHECK(max_abs_difference(frames, ideal(assumed, specimen().phase_rad, positions)) > 1e-4);
}

TEST_CASE("two-fold astigmatism stretches the probe along its axis", "[optics][effects]") {
  ProbeConfig p = experiment_preset("mos2-paper").probe;
  // An astigmatism of 0 is the probe as it was.
  ProbeConfig zero = p;
  zero.astigmatism_angle_deg = 40;
  CHECK(make_probe(zero).vector() == make_probe(p).vector());
  // Second moments of |psi|^2 along y and x about the centre.
  const auto moments = [](const ProbeConfig& c) {
    const ComplexImage probe = make_probe(c);
    const int n = c.window_px;
    double yy = 0, xx = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const double w = std::norm(probe(i, j));
        yy += w * (i - n / 2) * (i - n / 2);
        xx += w * (j - n / 2) * (j - n / 2);
      }
    return std::pair{yy, xx};
  };
  p.defocus_A = 20;  // away from focus, astigmatism makes the probe a line focus's ellipse
  p.astigmatism_A = 20;
  p.astigmatism_angle_deg = 0;
  const auto [yy0, xx0] = moments(p);
  p.astigmatism_angle_deg = 90;
  const auto [yy90, xx90] = moments(p);
  CHECK(std::abs(yy0 - xx0) > 0.2 * (yy0 + xx0) / 2);
  // Turning the axis by 90 degrees swaps the two directions.
  CHECK(yy90 == Approx(xx0).epsilon(1e-4));
  CHECK(xx90 == Approx(yy0).epsilon(1e-4));
  // Along phi_A1 the focus is defocus - A1 = 0 here: the probe is narrow in x at angle 0.
  CHECK(xx0 < yy0);
}

TEST_CASE("detector point-spread keeps the counts and spreads them", "[simulator][effects]") {
  const int n = 16;
  std::vector<float> delta(n * n, 0.0f);
  delta[5 * n + 7] = 100.0f;
  std::vector<float> edge(n * n, 0.0f);
  edge[0] = 100.0f;  // in the corner: nothing may leave the detector
  detector_psf(delta, n, 0.8);
  detector_psf(edge, n, 0.8);
  CHECK(std::accumulate(delta.begin(), delta.end(), 0.0) == Approx(100.0).epsilon(1e-6));
  CHECK(std::accumulate(edge.begin(), edge.end(), 0.0) == Approx(100.0).epsilon(1e-6));
  CHECK(delta[5 * n + 7] < 100.0f);
  CHECK(delta[5 * n + 6] == Approx(delta[5 * n + 8]));
  CHECK(delta[4 * n + 7] == Approx(delta[6 * n + 7]));
  // The variance of the spread is sigma^2 (the truncation at 4 sigma loses 1e-4 of it).
  double var = 0;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i) var += delta[i * n + j] / 100.0 * (j - 7) * (j - 7);
  CHECK(var == Approx(0.64).epsilon(2e-3));

  // On simulated counts: after the Poisson draw, so the same draws spread, totals kept.
  ExperimentalEffects e;
  e.psf_sigma_px = 0.5;
  const auto positions = some_positions();
  const auto counted = simulate({}, positions, 1e4, 9);
  const auto spread = simulate(e, positions, 1e4, 9);
  for (std::size_t p = 0; p < positions.size(); ++p) {
    const auto a = std::span(counted).subspan(p * pixels(), pixels());
    const auto b = std::span(spread).subspan(p * pixels(), pixels());
    CHECK(std::accumulate(b.begin(), b.end(), 0.0) ==
          Approx(std::accumulate(a.begin(), a.end(), 0.0)).epsilon(1e-5));
  }
  CHECK(max_abs_difference(counted, spread) > 1.0);
}

TEST_CASE("read noise: Gaussian on counted frames only, never negative", "[simulator][effects]") {
  ExperimentalEffects e;
  e.read_noise_e = 0.5;
  const auto positions = some_positions();
  // Noise-free frames are expectations: no read-out to add noise to.
  CHECK(simulate(e, positions) == simulate({}, positions));
  const auto counted = simulate({}, positions, 1e5, 4);
  const auto read = simulate(e, positions, 1e5, 4);
  double sum = 0, sum2 = 0, m = 0;
  for (std::size_t k = 0; k < read.size(); ++k) {
    CHECK(read[k] >= 0.0f);
    if (counted[k] < 5) continue;  // where clipping at 0 cannot act
    const double d = read[k] - counted[k];
    sum += d;
    sum2 += d * d;
    ++m;
  }
  REQUIRE(m > 500);
  CHECK(std::abs(sum / m) < 0.05);
  CHECK(std::sqrt(sum2 / m) == Approx(0.5).epsilon(0.1));
}

TEST_CASE("frozen phonons: displaced atoms, and static frames at u = 0", "[simulator][effects]") {
  ExperimentalEffects e;
  e.phonon_configs = 3;
  const auto positions = some_positions();
  const auto still = simulate(e, positions);
  const auto static_frames = simulate({}, positions);
  for (std::size_t k = 0; k < still.size(); ++k)
    CHECK(still[k] == Approx(static_frames[k]).epsilon(1e-6).margin(1e-9));

  e.phonon_rms_A = 0.08;
  e.phonon_rms_A_by_Z[6] = 0.1;
  const auto& atoms = specimen().atoms;
  const auto moved = displaced_atoms(atoms, e, specimen().seed, 0);
  double ss = 0;
  for (std::size_t i = 0; i < atoms.size(); ++i)
    ss += std::pow(moved[i].y_A - atoms[i].y_A, 2) + std::pow(moved[i].x_A - atoms[i].x_A, 2);
  CHECK(std::sqrt(ss / (2.0 * atoms.size())) == Approx(0.1).epsilon(0.1));
  CHECK(displaced_atoms(atoms, e, specimen().seed, 1)[0].y_A != moved[0].y_A);
  CHECK(displaced_atoms(atoms, e, specimen().seed, 0)[0].y_A == moved[0].y_A);

  // Thermal motion damps the Bragg reflections (Debye-Waller) and moves that intensity into a
  // diffuse background between them: the strongest pixels of the mean pattern lose intensity.
  std::vector<Vec2> many;
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) many.push_back({1.0 + 1.1 * i, 1.0 + 1.3 * j});
  const auto mean_pattern = [&](const ExperimentalEffects& fx) {
    const auto f = simulate(fx, many);
    std::vector<double> mean(pixels(), 0.0);
    for (std::size_t p = 0; p < many.size(); ++p)
      for (int k = 0; k < pixels(); ++k) mean[k] += f[p * pixels() + k];
    return mean;
  };
  const auto cold = mean_pattern({}), warm = mean_pattern(e);
  // Outside the bright-field disk: the scattered intensity.
  const int n = specimen().preset.probe.window_px;
  const double disk_px = specimen().preset.probe.semiangle_mrad /
                         specimen().preset.probe.detector_pixel_mrad + 2;
  std::vector<std::pair<double, double>> dark;  // (cold, warm)
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int fy = i < n / 2 ? i : i - n, fx = j < n / 2 ? j : j - n;
      if (std::hypot(fy, fx) > disk_px) dark.push_back({cold[i * n + j], warm[i * n + j]});
    }
  std::sort(dark.begin(), dark.end(), [](auto a, auto b) { return a.first > b.first; });
  double cold_peaks = 0, warm_peaks = 0;
  for (std::size_t k = 0; k < 20; ++k) cold_peaks += dark[k].first, warm_peaks += dark[k].second;
  CHECK(warm_peaks < 0.98 * cold_peaks);
}

TEST_CASE("the defocused preset's probe fits its window", "[simulator][effects]") {
  // (rms radius, share of the intensity beyond 4.5 A) of a probe on its 64 px, 9.9 A window.
  const auto extent = [](const ProbeConfig& c) {
    const ComplexImage probe = make_probe(c);
    const int n = c.window_px;
    const double pixel = real_space_pixel_A(c);
    double rr = 0, outside = 0, total = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const double w = std::norm(probe(i, j)), r = std::hypot(i - n / 2, j - n / 2) * pixel;
        total += w;
        rr += w * r * r;
        if (r > 4.5) outside += w;
      }
    return std::pair{std::sqrt(rr / total), outside / total};
  };
  const ExperimentPreset& p = experiment_preset("mos2-defocused-paper");
  const auto [focused_radius, focused_outside] = extent(experiment_preset("mos2-paper").probe);
  const auto [radius, outside] = extent(p.probe);
  CHECK(p.probe.defocus_A == 60.0);
  CHECK(radius > 1.5 * focused_radius);  // defocused indeed
  CHECK(outside < 0.01);                 // and still inside the window
  CHECK(focused_outside < outside);
}

TEST_CASE("the simulated detector sends fractions of electrons as float32", "[simulator][effects]") {
  SimulatorFrameSettings settings;
  settings.preset = "graphene-small";
  CHECK(SimulatorFrameProvider(settings).format().dtype == PixelType::kUint16);
  settings.effects.jitter_rms_A = 0.1;  // whole counts still
  CHECK(SimulatorFrameProvider(settings).format().dtype == PixelType::kUint16);
  settings.effects.psf_sigma_px = 0.5;
  const SimulatorFrameProvider spread(settings);
  CHECK(spread.format().dtype == PixelType::kFloat32);
  CHECK_THAT(spread.format().source, Catch::Contains("psf_sigma_px=0.5"));
}
