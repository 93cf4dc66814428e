#include "ptypilot/experimental_effects.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>

#include "ptypilot/simulator.hpp"

namespace ptypilot::sim {
namespace {

// One row per setting: the parser, the text form and the reference are made from this table.
struct Field {
  const char* name;
  const char* unit;
  const char* help;
  std::function<double&(ExperimentalEffects&)> ref;
  bool integer = false;
};

const std::vector<Field>& fields() {
  static const std::vector<Field> all = {
      {"source_fwhm_A", "A", "FWHM of the Gaussian effective source in the specimen plane",
       [](ExperimentalEffects& e) -> double& { return e.source_fwhm_A; }},
      {"defocus_error_A", "A", "defocus of the true probe beyond the assumed one (+: underfocus)",
       [](ExperimentalEffects& e) -> double& { return e.defocus_error_A; }},
      {"cs_error_mm", "mm", "C3 of the true probe beyond the assumed one",
       [](ExperimentalEffects& e) -> double& { return e.cs_error_mm; }},
      {"astigmatism_A", "A", "two-fold astigmatism A1 of the true probe",
       [](ExperimentalEffects& e) -> double& { return e.astigmatism_A; }},
      {"astigmatism_angle_deg", "deg", "azimuth of A1, from the x (column) axis towards y",
       [](ExperimentalEffects& e) -> double& { return e.astigmatism_angle_deg; }},
      {"jitter_rms_A", "A", "rms of the scan-position error in each of y and x, per frame",
       [](ExperimentalEffects& e) -> double& { return e.jitter_rms_A; }},
      {"drift_y_A_per_frame", "A/frame", "linear drift in y since the detector was armed",
       [](ExperimentalEffects& e) -> double& { return e.drift_y_A_per_frame; }},
      {"drift_x_A_per_frame", "A/frame", "linear drift in x since the detector was armed",
       [](ExperimentalEffects& e) -> double& { return e.drift_x_A_per_frame; }},
      {"psf_sigma_px", "detector px", "sigma of the detector's Gaussian point-spread",
       [](ExperimentalEffects& e) -> double& { return e.psf_sigma_px; }},
      {"read_noise_e", "e", "sigma of the Gaussian read noise per pixel",
       [](ExperimentalEffects& e) -> double& { return e.read_noise_e; }},
      {"phonon_rms_A", "A", "rms thermal displacement per axis of every element (frozen phonons)",
       [](ExperimentalEffects& e) -> double& { return e.phonon_rms_A; }},
  };
  return all;
}

struct IntField {
  const char* name;
  const char* help;
  std::function<int&(ExperimentalEffects&)> ref;
};

const std::vector<IntField>& int_fields() {
  static const std::vector<IntField> all = {
      {"source_order", "Gauss-Hermite nodes per axis of the source quadrature (1 to 5)",
       [](ExperimentalEffects& e) -> int& { return e.source_order; }},
      {"phonon_configs", "frozen-phonon configurations averaged over (0: static atoms)",
       [](ExperimentalEffects& e) -> int& { return e.phonon_configs; }},
  };
  return all;
}

constexpr const char* kPhononByZ = "phonon_rms_A_Z";

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("experimental effects: " + what);
}

void check(const ExperimentalEffects& e) {
  ExperimentalEffects copy = e;
  for (const Field& f : fields())
    if (!std::isfinite(f.ref(copy))) fail(std::string(f.name) + " must be finite");
  const auto non_negative = [](double v, const char* name) {
    if (v < 0) fail(std::string(name) + " must be >= 0");
  };
  non_negative(e.source_fwhm_A, "source_fwhm_A");
  non_negative(e.astigmatism_A, "astigmatism_A");
  non_negative(e.jitter_rms_A, "jitter_rms_A");
  non_negative(e.psf_sigma_px, "psf_sigma_px");
  non_negative(e.read_noise_e, "read_noise_e");
  non_negative(e.phonon_rms_A, "phonon_rms_A");
  for (const auto& [Z, u] : e.phonon_rms_A_by_Z) {
    if (Z < 1 || Z > 103) fail("phonon_rms_A_Z" + std::to_string(Z) + ": no such element");
    if (!(u >= 0) || !std::isfinite(u)) fail("phonon_rms_A_Z" + std::to_string(Z) + " must be >= 0");
  }
  if (e.source_order < 1 || e.source_order > 5) fail("source_order must be 1 to 5");
  if (e.phonon_configs < 0 || e.phonon_configs > 64) fail("phonon_configs must be 0 to 64");
}

double parse_number(std::string_view key, std::string_view value) {
  double v = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size())
    fail(std::string(key) + "=" + std::string(value) + ": not a number");
  return v;
}

