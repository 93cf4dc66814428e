// The learned policy of the paper, run from an exported TorchScript file with LibTorch (no
// Python). The file's contract (methods, tensor shapes, schema() keys) is
// models/POLICY_CONTRACT.md.
//
// This header does not include any Torch header: the module lives behind a pointer to an
// implementation in torchscript_policy.cpp, the only translation unit that includes LibTorch, so
// that the rest of the daemon and the tests compile as fast as before.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/daemon/baseline_policies.hpp"
#include "ptypilot/daemon/policy.hpp"

namespace ptypilot {

// Loads, checks and runs the exported policy.
//
// Start-up (the constructor) throws, converting LibTorch's c10::Error: std::invalid_argument when
// the file is missing, not a TorchScript module, lacks a contract method, or its schema() does
// not match the session (schema_version 1, kind "ptypilot-gru-policy", sub_sequence_size == K,
// FOV within 1e-6 A); std::runtime_error when initial_hidden() fails. Every message names the
// file: "policy model m.pt expects sub-sequences of 50 positions, the session asks for 100".
//
// propose() never throws:
//   - sub-sequence 0, no potential yet, or nothing visited yet: SparseGridPolicy's answer (the
//     paper starts every session from the sparse grid's first sub-sequence);
//   - otherwise forward(previous_positions, potential, hidden) with
//       previous_positions: the last K positions of context.visited_A, (y / fov_height_A,
//                           x / fov_width_A); with fewer than K visited, the earliest is
//                           repeated in front (only possible when Safety dropped positions);
//       potential:          context.potential->phase_rad cropped to the potential's own FOV:
//                           rows round(fov_origin_A.y / pixel_A) for round(fov_height_A /
//                           pixel_A) + 1 rows, columns likewise, clipped to the image;
//     the new hidden state is kept, the K outputs are clamped to [0, 1], scaled by the session's
//     FOV, and the first min(K, count) returned (Safety clamps, snaps and dedupes them);
//   - any LibTorch error (or an empty crop): logged ("torchscript_policy_failed") and an empty
//     answer, on which the session ends (Session::issue_next, "policy_gave_no_usable_positions").
//     The hidden state is left as it was.
//
// Inference runs under c10::InferenceMode. It does not call at::set_num_threads: that sets the
// calling thread's OpenMP default, which CpuReconstructor reads (threads = 0) when it is built on
// the same thread. The tiny ops of a policy stay below ATen's parallel grain size anyway.
class TorchScriptPolicy final : public Policy {
 public:
  TorchScriptPolicy(const std::filesystem::path& model_path, const PolicyLimits& limits);
  ~TorchScriptPolicy() override;
  TorchScriptPolicy(TorchScriptPolicy&&) noexcept;
  TorchScriptPolicy& operator=(TorchScriptPolicy&&) noexcept;

  void reset(std::uint64_t seed) override;  // hidden = initial_hidden(); the seed is unused
  std::vector<Vec2> propose(const PolicyContext& context) override;
  std::string_view name() const override { return "torchscript"; }

  // The file's schema() as it returned it (JSON), for the session record.
  const std::string& schema_json() const;
  // The sum of |hidden| over the state: for tests and the operator, to see that it moves.
  double hidden_norm() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  SparseGridPolicy first_;  // sub-sequence 0 and the fallback without a potential
};

}  // namespace ptypilot
