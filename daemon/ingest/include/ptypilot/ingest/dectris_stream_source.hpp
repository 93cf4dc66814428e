// DectrisStreamSource: frames from a DECTRIS detector's SIMPLON stream, v1 (multipart JSON +
// binary) or v2 (CBOR), on a ZMQ PULL socket; the formats are in dectris_stream.hpp, their
// parsers in dectris_parse.hpp.
//
// A DECTRIS frame carries its series id and frame number only. Its place in the scan comes from
// the positions the session issues (positions_issued, kept in a ScanFrameMap): frame number
// first_frame_id + k of the session's series is the session's frame_index k.
//
// The series: the first series header (dheader-1.0 / start) that arrives after this source is
// made (at session start, i.e. at arm) defines the session's series. Images before it, and every
// message of another series, are a detector still streaming an earlier acquisition: they are
// discarded and counted (dectris_stale_series), never recorded under this session.
//
// Frame numbers must arrive without gaps. A frame whose number skips ahead is still delivered
// (its own number places it, so nothing shifts), but the skipped numbers are lost frames: they
// are counted (dectris_frame_gaps, dectris_frames_missing) and the StreamFaultHandler is told,
// which ends the session in error. A frame number that no sub-sequence issued is counted
// (dectris_frame_not_issued) and discarded. Late or repeated numbers are delivered; the
// assembler counts duplicates.
//
// Every other bad message is counted under the name that dectris_parse.hpp gives its kind (the
// names are in ptypilot/wire/counters.hpp), and logged once per kind; the socket stays in sync
// because each message is drained whole. Nothing here throws after construction. Backpressure is
// the native source's: see zmq_frame_source.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "ptypilot/wire/dectris_parse.hpp"
#include "ptypilot/core/frame_source.hpp"
#include "ptypilot/ingest/connection_keeper.hpp"
#include "ptypilot/ingest/scan_frame_map.hpp"

namespace ptypilot {

struct DectrisStreamSourceConfig {
  dectris::Protocol protocol = dectris::Protocol::kV1;
  std::string endpoint;  // the detector's PUSH endpoint, e.g. tcp://dcu:9999 (v1), :31001 (v2)
  bool bind = false;
  int receive_hwm = 1000;
  int expected_rows = 0;  // 0: any
  int expected_cols = 0;
  std::optional<PixelType> expected_dtype;
  // The detector's number for the first frame of a series.
  std::uint64_t first_frame_id = 0;
};

class DectrisStreamSource final : public FrameSource {
 public:
  // Creates the PULL socket and connects (or binds) it, for the frames of session `session_id`.
  // Throws std::runtime_error with what to fix when the endpoint or a setting is unusable.
  // `on_fault` (may be empty) hears of lost frames. `ctx` must outlive this.
  DectrisStreamSource(zmq::context_t& ctx, const DectrisStreamSourceConfig& config,
                      std::string session_id, StreamFaultHandler on_fault = {});

  // One thread receives. Messages that are not frames (series header and end) are consumed
  // within `timeout`; kUnavailable when no frame arrived in it.
  Status receive(DetectorFrame* frame, std::chrono::milliseconds timeout) override;
  const HealthCounters& health() const override { return health_; }
  Status positions_issued(const ScanRequest& request) override;

  std::string bound_endpoint() const;
  std::optional<std::uint64_t> series() const { return series_; }

 private:
  // Parts beyond this many are drained and dropped; no DECTRIS message has more than 9.
  static constexpr std::size_t kMaxParts = 16;

  Status reject(std::string_view counter, std::string message);
  // The message in parts_. v1: one that is short of parts (dectris::v1_message_parts), and the
  // messages after it that do not start a message, go to pending_ (kUnavailable).
  Status handle(DetectorFrame* frame);
  // v1: parses `parts` as one message and handles it.
  Status handle_v1(std::span<const std::span<const std::byte>> parts, DetectorFrame* frame);
  Status dispatch(DetectorFrame* frame);  // message_, as parsed
  // v1: the number of parts of a whole message at the front of pending_, 0 while it waits for
  // more. An incomplete message followed by the start of another is rejected and dropped.
  std::size_t complete_pending();
  void pop_pending(std::size_t count);
  Status handle_image(const dectris::Image& image, DetectorFrame* frame);

  DectrisStreamSourceConfig config_;
  ScanFrameMap map_;
  StreamFaultHandler on_fault_;
  zmq::socket_t socket_;
  ConnectionKeeper keeper_;
  HealthCounters health_;
  std::vector<zmq::message_t> parts_;  // reused across messages
  std::size_t part_count_ = 0;         // of the last message, dropped parts included
  dectris::Message message_;
  // v1: parts of messages that came split over several ZMQ messages (a series header sent as one
  // message per part; DectrisSim's groups of four parts), oldest first; the front starts one.
  struct PendingPart {
    zmq::message_t part;
    bool starts = false;  // dectris::v1_starts_message
  };
  std::deque<PendingPart> pending_;
  std::uint64_t pending_received_ns_ = 0;  // when the last part in pending_ arrived
  std::optional<std::uint64_t> series_;
  // The series header's pixel mask as weights (0: bad), when it marked a pixel; every frame of
  // the series carries it (DetectorFrame::detector_mask).
  std::shared_ptr<const std::vector<float>> detector_mask_;
  std::uint64_t next_frame_ = 0;  // the session frame index expected next
  bool fault_reported_ = false;
};

}  // namespace ptypilot