std::string number_text(double v) {
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);  // shortest round trip
  return std::string(buffer, end);
}

// SplitMix64: independent streams from related seeds.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Probabilists' Gauss-Hermite rules (nodes in units of sigma, weights summing to 1): the roots
// of He_n, and w_i = n! / (n He_{n-1}(x_i))^2.
std::vector<std::pair<double, double>> gauss_hermite(int order) {
  const double s6 = std::sqrt(6.0), s10 = std::sqrt(10.0);
  switch (order) {
    case 1: return {{0.0, 1.0}};
    case 2: return {{-1.0, 0.5}, {1.0, 0.5}};
    case 3: return {{-std::sqrt(3.0), 1.0 / 6}, {0.0, 2.0 / 3}, {std::sqrt(3.0), 1.0 / 6}};
    case 4: {
      const double a = std::sqrt(3 - s6), b = std::sqrt(3 + s6);
      const double wa = (3 + s6) / 12, wb = (3 - s6) / 12;
      return {{-b, wb}, {-a, wa}, {a, wa}, {b, wb}};
    }
    case 5: {
      const double a = std::sqrt(5 - s10), b = std::sqrt(5 + s10);
      const double wa = (7 + 2 * s10) / 60, wb = (7 - 2 * s10) / 60;
      return {{-b, wb}, {-a, wa}, {0.0, 8.0 / 15}, {a, wa}, {b, wb}};
    }
    default: fail("source_order must be 1 to 5");
  }
}

// Positions the forward model accepts: the scan FOV (place_window).
Vec2 clamp_to_fov(Vec2 p, const ObjectGrid& grid) {
  return {std::clamp(p.y, 0.0, grid.fov_height_A), std::clamp(p.x, 0.0, grid.fov_width_A)};
}

// One axis of the point-spread: out[i] = sum_j in[j] g(i - j) / Z(j), Z(j) the kernel's sum over
// the detector pixels that j's spread reaches, so no signal leaves the detector.
void spread_axis(float* data, int n, int stride_line, int stride_pixel, int lines,
                 const std::vector<double>& kernel) {
  const int radius = static_cast<int>(kernel.size()) - 1;
  std::vector<double> in(n), out(n);
  for (int line = 0; line < lines; ++line) {
    float* base = data + static_cast<std::ptrdiff_t>(line) * stride_line;
    for (int j = 0; j < n; ++j) in[j] = base[static_cast<std::ptrdiff_t>(j) * stride_pixel];
    std::fill(out.begin(), out.end(), 0.0);
    for (int j = 0; j < n; ++j) {
      if (in[j] == 0.0) continue;
      const int lo = std::max(0, j - radius), hi = std::min(n - 1, j + radius);
      double z = 0.0;
      for (int i = lo; i <= hi; ++i) z += kernel[std::abs(i - j)];
      const double share = in[j] / z;
      for (int i = lo; i <= hi; ++i) out[i] += share * kernel[std::abs(i - j)];
    }
    for (int j = 0; j < n; ++j) base[static_cast<std::ptrdiff_t>(j) * stride_pixel] = static_cast<float>(out[j]);
  }
}

}  // namespace

