// The learned policy of the paper, run from an exported TorchScript file with LibTorch (no
// Python). The file's contract (methods, tensor shapes, schema() keys) is
// models/POLICY_CONTRACT.md.
//
// LibTorch is not linked into ptypilot or its tests: loading it costs every process about 0.5 s
// and 160 MB at start, and only a session with policy.kind "torchscript" needs it. The policy
// lives in a plugin, build/lib/libptypilot_torch_policy.so
// (daemon/policy/torch/torchscript_policy.cpp, the only translation unit that includes Torch
// headers), which make_policy() dlopens the first
// time it makes a "torchscript" policy (policy_factory.cpp says where it looks). This header
// declares what both sides share: the interface TorchScriptPolicy, and the plugin's one entry
// point, ptypilot_make_torchscript_policy.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/core/policy.hpp"

namespace ptypilot {

// Loads, checks and runs the exported policy. make_policy({"torchscript", path}, limits) makes
// one; dynamic_cast its result to TorchScriptPolicy for schema_json() and hidden_norm().
//
// Start-up (make_policy) throws, converting LibTorch's c10::Error: std::invalid_argument when
// the file is missing, not a TorchScript module, lacks a contract method, or its schema() does
// not match the session (schema_version 1, kind "ptypilot-gru-policy" or
// "ptypilot-flank-scorer", sub_sequence_size == K, FOV within 1e-6 A); std::runtime_error when initial_hidden() fails. Every message names the
// file: "policy model m.pt expects sub-sequences of 50 positions, the session asks for 100".
//
// What the model was trained for (its trained_for.json record, models/POLICY_CONTRACT.md) is
// compared with the session, and each difference goes into context.warnings as one
// "torchscript_policy_session_differs" warning, trained against session: the probe
// (PolicyLimits::probe), raster, K and budget at the session's first proposal, the dose
// (context.dose_e_per_A2) at the first proposal after frames came in. A model without the record
// gives one "torchscript_policy_not_checkable" warning per session instead. These warn rather
// than refuse: the module resizes any crop to its input and answers in fractions of the FOV, so
// it runs and stays in the FOV whatever the window, pixel size, raster, budget or dose; only the
// quality of its positions is unknown (and eval runs models at other doses on purpose). K and
// the FOV, which the network cannot take otherwise, are refused at start-up (above).
//
// propose() never throws:
//   - sub-sequence 0, no potential yet, or nothing visited yet: SparseGridPolicy's answer and
//     Status (the paper starts every session from the sparse grid's first sub-sequence), or
//     SurveyPolicy's where the schema says "first_sub_sequence": "survey" (a model trained to
//     begin with a survey of the whole FOV, as material-density does), or LatticeFlankPolicy's
//     (its pattern's central patch) where it says "centre-out" (a model taught by
//     lattice-flank); any other value is refused at start-up;
//   - otherwise forward(previous_positions, potential, hidden) with
//       previous_positions: the K positions this policy proposed last, clamped and snapped
//                           to the raster, repeats kept (the last K visited ones when another
//                           policy started the session; the earliest repeated in front when
//                           there are fewer than K), (y / fov_height_A, x / fov_width_A);
//       potential:          context.potential->phase_rad cropped to the potential's own FOV:
//                           rows round(fov_origin_A.y / pixel_A) for round(fov_height_A /
//                           pixel_A) + 1 rows, columns likewise, clipped to the image;
//     the new hidden state is kept, the K outputs are clamped to [0, 1], scaled by the session's
//     FOV, and the first min(K, count) returned (Safety clamps, snaps and dedupes them);
//   - any LibTorch error (or an empty crop): kInternal, "model m.pt failed on sub-sequence 3:
//     <LibTorch's message, without its backtrace>", and no positions; the session ends in
//     error with it (Session::issue_next). The hidden state is left as it was.
//
// reset(seed): hidden = initial_hidden(); the seed only reaches the sparse-grid start.
//
// A file whose schema() says "kind": "ptypilot-flank-scorer" is not a GRU but the chooser of
// lattice-flank's moves (models/POLICY_CONTRACT.md, "The flank scorer"): make_policy returns a
// TorchScriptPolicy that is LatticeFlankPolicy with the file's forward(features) -> scores as its
// FlankMoveScorer, with the same checks against trained_for.json; hidden_norm() is 0 and
// last_output() empty, since it keeps no state between calls. A failing forward() is the
// kInternal Status above.
//
// Inference runs under c10::InferenceMode. It does not call at::set_num_threads: that sets the
// calling thread's OpenMP default, which CpuReconstructor reads (threads = 0) when it is built on
// the same thread. The tiny ops of a policy stay below ATen's parallel grain size anyway.
//
// Every member is inline or pure, so the class has no key function: its vtable and type_info are
// emitted wherever they are used, and dynamic_cast works on both sides of the plugin boundary
// (the visibility attribute keeps its type_info exported from the plugin, which is built with
// hidden visibility).
class [[gnu::visibility("default")]] TorchScriptPolicy : public Policy {
 public:
  std::string_view name() const override { return "torchscript"; }

  // The file's schema() as it returned it (JSON), for the session record.
  virtual const std::string& schema_json() const = 0;
  // The sum of |hidden| over the state: for tests and the operator, to see that it moves.
  virtual double hidden_norm() const = 0;
  // forward()'s positions at the last call that ran the model, as it returned them (normalised
  // to the FOV, before clamping and snapping); empty after reset() and before the first call.
  // For the parity test against Python (tests/fixtures/policy_parity.py) and for diagnosis.
  virtual std::span<const Vec2> last_output() const = 0;
};

}  // namespace ptypilot

// The plugin's entry point, looked up with dlsym by this name. It returns a new policy that the
// caller owns (delete it, or put it in a std::unique_ptr<Policy>: Policy's destructor is
// virtual), never null. It throws what the policy's start-up throws (above): a C++ exception
// crosses the dlopen boundary like any call into a shared library, since the plugin and the
// program share one libstdc++ and one set of type_infos for the standard exceptions. Both must
// be built from the same sources with the same compiler: the plugin uses the program's Policy,
// PolicyLimits, Potential and log::write as they are in the headers (the build makes both).
extern "C" [[gnu::visibility("default")]] ptypilot::Policy* ptypilot_make_torchscript_policy(
    const char* model_path, const ptypilot::PolicyLimits* limits);

namespace ptypilot {
using MakeTorchScriptPolicyFn = decltype(&ptypilot_make_torchscript_policy);
inline constexpr const char* kMakeTorchScriptPolicySymbol = "ptypilot_make_torchscript_policy";
inline constexpr const char* kTorchPolicyLibraryName = "libptypilot_torch_policy.so";
inline constexpr const char* kTorchPolicyLibraryEnv = "PTYPILOT_TORCH_POLICY_LIB";
}  // namespace ptypilot
