#include "ptypilot/core/assembler.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <utility>

#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

std::string describe(const DetectorFrame& frame) {
  char text[160];
  std::snprintf(text, sizeof text, "frame %llu (sub-sequence %u, position index %u)",
                static_cast<unsigned long long>(frame.frame_index), frame.sub_sequence,
                frame.position_index);
  return text;
}

}  // namespace

const char* to_string(FrameVerdict verdict) {
  switch (verdict) {
    case FrameVerdict::kAccepted:
      return "accepted";
    case FrameVerdict::kCompleted:
      return "completed";
    case FrameVerdict::kDuplicate:
      return "duplicate";
    case FrameVerdict::kUnknownSession:
      return "unknown session";
    case FrameVerdict::kUnknownSubSequence:
      return "unknown sub-sequence";
    case FrameVerdict::kUnknownPosition:
      return "unknown position";
    case FrameVerdict::kPositionMismatch:
      return "position mismatch";
  }
  return "?";
}

Assembler::Assembler(AssemblerConfig config) : config_(config) {
  if (!std::isfinite(config_.position_tolerance_A) || config_.position_tolerance_A < 0)
    throw std::invalid_argument("assembler: position_tolerance_A must be finite and >= 0");
}

Status Assembler::expect(const std::string& session, std::uint32_t sub_sequence,
                         std::uint64_t first_frame_index, std::span<const Vec2> positions) {
  if (positions.empty())
    return invalid_argument("assembler: sub-sequence " + std::to_string(sub_sequence) +
                            " was issued with no positions");
  if (session != session_) {
    std::size_t abandoned = 0;
    for (const auto& [index, p] : pending_)
      if (p.received_count < p.positions.size()) ++abandoned;
    if (abandoned > 0) {
      // Their frames are on disk already (the caller records every frame); only the grouping
      // is dropped, and a person should know that the old session ended incomplete.
      health_.increment(counters::kSubSequencesAbandoned, abandoned);
      log::warn("assembler_session_changed",
                {{"old_session", session_}, {"new_session", session}, {"incomplete", abandoned}});
    }
    pending_.clear();
    session_ = session;
  }
  if (pending_.count(sub_sequence) != 0)
    return invalid_argument("assembler: sub-sequence " + std::to_string(sub_sequence) +
                            " of session " + session + " was already issued");
  Pending p;
  p.first_frame_index = first_frame_index;
  p.positions.assign(positions.begin(), positions.end());
  p.frames.resize(positions.size());
  p.received.assign(positions.size(), 0);
  pending_.emplace(sub_sequence, std::move(p));
  return Status::Ok();
}

FrameVerdict Assembler::add(DetectorFrame frame) {
  if (session_.empty() || frame.session_id != session_) {
    health_.reject(counters::kFramesUnknownSession,
                   describe(frame) + " of session \"" + frame.session_id +
                       "\" while the current session is \"" + session_ + "\"");
    return FrameVerdict::kUnknownSession;
  }
  const auto it = pending_.find(frame.sub_sequence);
  if (it == pending_.end()) {
    health_.reject(counters::kFramesUnknownSubSequence, describe(frame) + ": never issued");
    return FrameVerdict::kUnknownSubSequence;
  }
  Pending& p = it->second;
  const std::size_t index = frame.position_index;
  if (index >= p.positions.size()) {
    health_.reject(counters::kFramesUnknownPosition, describe(frame) + ": the sub-sequence has " +
                                                         std::to_string(p.positions.size()) +
                                                         " positions");
    return FrameVerdict::kUnknownPosition;
  }
  // Before the position check: a repeat is a repeat even if its header were off.
  if (p.received[index]) {
    health_.reject(counters::kFramesDuplicate, describe(frame) + " arrived twice");
    return FrameVerdict::kDuplicate;
  }
  const Vec2 issued = p.positions[index];
  const double off = std::hypot(frame.position_A.y - issued.y, frame.position_A.x - issued.x);
  // Written so that a NaN header position is a mismatch too.
  if (!(off <= config_.position_tolerance_A)) {
    char text[200];
    std::snprintf(text, sizeof text, ": header (%.4f, %.4f) A, issued (%.4f, %.4f) A",
                  frame.position_A.y, frame.position_A.x, issued.y, issued.x);
    health_.reject(counters::kFramesPositionMismatch, describe(frame) + text);
    return FrameVerdict::kPositionMismatch;
  }
  if (frame.frame_index != p.first_frame_index + index)
    health_.reject(counters::kFramesIndexUnexpected,
                   describe(frame) + ": expected frame index " +
                       std::to_string(p.first_frame_index + index) + "; placed by position index");
  if (static_cast<std::int64_t>(index) < p.highest_index)
    health_.increment(counters::kFramesOutOfOrder);
  p.highest_index = std::max(p.highest_index, static_cast<std::int64_t>(index));
  p.frames[index] = std::move(frame);
  p.received[index] = 1;
  ++p.received_count;
  health_.increment(counters::kFramesAccepted);
  if (p.received_count == p.positions.size()) {
    health_.increment(counters::kSubSequencesCompleted);
    return FrameVerdict::kCompleted;
  }
  return FrameVerdict::kAccepted;
}

bool Assembler::complete(std::uint32_t sub_sequence) const {
  const auto it = pending_.find(sub_sequence);
  return it != pending_.end() && it->second.received_count == it->second.positions.size();
}

std::vector<DetectorFrame> Assembler::take_completed(std::uint32_t sub_sequence) {
  const auto it = pending_.find(sub_sequence);
  if (it == pending_.end() || it->second.taken || !complete(sub_sequence)) return {};
  Pending& p = it->second;
  p.taken = true;
  // Slots are indexed by position_index, so the vector is already in position order.
  std::vector<DetectorFrame> frames = std::move(p.frames);
  p.frames.clear();
  return frames;
}

std::vector<std::uint32_t> Assembler::missing(std::uint32_t sub_sequence) const {
  std::vector<std::uint32_t> out;
  const auto it = pending_.find(sub_sequence);
  if (it == pending_.end()) return out;
  const Pending& p = it->second;
  for (std::size_t k = 0; k < p.received.size(); ++k)
    if (!p.received[k]) out.push_back(static_cast<std::uint32_t>(k));
  return out;
}

}  // namespace ptypilot
