// What the policy tests share: most calls are expected to succeed, and a failure should show
// the policy's own reason rather than an empty answer.
#pragma once

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

}  // namespace ptypilot::test
