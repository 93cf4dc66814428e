#include "ingest_pipeline.hpp"

#include <algorithm>
#include <chrono>

#include "ptypilot/wire/counters.hpp"

namespace ptypilot {

using Clock = std::chrono::steady_clock;

IngestPipeline::IngestPipeline(std::shared_ptr<Recorder> recorder, std::mutex& recorder_mutex,
                               HealthCounters& health, std::string session_id, int sync_every,
                               std::size_t max_pending, std::uint64_t max_unissued,
                               Callbacks callbacks)
    : recorder_(std::move(recorder)),
      recorder_mutex_(recorder_mutex),
      health_(health),
      session_id_(std::move(session_id)),
      sync_every_(sync_every),
      max_pending_(max_pending),
      callbacks_(std::move(callbacks)),
      max_unissued_(max_unissued) {}

StreamFaultHandler IngestPipeline::make_fault_handler() {
  return [this](std::string reason) {
    if (stream_fault_.empty()) stream_fault_ = std::move(reason);
  };
}

void IngestPipeline::start(std::unique_ptr<FrameSource> source) {
  source_ = std::move(source);
  running_ = true;
  writer_ = std::thread([this] { write_batches(); });
  thread_ = std::thread([this] {
    run();
    {
      std::lock_guard lock(queue_mutex_);
      receiving_done_ = true;
    }
    queue_cv_.notify_all();
  });
}

void IngestPipeline::stop() {
  running_ = false;
  pending_cv_.notify_all();
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (writer_.joinable()) writer_.join();
}

void IngestPipeline::write_batches() {
  while (true) {
    std::vector<DetectorFrame> batch;
    {
      std::unique_lock lock(queue_mutex_);
      queue_cv_.wait(lock, [&] { return !queue_.empty() || receiving_done_; });
      if (queue_.empty()) return;  // receiving is over and everything is written
      batch = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
    }
    queue_cv_.notify_all();  // room in the queue
    const bool written = flush(batch);
    {
      std::lock_guard lock(queue_mutex_);
      writing_ = false;
      if (!written) {
        // Nothing after a recorder failure is recorded (the recorder refuses it anyway); the
        // queued frames were never acknowledged, like those still in the socket.
        write_failed_ = true;
        queue_.clear();
      }
    }
    queue_cv_.notify_all();
    if (!written) return;
  }
}

bool IngestPipeline::enqueue(std::vector<DetectorFrame>& batch) {
  if (batch.empty()) {
    std::lock_guard lock(queue_mutex_);
    return !write_failed_;
  }
  {
    std::unique_lock lock(queue_mutex_);
    queue_cv_.wait(lock, [&] { return queue_.size() < kQueuedBatches || write_failed_; });
    if (write_failed_) return false;
    queue_.push_back(std::move(batch));
  }
  batch = {};
  queue_cv_.notify_all();
  return true;
}

bool IngestPipeline::wait_written() {
  std::unique_lock lock(queue_mutex_);
  queue_cv_.wait(lock, [&] { return (queue_.empty() && !writing_) || write_failed_; });
  return !write_failed_;
}

void IngestPipeline::taken(std::size_t n) {
  {
    std::lock_guard lock(pending_mutex_);
    pending_ -= n;
  }
  pending_cv_.notify_all();
}

void IngestPipeline::positions_issued(const ScanRequest& request) {
  std::lock_guard lock(issued_mutex_);
  auto& recorded = issued_[request.sub_sequence];
  recorded.resize(std::max(recorded.size(), request.positions_A.size()), 0);
}

bool IngestPipeline::admit(const DetectorFrame& frame) {
  {
    std::lock_guard lock(issued_mutex_);
    const auto it = issued_.find(frame.sub_sequence);
    if (it != issued_.end() && frame.position_index < it->second.size() &&
        !it->second[frame.position_index]) {
      it->second[frame.position_index] = 1;
      return true;
    }
  }
  if (unissued_recorded_ < max_unissued_) {
    ++unissued_recorded_;
    return true;
  }
  health_.reject(counters::kFramesUnissuedNotRecorded,
                 "frame " + std::to_string(frame.frame_index) + " (sub-sequence " +
                     std::to_string(frame.sub_sequence) + ", position index " +
                     std::to_string(frame.position_index) +
                     ") is for no issued position, and recorder.max_unissued_frames (" +
                     std::to_string(max_unissued_) + ") such frames are recorded already");
  return false;
}

void IngestPipeline::run() {
  using std::chrono::milliseconds;
  std::vector<DetectorFrame> batch;
  bool draining = false;
  bool faulted = false;
  Clock::time_point drain_deadline;
  while (true) {
    if (!draining && !running_.load()) {
      draining = true;
      drain_deadline = Clock::now() + std::chrono::seconds(1);
    }
    DetectorFrame frame;
    const milliseconds timeout =
        draining ? milliseconds(100) : (batch.empty() ? milliseconds(50) : milliseconds(1));
    Status s = draining && Clock::now() > drain_deadline
                   ? Status(StatusCode::kUnavailable, "drain time is over")
                   : source_->receive(&frame, timeout);
    if (!stream_fault_.empty() && !faulted) {
      // Frames were lost: record what did arrive, then end the session with the reason.
      faulted = true;
      if (s.ok()) batch.push_back(std::move(frame));
      if (!enqueue(batch) || !wait_written()) return;
      health_.increment(counters::kSessionStreamFaults);
      callbacks_.on_fault("detector stream: " + stream_fault_ +
                          "; the frames received so far are recorded");
      continue;
    }
    if (s.ok() && frame.session_id != session_id_) {
      // Not this session's data (a detector still streaming an old series, or a second
      // client): it cannot go into this session's file, so it is counted and logged instead.
      health_.reject(counters::kFramesUnknownSession, "frame for session '" + frame.session_id +
                                                          "' while '" + session_id_ +
                                                          "' runs; not recorded");
      continue;
    }
    if (s.ok() && !admit(frame)) continue;
    if (s.ok()) {
      batch.push_back(std::move(frame));
      if (batch.size() < static_cast<std::size_t>(sync_every_)) continue;
    } else if (s.code() != StatusCode::kUnavailable) {
      continue;  // rejected and counted by the source
    }
    if (!enqueue(batch)) return;
    if (draining && s.code() == StatusCode::kUnavailable) return;
  }
}

bool IngestPipeline::flush(std::vector<DetectorFrame>& batch) {
  if (batch.empty()) return true;
  {
    std::unique_lock lock(pending_mutex_);
    pending_cv_.wait(lock, [&] {
      return pending_ == 0 || pending_ + batch.size() <= max_pending_ || !running_;
    });
    pending_ += batch.size();
  }
  Status written;
  {
    std::lock_guard lock(recorder_mutex_);
    written = recorder_->write_frames(batch);
  }
  if (!written.ok()) {
    taken(batch.size());
    running_ = false;  // the ingest thread stops receiving
    callbacks_.on_fault(written.message());  // the recorder's messages name it already
    return false;
  }
  // The detector's own chunks are the recorder's alone; the frames live on without them.
  for (DetectorFrame& frame : batch) frame.bitshuffle_lz4 = {};
  callbacks_.on_batch(std::move(batch));
  batch = {};
  return true;
}

}  // namespace ptypilot