bool ExperimentalEffects::any() const {
  return source_fwhm_A != 0 || defocus_error_A != 0 || cs_error_mm != 0 || astigmatism_A != 0 ||
         jitter_rms_A != 0 || drift_y_A_per_frame != 0 || drift_x_A_per_frame != 0 ||
         psf_sigma_px != 0 || read_noise_e != 0 || phonon_configs != 0;
}

double ExperimentalEffects::phonon_rms_for(int Z) const {
  const auto it = phonon_rms_A_by_Z.find(Z);
  return it == phonon_rms_A_by_Z.end() ? phonon_rms_A : it->second;
}

ExperimentalEffects parse_experimental_effects(std::string_view text) {
  ExperimentalEffects e;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    const auto trim = [](std::string_view s) {
      while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
      while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
      return s;
    };
    item = trim(item);
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) fail(std::string(item).append(": not key=value"));
    const std::string_view key = trim(item.substr(0, eq)), value = trim(item.substr(eq + 1));
    const double v = parse_number(key, value);
    bool known = false;
    for (const Field& f : fields())
      if (key == f.name) f.ref(e) = v, known = true;
    for (const IntField& f : int_fields())
      if (key == f.name) {
        if (v != std::floor(v)) fail(std::string(key) + " must be a whole number");
        f.ref(e) = static_cast<int>(v);
        known = true;
      }
    if (key == "phonon_seed") {
      if (!(v >= 0) || v != std::floor(v) || v > 9.007199254740992e15)
        fail("phonon_seed must be a whole number >= 0");
      e.phonon_seed = static_cast<std::uint64_t>(v);
      known = true;
    }
    if (key.starts_with(kPhononByZ)) {
      const std::string_view z = key.substr(std::string_view(kPhononByZ).size());
      int Z = 0;
      const auto [end, ec] = std::from_chars(z.data(), z.data() + z.size(), Z);
      if (ec != std::errc() || end != z.data() + z.size()) fail(std::string(key) + ": expected phonon_rms_A_Z<atomic number>");
      e.phonon_rms_A_by_Z[Z] = v;
      known = true;
    }
    if (!known) {
      std::string names;
      for (const Field& f : fields()) names += std::string(names.empty() ? "" : ", ") + f.name;
      for (const IntField& f : int_fields()) names += std::string(", ") + f.name;
      fail("unknown key '" + std::string(key) + "'; known: " + names + ", phonon_seed, " +
           kPhononByZ + "<Z>");
    }
  }
  check(e);
  return e;
}

std::string to_string(const ExperimentalEffects& effects) {
  const ExperimentalEffects defaults;
  ExperimentalEffects e = effects, d = defaults;
  std::string out;
  const auto add = [&out](const std::string& key, const std::string& value) {
    out += (out.empty() ? "" : ",") + key + "=" + value;
  };
  for (const Field& f : fields())
    if (f.ref(e) != f.ref(d)) add(f.name, number_text(f.ref(e)));
  for (const IntField& f : int_fields())
    if (f.ref(e) != f.ref(d)) add(f.name, std::to_string(f.ref(e)));
  if (e.phonon_seed != d.phonon_seed) add("phonon_seed", std::to_string(e.phonon_seed));
  for (const auto& [Z, u] : e.phonon_rms_A_by_Z) add(kPhononByZ + std::to_string(Z), number_text(u));
  return out;
}

std::string experimental_effects_reference() {
  std::ostringstream out;
  for (const Field& f : fields()) out << f.name << " (" << f.unit << "): " << f.help << "\n";
  for (const IntField& f : int_fields()) out << f.name << ": " << f.help << "\n";
  out << "phonon_seed: seed of the phonon configurations, mixed with the specimen seed\n"
      << kPhononByZ << "<Z> (A): rms displacement per axis of element Z, instead of phonon_rms_A\n";
  return out.str();
}

