// Experimental effects of the simulated experiment, each off by default: what a real microscope
// and detector add to the ideal single-slice phase object with a perfectly known probe.
//
// The reconstructor never sees these settings. It assumes the preset's probe, the nominal scan
// positions and a specimen with static atoms; the frames are made with what the effects say
// really happened. The scored truth stays the static potential of the preset's specimen
// (SimulatedSpecimen::phase_rad): thermal motion blurs what a microscope measures, not what the
// specimen is, and a reconstruction is judged against the specimen.
//
// Order of the physics for one frame (ExperimentalSimulator::intensities, then FrameSimulator):
//   1. the beam lands at nominal + jitter + n * drift (n: the frame's index since the simulator
//      was made, i.e. since the detector was armed);
//   2. the expected pattern is the incoherent mean over the frozen-phonon configurations and
//      the source-size quadrature (partial spatial coherence) of |F[psi_true(r - R) t(r)]|^2,
//      with psi_true the preset's probe plus the residual aberrations;
//   3. electrons are counted (Poisson, FrameSimulator), then the detector spreads each one's
//      signal (point-spread) and the read-out adds Gaussian read noise (detector_response).
//
// Units are in the names (_A: Angstrom, _mm, _deg, _px: detector pixels, _e: electrons).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/forward_model.hpp"
#include "ptypilot/image.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/specimen.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot::sim {

struct SimulatedSpecimen;

struct ExperimentalEffects {
  // Partial spatial coherence: the demagnified source is a Gaussian of this FWHM in the
  // specimen plane (sigma = FWHM / 2.3548). Intensities are averaged over probe-position
  // offsets of a source_order x source_order Gauss-Hermite product rule.
  double source_fwhm_A = 0.0;
  int source_order = 3;  // nodes per axis; exact for polynomials of degree 2 * order - 1

  // Residual aberrations of the probe that makes the frames, added to the preset's, which the
  // reconstructor assumes (optics.hpp conventions: positive defocus is underfocus).
  double defocus_error_A = 0.0;
  double cs_error_mm = 0.0;  // C3
  double astigmatism_A = 0.0;  // two-fold, A1 = C1,2 (optics.hpp)
  double astigmatism_angle_deg = 0.0;

  // Scan positions: Gaussian jitter, independent per frame and per axis (rms of each of y and
  // x), and a linear drift per frame since the detector was armed.
  double jitter_rms_A = 0.0;
  double drift_y_A_per_frame = 0.0;
  double drift_x_A_per_frame = 0.0;

  // Detector: Gaussian point-spread of the signal of each counted electron, and Gaussian read
  // noise in electrons per pixel.
  double psf_sigma_px = 0.0;
  double read_noise_e = 0.0;

  // Thermal diffuse scattering by frozen phonons: phonon_configs configurations of the atoms,
  // each displaced in y and x by a Gaussian of rms phonon_rms_A (per axis), or that of
  // phonon_rms_A_by_Z for the element Z. 0 configurations: static atoms. With a source size,
  // the nodes of the source quadrature take the configurations in turn (ExperimentalSimulator::
  // intensities), so a frame costs max(nodes, configurations) forward models, not their product.
  int phonon_configs = 0;
  double phonon_rms_A = 0.0;
  std::map<int, double> phonon_rms_A_by_Z;
  std::uint64_t phonon_seed = 0;  // the configurations, mixed with the specimen seed

  // Any effect on. False for the defaults: the frames are then today's, bit for bit.
  bool any() const;
  // The rms displacement of element Z.
  double phonon_rms_for(int Z) const;
};

// "key=value,key=value" (the keys are the member names; per-element phonon rms as
// phonon_rms_A_Z42=0.05), as `ptypilot sim-detector --effects` and ptypilot_core.Simulation
// take it. Empty text: no effects. Throws std::invalid_argument naming an unknown key, a
// malformed value or an unphysical setting.
ExperimentalEffects parse_experimental_effects(std::string_view text);
// The text form of the settings that differ from the defaults; parses back to the same values.
std::string to_string(const ExperimentalEffects& effects);
// One line per key: name, unit, what it does (for --help and the README).
std::string experimental_effects_reference();

// The preset's probe with the residual aberrations added.
ProbeConfig true_probe(const ProbeConfig& assumed, const ExperimentalEffects& effects);

// Offsets (Angstrom) and weights (summing to 1) of the source-size quadrature: one zero offset
// of weight 1 when source_fwhm_A is 0.
struct SourceNode {
  Vec2 offset_A;
  double weight = 1.0;
};
std::vector<SourceNode> source_quadrature(double fwhm_A, int order);

// Configuration `index` of the frozen phonons: every atom displaced in y and x. Deterministic in
// (atoms, effects, specimen_seed, index).
std::vector<Atom> displaced_atoms(std::span<const Atom> atoms, const ExperimentalEffects& effects,
                                  std::uint64_t specimen_seed, int index);

// The detector's Gaussian point-spread on one n x n frame, in place. The signal of each pixel
// is spread over a kernel truncated at 4 sigma and renormalised to the pixels that lie on the
// detector, so the frame keeps its total (the pattern's edge holds a negligible share).
void detector_psf(std::span<float> frame, int n, double sigma_px);

// The frames a microscope with these effects records, before counting: the mean intensities of
// step 2 above (each frame sums to 1 up to what leaves the detector), and the detector's
// response after counting. Frame indices (for drift) count every position asked for.
class ExperimentalSimulator {
 public:
  // Throws std::invalid_argument where the true probe is unphysical.
  ExperimentalSimulator(const SimulatedSpecimen& specimen, const ExperimentalEffects& effects,
                        std::uint64_t noise_seed);

  // Where the beam really lands for the next positions.size() frames (advances the frame index
  // and the jitter stream). Positions that would leave the field the forward model accepts are
  // clamped to its edge: the object grid ends there.
  std::vector<Vec2> actual_positions(std::span<const Vec2> nominal_A);

  // Mean patterns at the given actual positions.
  Status intensities(std::span<const Vec2> actual_A, std::span<float> frames);

  // Point-spread, then (noisy frames only) read noise, on counted frames, in place.
  void detector_response(std::span<float> frames, bool noisy);

  const ProbeConfig& probe() const { return probe_; }

 private:
  const ExperimentalEffects effects_;
  ProbeConfig probe_;
  ObjectGrid grid_;
  std::vector<RealImage> phases_;  // one per phonon configuration, or the static phase
  std::vector<SourceNode> source_;
  std::uint64_t frame_index_ = 0;
  std::mt19937_64 jitter_rng_;
  std::mt19937_64 read_rng_;
};

}  // namespace ptypilot::sim
