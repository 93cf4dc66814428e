// The ingest pipeline of one session: a thread that receives frames from the FrameSource and
// batches them, and a writer thread that records each batch (durable before anything else sees
// it), then hands the batch on, batch after batch in the order received. The two overlap: while
// one batch is compressed, journalled (fdatasync) and written to HDF5, the next is received. At
// most kQueuedBatches wait between them; a full queue stops the receiving.
//
// Backpressure: at most max_pending frames may be handed on and not yet taken (taken()). Beyond
// that the thread stops receiving, ZMQ's high-water mark fills and the detector's sender blocks;
// no frame is ever dropped. Frames of another session cannot go into this session's file: they
// are counted (frames_unknown_session) and logged.
//
// Junk is bounded: a frame is recorded without limit only the first time one arrives for a
// position the session issued (positions_issued, before the scan generator hears of it). Frames
// of positions never issued, and repeats, are recorded up to max_unissued (they may be evidence
// of a fault); beyond that they are counted (frames_unissued_not_recorded) and dropped, so a
// flood cannot fill the disk. Which sub-sequence and position a frame is for comes from its
// source (a native header, or a DECTRIS frame number placed by the source).
//
// When stopped, it keeps receiving until the stream has been quiet for 100 ms (at most 1 s), so
// that frames already on their way (a late duplicate, the tail of a stopped scan) are recorded
// rather than discarded with the socket.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ptypilot/core/frame_source.hpp"
#include "ptypilot/core/health.hpp"
#include "ptypilot/core/recorder.hpp"

namespace ptypilot {

class IngestPipeline {
 public:
  struct Callbacks {
    // A recorded batch, on the writer thread; hand it on and call taken() once it is consumed.
    std::function<void(std::vector<DetectorFrame>)> on_batch;
    // The session cannot go on: the recorder failed (on the writer thread), or the stream lost
    // frames (on the ingest thread, after every frame received before the fault has been
    // recorded and handed on). Once at most per cause; never both at the same time.
    std::function<void(std::string)> on_fault;
  };

  // `recorder_mutex` serialises the recorder with the session's writes of sub-sequences.
  IngestPipeline(std::shared_ptr<Recorder> recorder, std::mutex& recorder_mutex,
                 HealthCounters& health, std::string session_id, int sync_every,
                 std::size_t max_pending, std::uint64_t max_unissued, Callbacks callbacks);
  ~IngestPipeline() { stop(); }

  // Open the session's source with this handler, then start() the thread on it; the pipeline
  // owns the source from then on.
  StreamFaultHandler make_fault_handler();
  void start(std::unique_ptr<FrameSource> source);
  // Stops receiving (after the drain described above), records what was received, and joins
  // both threads.
  void stop();
  // `n` frames handed on by on_batch were consumed.
  void taken(std::size_t n);
  // The session issues `request` (any thread); call it before the scan generator is told.
  void positions_issued(const ScanRequest& request);

  const FrameSource* source() const { return source_.get(); }

 private:
  // Batches waiting for the writer: two let one be received while one is written, and a third
  // would only hold more frames in memory that are not yet durable.
  static constexpr std::size_t kQueuedBatches = 2;

  void run();
  void write_batches();
  // Hands the batch to the writer (waiting while the queue is full); false once the recorder
  // failed, when nothing more is recorded.
  bool enqueue(std::vector<DetectorFrame>& batch);
  // Waits until the writer has recorded and handed on everything queued; false if it failed.
  bool wait_written();
  bool flush(std::vector<DetectorFrame>& batch);
  // Whether `frame` is recorded: see "Junk is bounded" above.
  bool admit(const DetectorFrame& frame);

  std::shared_ptr<Recorder> recorder_;
  std::mutex& recorder_mutex_;
  HealthCounters& health_;
  std::string session_id_;
  int sync_every_;
  std::size_t max_pending_;
  Callbacks callbacks_;
  std::unique_ptr<FrameSource> source_;
  std::thread thread_;
  std::thread writer_;
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<std::vector<DetectorFrame>> queue_;
  bool writing_ = false;        // the writer holds a batch it took off the queue
  bool receiving_done_ = false;  // run() has returned: the writer ends once the queue is empty
  bool write_failed_ = false;
  std::atomic<bool> running_{false};
  std::mutex pending_mutex_;
  std::condition_variable pending_cv_;
  std::size_t pending_ = 0;
  std::string stream_fault_;  // set by the source's fault handler, on the ingest thread
  std::uint64_t max_unissued_;
  std::uint64_t unissued_recorded_ = 0;  // on the ingest thread
  std::mutex issued_mutex_;
  // Per issued sub-sequence, whether a frame of each position index was recorded.
  std::map<std::uint32_t, std::vector<char>> issued_;
};

}  // namespace ptypilot