ProbeConfig true_probe(const ProbeConfig& assumed, const ExperimentalEffects& effects) {
  ProbeConfig p = assumed;
  p.defocus_A += effects.defocus_error_A;
  p.Cs_mm += effects.cs_error_mm;
  p.astigmatism_A += effects.astigmatism_A;
  p.astigmatism_angle_deg = effects.astigmatism_angle_deg;
  return p;
}

std::vector<SourceNode> source_quadrature(double fwhm_A, int order) {
  if (fwhm_A == 0.0) return {SourceNode{}};
  const double sigma = fwhm_A / (2.0 * std::sqrt(2.0 * std::log(2.0)));
  const auto rule = gauss_hermite(order);
  std::vector<SourceNode> nodes;
  for (const auto& [y, wy] : rule)
    for (const auto& [x, wx] : rule) nodes.push_back({{sigma * y, sigma * x}, wy * wx});
  return nodes;
}

std::vector<Atom> displaced_atoms(std::span<const Atom> atoms, const ExperimentalEffects& effects,
                                  std::uint64_t specimen_seed, int index) {
  std::mt19937_64 rng(mix(mix(mix(specimen_seed) ^ effects.phonon_seed) + std::uint64_t(index)));
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<Atom> out(atoms.begin(), atoms.end());
  for (Atom& a : out) {
    // Both draws always, so that one element's rms does not shift another's displacements.
    const double dy = normal(rng), dx = normal(rng);
    const double u = effects.phonon_rms_for(a.Z);
    a.y_A += u * dy;
    a.x_A += u * dx;
  }
  return out;
}

void detector_psf(std::span<float> frame, int n, double sigma_px) {
  if (sigma_px <= 0) return;
  const int radius = std::max(1, static_cast<int>(std::ceil(4.0 * sigma_px)));
  std::vector<double> kernel(radius + 1);
  for (int i = 0; i <= radius; ++i) kernel[i] = std::exp(-0.5 * (i / sigma_px) * (i / sigma_px));
  spread_axis(frame.data(), n, n, 1, n, kernel);  // along each row
  spread_axis(frame.data(), n, 1, n, n, kernel);  // along each column
}

ExperimentalSimulator::ExperimentalSimulator(const SimulatedSpecimen& specimen,
                                             const ExperimentalEffects& effects,
                                             std::uint64_t noise_seed)
    : effects_(effects),
      probe_(true_probe(specimen.preset.probe, effects)),
      grid_(specimen.grid),
      source_(source_quadrature(effects.source_fwhm_A, effects.source_order)),
      jitter_rng_(mix(noise_seed ^ 0x6a09e667f3bcc908ULL)),
      read_rng_(mix(noise_seed ^ 0xbb67ae8584caa73bULL)) {
  check(effects);
  make_probe_fourier(probe_);  // throws for an unphysical true probe, here rather than per frame
  if (effects.phonon_configs == 0) {
    phases_.push_back(specimen.phase_rad);
    return;
  }
  const float sigma = static_cast<float>(interaction_constant_rad_per_VA(probe_.energy_keV));
  for (int k = 0; k < effects.phonon_configs; ++k) {
    const std::vector<Atom> atoms = displaced_atoms(specimen.atoms, effects, specimen.seed, k);
    RealImage phase = projected_potential_VA(atoms, grid_.rows, grid_.cols, grid_.pixel_A);
    for (float& v : phase.vector()) v *= sigma;
    phases_.push_back(std::move(phase));
  }
}

std::vector<Vec2> ExperimentalSimulator::actual_positions(std::span<const Vec2> nominal_A) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<Vec2> out;
  out.reserve(nominal_A.size());
  for (const Vec2& p : nominal_A) {
    const double n = static_cast<double>(frame_index_++);
    Vec2 a{p.y + n * effects_.drift_y_A_per_frame, p.x + n * effects_.drift_x_A_per_frame};
    if (effects_.jitter_rms_A > 0) {
      a.y += effects_.jitter_rms_A * normal(jitter_rng_);
      a.x += effects_.jitter_rms_A * normal(jitter_rng_);
    }
    // A non-finite request stays one, so that it fails as it would without effects.
    out.push_back(std::isfinite(p.y) && std::isfinite(p.x) ? clamp_to_fov(a, grid_) : p);
  }
  return out;
}

