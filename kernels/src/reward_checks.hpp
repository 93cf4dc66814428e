// The input checks and FOV geometry of the exact Voronoi reward (reward.cpp), shared with the
// Jump Flooding version (cuda/jfa_seeding.cpp, cuda_reward.cpp) so that both reject the same
// inputs with the same messages and label the same pixels.
#pragma once

#include <span>
#include <string>

#include "ptypilot/reward.hpp"

namespace ptypilot::reward_detail {

std::string format_position(std::size_t index, Vec2 p);

// Throws std::invalid_argument, prefixed with `who`, for a bad grid, no positions or a
// non-finite one.
void check_inputs(const char* who, const ObjectGrid& grid, std::span<const Vec2> positions_A);
void check_phase_shape(const char* who, const RealImage& phase_rad, const ObjectGrid& grid);
// The reward's own condition: every position inside the FOV, within kFovTolerance_A.
void check_positions_in_fov(const char* who, const ObjectGrid& grid,
                            std::span<const Vec2> positions_A);
// All three, in the order every reward checks them.
void check_reward_inputs(const char* who, const RealImage& phase_rad, const ObjectGrid& grid,
                         std::span<const Vec2> positions_A);

// The half-open range of pixel indices whose coordinate index * pixel_A lies in the FOV
// [origin, origin + extent], within kFovTolerance_A (reward.hpp). The coordinate grows with the
// index, so the range is contiguous.
struct PixelRange {
  int begin = 0;
  int end = 0;
};
PixelRange fov_pixel_range(int count, double pixel_A, double origin_A, double extent_A);

}  // namespace ptypilot::reward_detail
