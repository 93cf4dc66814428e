#include "ptypilot/optics.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

#include "ptypilot/fft.hpp"

namespace ptypilot {
namespace {

// CODATA 2018 exact / recommended values.
constexpr double kPlanck_Js = 6.62607015e-34;
constexpr double kElectronMass_kg = 9.1093837015e-31;
constexpr double kElementaryCharge_C = 1.602176634e-19;
constexpr double kSpeedOfLight_m_per_s = 299792458.0;

void check(const ProbeConfig& c) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("probe config: " + what); };
  if (!(c.energy_keV > 0 && c.energy_keV < 10000)) fail("energy_keV must be in (0, 10000)");
  if (!(c.semiangle_mrad > 0)) fail("semiangle_mrad must be positive");
  if (!(c.detector_pixel_mrad > 0)) fail("detector_pixel_mrad must be positive");
  if (c.window_px < 8 || c.window_px % 2 != 0) fail("window_px must be even and at least 8");
  if (c.detector_px != 0 && (c.detector_px < 8 || c.detector_px % 2 != 0 || c.detector_px > c.window_px))
    fail("detector_px must be 0 (the window) or even, at least 8 and at most window_px (" +
         std::to_string(c.window_px) + ")");
  if (!std::isfinite(c.defocus_A) || !std::isfinite(c.Cs_mm) || !std::isfinite(c.astigmatism_A) ||
      !std::isfinite(c.astigmatism_angle_deg))
    fail("defocus_A, Cs_mm and the astigmatism must be finite");
  const double max_angle_mrad = c.detector_pixel_mrad * c.window_px / 2.0;
  if (c.semiangle_mrad + c.edge_mrad() / 2 > max_angle_mrad)
    fail("the aperture (" + std::to_string(c.semiangle_mrad) +
         " mrad) does not fit on the detector (half-width " + std::to_string(max_angle_mrad) +
         " mrad): use a larger window or angular pixel");
}

}  // namespace

double wavelength_A(double energy_keV) {
  const double eV = kElementaryCharge_C * energy_keV * 1e3;
  const double mc2 = kElectronMass_kg * kSpeedOfLight_m_per_s * kSpeedOfLight_m_per_s;
  const double momentum = std::sqrt(2.0 * kElectronMass_kg * eV * (1.0 + eV / (2.0 * mc2)));
  return kPlanck_Js / momentum * 1e10;
}

double interaction_constant_rad_per_VA(double energy_keV) {
  // sigma = 2 pi m e lambda / h^2 with the relativistic mass m = gamma m0 (Kirkland eq. 5.6).
  const double mc2_eV = kElectronMass_kg * kSpeedOfLight_m_per_s * kSpeedOfLight_m_per_s /
                        kElementaryCharge_C;
  const double gamma = 1.0 + energy_keV * 1e3 / mc2_eV;
  const double lambda_m = wavelength_A(energy_keV) * 1e-10;
  const double sigma_per_Vm = 2.0 * std::numbers::pi * gamma * kElectronMass_kg *
                              kElementaryCharge_C * lambda_m / (kPlanck_Js * kPlanck_Js);
  return sigma_per_Vm * 1e-10;
}

double real_space_pixel_A(const ProbeConfig& config) {
  return wavelength_A(config.energy_keV) / (config.window_px * config.detector_pixel_mrad * 1e-3);
}

double aperture(double alpha_mrad, const ProbeConfig& config) {
  const double edge = config.edge_mrad();
  if (edge <= 0) return alpha_mrad <= config.semiangle_mrad ? 1.0 : 0.0;
  const double value = 0.5 + (config.semiangle_mrad - alpha_mrad) / edge;
  return std::clamp(value, 0.0, 1.0);
}

ComplexImage make_probe_fourier(const ProbeConfig& config) {
  check(config);
  const int n = config.window_px;
  const double lambda = wavelength_A(config.energy_keV);
  const double dk = 1.0 / (n * real_space_pixel_A(config));  // 1/A per detector pixel
  const double cs_A = config.Cs_mm * 1e7;
  const double astigmatism_angle = config.astigmatism_angle_deg * std::numbers::pi / 180.0;
  ComplexImage probe(n, n);
  double power = 0.0;
  for (int i = 0; i < n; ++i) {
    const int fy = i < n / 2 ? i : i - n;
    for (int j = 0; j < n; ++j) {
      const int fx = j < n / 2 ? j : j - n;
      // Angles from the beam's axis, which a tilt moves off the zero frequency.
      const double ty = fy - config.tilt_y_px, tx = fx - config.tilt_x_px;
      const double k2 = (ty * ty + tx * tx) * dk * dk;
      const double a = aperture(lambda * std::sqrt(k2) * 1e3, config);
      if (a == 0.0) continue;
      double chi =
          std::numbers::pi * lambda * k2 * (0.5 * cs_A * lambda * lambda * k2 - config.defocus_A);
      if (config.astigmatism_A != 0.0)
        chi += std::numbers::pi * lambda * k2 * config.astigmatism_A *
               std::cos(2.0 * (std::atan2(ty, tx) - astigmatism_angle));
      // (-1)^(fy+fx) moves the probe from pixel (0, 0) to the window centre (N/2, N/2).
      const double centring = ((fy + fx) & 1) ? std::numbers::pi : 0.0;
      probe(i, j) = std::complex<float>(std::polar(a, centring - chi));
      power += a * a;
    }
  }
  const float norm = static_cast<float>(1.0 / std::sqrt(power));
  for (auto& v : probe.vector()) v *= norm;
  return probe;
}

ComplexImage make_probe(const ProbeConfig& config) {
  ComplexImage probe = make_probe_fourier(config);
  inverse_fft_unitary(probe);
  return probe;
}

}  // namespace ptypilot