Status ExperimentalSimulator::intensities(std::span<const Vec2> actual_A, std::span<float> frames) {
  const std::size_t nn = static_cast<std::size_t>(probe_.window_px) * probe_.window_px;
  if (frames.size() != actual_A.size() * nn)
    return invalid_argument("output holds " + std::to_string(frames.size()) + " values, need " +
                            std::to_string(actual_A.size() * nn));
  std::fill(frames.begin(), frames.end(), 0.0f);
  // Chunks with a model each: every shifted position brings its own probe into the model's cache
  // (forward_model.hpp), which would otherwise grow with every frame ever made.
  constexpr std::size_t kChunk = 64;
  std::vector<float> one(kChunk * nn);
  std::vector<Vec2> shifted(kChunk);
  // The two means in one sum: each source node meets rounds phonon configurations in turn, not
  // all of them. The configurations are independent draws, so this is an unbiased estimate of
  // the thermal mean at every node, at the cost of the larger of the two counts rather than
  // their product; without a source size it is every configuration once.
  const std::size_t nodes = source_.size(), configs = phases_.size();
  const std::size_t rounds = (configs + nodes - 1) / nodes;
  for (std::size_t first = 0; first < actual_A.size(); first += kChunk) {
    const std::size_t count = std::min(kChunk, actual_A.size() - first);
    ForwardModel model(probe_, grid_);
    for (std::size_t j = 0; j < nodes; ++j) {
      const SourceNode& node = source_[j];
      for (std::size_t i = 0; i < count; ++i) {
        const Vec2 p = actual_A[first + i];
        shifted[i] = std::isfinite(p.y) && std::isfinite(p.x)
                         ? clamp_to_fov({p.y + node.offset_A.y, p.x + node.offset_A.x}, grid_)
                         : p;
      }
      const auto weight = static_cast<float>(node.weight / static_cast<double>(rounds));
      for (std::size_t round = 0; round < rounds; ++round) {
        const RealImage& phase = phases_[(j + round * nodes) % configs];
        Status s = model.intensities(phase, std::span<const Vec2>(shifted).first(count),
                                     std::span<float>(one).first(count * nn));
        if (!s.ok()) return s;
        float* out = frames.data() + first * nn;
        for (std::size_t k = 0; k < count * nn; ++k) out[k] += weight * one[k];
      }
    }
  }
  return Status::Ok();
}

void ExperimentalSimulator::detector_response(std::span<float> frames, bool noisy) {
  // An integrating pixel detector (the paper's EMPAD-like 128 x 128 class): each counted
  // electron deposits its charge spread over neighbouring pixels, so the point-spread acts on
  // the counts after Poisson, and correlates the shot noise of neighbours; the read-out then
  // adds its own noise to the spread signal. Spreading the mean before counting would instead
  // model a counting detector, whose counts stay Poisson and uncorrelated.
  const int n = probe_.detector_side_px();  // the frames the detector records
  const std::size_t nn = static_cast<std::size_t>(n) * n;
  std::normal_distribution<double> normal(0.0, 1.0);
  for (std::size_t first = 0; first < frames.size(); first += nn) {
    std::span<float> frame = frames.subspan(first, nn);
    detector_psf(frame, n, effects_.psf_sigma_px);
    if (!noisy || effects_.read_noise_e <= 0) continue;
    // Negative read-outs are set to 0, as data reduction of such detectors does after the dark
    // subtraction (the reconstructor refuses negative counts); this leaves a mean offset of
    // read_noise_e / sqrt(2 pi) in the dark pixels.
    for (float& v : frame)
      v = std::max(0.0f, static_cast<float>(v + effects_.read_noise_e * normal(read_rng_)));
  }
}

}  // namespace ptypilot::sim
