// What the policy tests share: most calls are expected to succeed, and a failure should show
// the policy's own reason rather than an empty answer.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <vector>

#include "ptypilot/core/policy.hpp"

namespace ptypilot::test {

// The positions of a call that must succeed.
inline std::vector<Vec2> propose_ok(Policy& policy, const PolicyContext& context) {
  std::vector<Vec2> positions;
  const Status s = policy.propose(context, &positions);
  INFO(s.message());
  REQUIRE(s.ok());
  return positions;
}

// A whole session as the loop runs it: every answer comes back as visited, each call sees
// `potential` (null: none). Returns the answers, one per sub-sequence.
inline std::vector<std::vector<Vec2>> run_session(Policy& policy, const ScanRaster& raster,
                                                  int budget, int sub_sequence,
                                                  const Potential* potential = nullptr) {
  std::vector<std::vector<Vec2>> answers;
  std::vector<Vec2> visited;
  for (int t = 0; static_cast<int>(visited.size()) < budget; ++t) {
    PolicyContext context;
    context.raster = raster;
    context.sub_sequence = t;
    context.count = std::min(sub_sequence, budget - static_cast<int>(visited.size()));
    context.total_positions = budget;
    context.visited_A = visited;
    context.potential = potential;
    answers.push_back(propose_ok(policy, context));
    REQUIRE(!answers.back().empty());
    visited.insert(visited.end(), answers.back().begin(), answers.back().end());
  }
  return answers;
}

inline std::vector<Vec2> flatten(const std::vector<std::vector<Vec2>>& answers) {
  std::vector<Vec2> all;
  for (const auto& a : answers) all.insert(all.end(), a.begin(), a.end());
  return all;
}

}  // namespace ptypilot::test
