// Policy: given what the session has seen, propose the next sub-sequence of scan positions.
// A policy is untrusted: whatever it returns goes through Safety before the beam moves.
//
// The context carries what the learned policy of the paper needs (eq. 3-5): the history of
// positions, the current reconstruction (for its encoder), and the policy object itself keeps
// its hidden state for the session between calls.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/image.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/reconstructor.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

// Something a session runs on with but that its operator should know, reported by a policy
// through PolicyContext::warnings: the session logs it, the daemon publishes it as a "warning"
// event and lists it in `ctl status` for as long as the session is the current one.
struct SessionWarning {
  std::string code;         // stable, for scripts: "torchscript_policy_session_differs"
  std::string message;      // one line a person can act on
  std::string detail_json;  // a JSON object with the particulars, e.g. each differing quantity
};

struct PolicyContext {
  ScanRaster raster;
  int sub_sequence = 0;        // index of the sub-sequence to propose (0 = the first)
  int count = 0;               // positions wanted
  int total_positions = 0;     // the session's budget
  std::span<const Vec2> visited_A;            // every approved position so far, in order
  std::span<const float> dark_field_fraction; // per visited position: counts outside the BF disk
  const Potential* potential = nullptr;       // current reconstruction; null before the first
  // The dose the session's frames were taken at, in electrons per A^2 of the full raster (the
  // simulator's and training's unit): the mean electrons per frame, as each frame's header
  // declares it or else its counts summed, over the raster step squared; 0 before any frame.
  double dose_e_per_A2 = 0.0;
  // Where a policy puts its warnings (never null when the session calls propose()).
  std::vector<SessionWarning>* warnings = nullptr;
};

class Policy {
 public:
  virtual ~Policy() = default;
  // A new session: forget the hidden state; `seed` makes stochastic policies reproducible.
  virtual void reset(std::uint64_t seed) = 0;
  // Replaces *positions with the next positions (empty on failure). Ok with fewer than
  // context.count, or none, means there is nothing left worth proposing: the session stops
  // cleanly. Non-ok means the policy itself failed (a model that could not run, a context it
  // cannot work with); the message says why, and the session ends in error with it, since an
  // empty answer would pass a broken policy off as a finished scan. propose() must not throw:
  // it runs in the closed loop, where failures travel as Status (README, "Architecture").
  virtual Status propose(const PolicyContext& context, std::vector<Vec2>* positions) = 0;
  virtual std::string_view name() const = 0;
};

struct PolicyConfig {
  // raster | sparse-grid | jittered-grid | fermat-spiral | sobol | random | heuristic |
  // material-density | lattice-flank | torchscript
  std::string kind = "sparse-grid";
  std::string model_path;            // torchscript only
  // material-density only: how its material weight is scaled, "brightest" or "two-class"
  // (material_density_policy.hpp).
  std::string material_scale = "brightest";
  // "direct": the positions are the policy's proposals. "density": they are read as where to
  // look, and placed by material-density's greedy spacing (density_placement_policy.hpp).
  std::string placement = "direct";
};

// What the session asks of a policy beyond PolicyConfig: the learned policy checks its model
// file against it at start-up; the baselines need none of it.
struct PolicyLimits {
  int sub_sequence_size = 0;  // K: positions per sub-sequence (SessionConfig::sub_sequence_size)
  double fov_height_A = 0.0;  // the scan FOV: ScanRaster::height_A(), width_A()
  double fov_width_A = 0.0;
  // The session's probe, which a learned policy compares with the one it was trained for (with
  // PolicyContext's raster, budget and dose; a mismatch is a warning, not an error:
  // torchscript_policy.hpp says why).
  ProbeConfig probe;
};

}  // namespace ptypilot
