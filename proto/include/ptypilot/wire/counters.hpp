// Every health counter of the daemon, declared once. A counter is what an operator reads in
// `ptypilot ctl status`: the daemon's parts count rejected input and notable events by name
// (HealthCounters in core/health.hpp), and those names must not change, since operators, their
// scripts and the tests read them. Here, in ptypilot_wire, because the DECTRIS parser (proto/)
// names counters as well as the daemon's parts.
//
// Each counter is a constant below, and the call sites use the constant, never a string literal
// (tests/python/test_counters_registry.py fails on a literal and on a constant nobody uses).
// kCounters says what each means; `ptypilot counters` prints it as the README's table.
// A new counter: a constant named after it (frames_foo_bar: kFramesFooBar), one row in
// kCounters, and the README's table regenerated:
//   PTYPILOT_BIN=build/bin /usr/bin/python3 tests/python/test_cli_reference.py --write
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace ptypilot::counters {

// --- the native ZMQ frame source (daemon/ingest), and the DECTRIS parser for the same faults ---
inline constexpr std::string_view kFramesReceivedOk = "frames_received_ok";
inline constexpr std::string_view kFramesMalformedHeader = "frames_malformed_header";
inline constexpr std::string_view kFramesWrongPartCount = "frames_wrong_part_count";
inline constexpr std::string_view kFramesPayloadSizeMismatch = "frames_payload_size_mismatch";
inline constexpr std::string_view kFramesMissingSession = "frames_missing_session";
inline constexpr std::string_view kFramesBadDtype = "frames_bad_dtype";
inline constexpr std::string_view kFramesDtypeMismatch = "frames_dtype_mismatch";
inline constexpr std::string_view kFramesWrongShape = "frames_wrong_shape";
inline constexpr std::string_view kFramesNonFinite = "frames_non_finite";
inline constexpr std::string_view kFramesNegative = "frames_negative";

// --- the DECTRIS parser (proto/src/dectris_parse*.cpp) ------------------------------------------
inline constexpr std::string_view kDectrisV1MalformedJson = "dectris_v1_malformed_json";
inline constexpr std::string_view kDectrisV1WrongPartCount = "dectris_v1_wrong_part_count";
inline constexpr std::string_view kDectrisV1UnknownHtype = "dectris_v1_unknown_htype";
inline constexpr std::string_view kDectrisV2MalformedCbor = "dectris_v2_malformed_cbor";
inline constexpr std::string_view kDectrisV2WrongType = "dectris_v2_wrong_type";
inline constexpr std::string_view kDectrisV2UnknownType = "dectris_v2_unknown_type";
inline constexpr std::string_view kDectrisUnknownEncoding = "dectris_unknown_encoding";
inline constexpr std::string_view kDectrisSizeMismatch = "dectris_size_mismatch";
inline constexpr std::string_view kDectrisCorruptData = "dectris_corrupt_data";

// --- the DECTRIS stream source (daemon/ingest) ---------------------------------------------------
inline constexpr std::string_view kDectrisV2WrongPartCount = "dectris_v2_wrong_part_count";
inline constexpr std::string_view kDectrisSeriesStarted = "dectris_series_started";
inline constexpr std::string_view kDectrisSeriesEnded = "dectris_series_ended";
inline constexpr std::string_view kDectrisStaleSeries = "dectris_stale_series";
inline constexpr std::string_view kDectrisFrameNotIssued = "dectris_frame_not_issued";
inline constexpr std::string_view kDectrisFrameGaps = "dectris_frame_gaps";
inline constexpr std::string_view kDectrisFramesMissing = "dectris_frames_missing";
inline constexpr std::string_view kDectrisExtraChannelsIgnored = "dectris_extra_channels_ignored";

// --- the Merlin source (daemon/ingest) ----------------------------------------------------------
inline constexpr std::string_view kMerlinBadFraming = "merlin_bad_framing";
inline constexpr std::string_view kMerlinBadLength = "merlin_bad_length";
inline constexpr std::string_view kMerlinTruncated = "merlin_truncated";
inline constexpr std::string_view kMerlinUnknownMessage = "merlin_unknown_message";
inline constexpr std::string_view kMerlinMalformedHeader = "merlin_malformed_header";
inline constexpr std::string_view kMerlinSizeMismatch = "merlin_size_mismatch";
inline constexpr std::string_view kMerlinAcquisitionsStarted = "merlin_acquisitions_started";
inline constexpr std::string_view kMerlinNoAcquisition = "merlin_no_acquisition";
inline constexpr std::string_view kMerlinFrameNotIssued = "merlin_frame_not_issued";
inline constexpr std::string_view kMerlinFrameGaps = "merlin_frame_gaps";
inline constexpr std::string_view kMerlinFramesMissing = "merlin_frames_missing";
inline constexpr std::string_view kMerlinAcquisitionsAborted = "merlin_acquisitions_aborted";

// --- the ingest pipeline (daemon/app) -----------------------------------------------------------
inline constexpr std::string_view kSessionStreamFaults = "session_stream_faults";

// --- the sub-sequence assembler (daemon/core) ---------------------------------------------------
inline constexpr std::string_view kFramesUnknownSession = "frames_unknown_session";
inline constexpr std::string_view kFramesUnknownSubSequence = "frames_unknown_sub_sequence";
inline constexpr std::string_view kFramesUnknownPosition = "frames_unknown_position";
inline constexpr std::string_view kFramesDuplicate = "frames_duplicate";
inline constexpr std::string_view kFramesPositionMismatch = "frames_position_mismatch";
inline constexpr std::string_view kFramesIndexUnexpected = "frames_index_unexpected";
inline constexpr std::string_view kFramesOutOfOrder = "frames_out_of_order";
inline constexpr std::string_view kFramesAccepted = "frames_accepted";
inline constexpr std::string_view kSubSequencesCompleted = "sub_sequences_completed";
inline constexpr std::string_view kSubSequencesAbandoned = "sub_sequences_abandoned";

// --- the session (daemon/core) ------------------------------------------------------------------
inline constexpr std::string_view kPositionsRequested = "positions_requested";
inline constexpr std::string_view kPositionsApproved = "positions_approved";
inline constexpr std::string_view kPositionsNonFinite = "positions_non_finite";
inline constexpr std::string_view kPositionsClamped = "positions_clamped";
inline constexpr std::string_view kPositionsSnapped = "positions_snapped";
inline constexpr std::string_view kPositionsDeduplicated = "positions_deduplicated";
inline constexpr std::string_view kPositionsOverBudget = "positions_over_budget";
inline constexpr std::string_view kSubSequencesEmpty = "sub_sequences_empty";
inline constexpr std::string_view kFramesAfterSessionEnd = "frames_after_session_end";
inline constexpr std::string_view kFrameGeometryDisagreements = "frame_geometry_disagreements";
inline constexpr std::string_view kDetectorPixelsMasked = "detector_pixels_masked";

// --- the daemon (daemon/app) --------------------------------------------------------------------
inline constexpr std::string_view kFramesOutsideSession = "frames_outside_session";
inline constexpr std::string_view kSessionErrors = "session_errors";
inline constexpr std::string_view kDetectorTimeouts = "detector_timeouts";
inline constexpr std::string_view kControlRequestsRejected = "control_requests_rejected";
inline constexpr std::string_view kControlRequestsMalformed = "control_requests_malformed";
inline constexpr std::string_view kControlRequestsUnauthorized = "control_requests_unauthorized";
inline constexpr std::string_view kControlConnectionsUnauthorized = "control_connections_unauthorized";
inline constexpr std::string_view kSessionsRecovered = "sessions_recovered";
inline constexpr std::string_view kOrphansNotRecovered = "orphans_not_recovered";
inline constexpr std::string_view kFramesUnissuedNotRecorded = "frames_unissued_not_recorded";
inline constexpr std::string_view kControlRepliesSlow = "control_replies_slow";
inline constexpr std::string_view kFrameStreamDisconnects = "frame_stream_disconnects";

// Whether a non-zero count is news for the operator: the report and the live page highlight an
// alarm counter that is not zero, and leave those of normal operation plain.
enum class Kind { kAlarm, kNormalOperation };

struct CounterInfo {
  std::string_view name;
  std::string_view meaning;     // one line, for an operator; no `|` (it is a Markdown cell)
  std::string_view counted_by;  // the part (or parts) that counts it
  Kind kind = Kind::kAlarm;     // bad input or a fault unless said otherwise
};

// Which part counts: the same words in every row, so that the table reads as groups.
namespace part {
inline constexpr std::string_view kZmqSource = "native ZMQ source";
inline constexpr std::string_view kZmqSourceAndDectrisParser = "native ZMQ source, DECTRIS parser";
inline constexpr std::string_view kZmqAndDectrisSources = "native ZMQ source, DECTRIS source";
inline constexpr std::string_view kDectrisParser = "DECTRIS parser";
inline constexpr std::string_view kDectrisParserAndSource = "DECTRIS parser, DECTRIS source";
inline constexpr std::string_view kDectrisSource = "DECTRIS source";
inline constexpr std::string_view kMerlinSource = "Merlin source";
inline constexpr std::string_view kEveryStreamSource = "native ZMQ, DECTRIS and Merlin sources";
inline constexpr std::string_view kAssemblerAndIngest = "assembler, ingest pipeline";
inline constexpr std::string_view kIngest = "ingest pipeline";
inline constexpr std::string_view kAssembler = "assembler";
inline constexpr std::string_view kSession = "session";
inline constexpr std::string_view kDaemon = "daemon";
}  // namespace part

// In the order `ptypilot counters` prints them: a frame's way in, then the session and daemon.
inline constexpr std::array kCounters = {
    CounterInfo{kFramesReceivedOk, "frames that passed the source's checks",
                part::kZmqAndDectrisSources, Kind::kNormalOperation},
    CounterInfo{kFramesMalformedHeader, "a native message whose header part is not a `FrameHeader`",
                part::kZmqSource},
    CounterInfo{kFramesWrongPartCount, "a native message of other than two parts (header, payload)",
                part::kZmqSource},
    CounterInfo{kFramesPayloadSizeMismatch,
                "a native frame whose payload size differs from what its header says",
                part::kZmqSource},
    CounterInfo{kFramesMissingSession, "a native frame whose header has no session id",
                part::kZmqSource},
    CounterInfo{kFramesBadDtype, "a frame of an unknown pixel type",
                part::kZmqSourceAndDectrisParser},
    CounterInfo{kFramesDtypeMismatch,
                "a frame of a pixel type other than the configured `detector.dtype`",
                part::kZmqSourceAndDectrisParser},
    CounterInfo{kFramesWrongShape,
                "a frame of an empty shape, one other than the configured detector shape, or one "
                "larger than 4096 x 4096",
                part::kZmqSourceAndDectrisParser},
    CounterInfo{kFramesNonFinite, "a frame with NaN or infinite counts",
                part::kZmqSourceAndDectrisParser},
    CounterInfo{kFramesNegative, "a frame with negative counts", part::kZmqSourceAndDectrisParser},
    CounterInfo{kDectrisV1MalformedJson,
                "DECTRIS v1: a part that is not a JSON object, lacks a field, or nests too deep; a "
                "truncated part",
                part::kDectrisParser},
    CounterInfo{kDectrisV1WrongPartCount,
                "DECTRIS v1: a message with the wrong number of parts for its kind",
                part::kDectrisParserAndSource},
    CounterInfo{kDectrisV1UnknownHtype, "DECTRIS v1: an unknown `htype`", part::kDectrisParser},
    CounterInfo{kDectrisV2MalformedCbor,
                "DECTRIS v2: CBOR that is truncated or malformed, nested too deep, or followed by "
                "extra bytes",
                part::kDectrisParser},
    CounterInfo{kDectrisV2WrongType,
                "DECTRIS v2: CBOR of the wrong type (not a map, a field of another type, a field "
                "missing)",
                part::kDectrisParser},
    CounterInfo{kDectrisV2UnknownType, "DECTRIS v2: an unknown message `type`",
                part::kDectrisParser},
    CounterInfo{kDectrisUnknownEncoding,
                "DECTRIS: an encoding or compression we do not know, or one that does not fit the "
                "pixel type",
                part::kDectrisParser},
    CounterInfo{kDectrisSizeMismatch,
                "DECTRIS: sizes that lie (`size`, the compressed header's decoded size, a blob too "
                "short for the shape)",
                part::kDectrisParser},
    CounterInfo{kDectrisCorruptData, "DECTRIS: a corrupt or truncated LZ4 or bitshuffle block",
                part::kDectrisParser},
    CounterInfo{kDectrisV2WrongPartCount, "DECTRIS v2: a message of more than one ZMQ part",
                part::kDectrisSource},
    CounterInfo{kDectrisSeriesStarted, "DECTRIS: this session's series header arrived",
                part::kDectrisSource, Kind::kNormalOperation},
    CounterInfo{kDectrisSeriesEnded, "DECTRIS: this session's end of series arrived",
                part::kDectrisSource, Kind::kNormalOperation},
    CounterInfo{kDectrisStaleSeries,
                "DECTRIS: a message of another series, or a frame before the session's series "
                "header (not recorded)",
                part::kDectrisSource},
    CounterInfo{kDectrisFrameNotIssued,
                "DECTRIS: a frame number that no sub-sequence issued (not recorded)",
                part::kDectrisSource},
    CounterInfo{kDectrisFrameGaps,
                "DECTRIS: gaps in the frame numbers; the session goes to `error`, naming the "
                "missing numbers",
                part::kDectrisSource},
    CounterInfo{kDectrisFramesMissing, "DECTRIS: the frames missing in those gaps",
                part::kDectrisSource},
    CounterInfo{kDectrisExtraChannelsIgnored,
                "DECTRIS v2: image channels beyond the first, which are ignored",
                part::kDectrisSource},
    CounterInfo{kMerlinBadFraming,
                "Merlin: bytes that do not start \"MPX,\" + a 10-digit length + \",\"; skipped to "
                "the next \"MPX,\"",
                part::kMerlinSource},
    CounterInfo{kMerlinBadLength,
                "Merlin: a message longer than a frame of the configured shape can be (skipped by "
                "its length), or longer than any frame (skipped to the next \"MPX,\")",
                part::kMerlinSource},
    CounterInfo{kMerlinTruncated,
                "Merlin: a message cut off by the end of the connection", part::kMerlinSource},
    CounterInfo{kMerlinUnknownMessage, "Merlin: a message that is neither `HDR` nor `MQ1`",
                part::kMerlinSource},
    CounterInfo{kMerlinMalformedHeader,
                "Merlin: an `MQ1` frame header whose fields are missing or not numbers in range",
                part::kMerlinSource},
    CounterInfo{kMerlinSizeMismatch,
                "Merlin: a frame message whose length is not its header size plus its pixels",
                part::kMerlinSource},
    CounterInfo{kMerlinAcquisitionsStarted, "Merlin: acquisition headers (`HDR`) taken as the "
                "session's acquisition", part::kMerlinSource, Kind::kNormalOperation},
    CounterInfo{kMerlinNoAcquisition,
                "Merlin: a frame before the session's acquisition header, or after its "
                "acquisition was aborted (not recorded)",
                part::kMerlinSource},
    CounterInfo{kMerlinFrameNotIssued,
                "Merlin: a frame number that no sub-sequence issued (not recorded)",
                part::kMerlinSource},
    CounterInfo{kMerlinFrameGaps,
                "Merlin: gaps in the frame numbers; the session goes to `error`, naming the "
                "missing numbers",
                part::kMerlinSource},
    CounterInfo{kMerlinFramesMissing,
                "Merlin: the frames missing in those gaps or in an aborted acquisition",
                part::kMerlinSource},
    CounterInfo{kMerlinAcquisitionsAborted,
                "Merlin: a new acquisition header before the session's frames were all in (an "
                "acquisition aborted on the Merlin); the session goes to `error`",
                part::kMerlinSource},
    CounterInfo{kSessionStreamFaults,
                "sessions ended in `error` by a fault of the detector stream (lost frames); the "
                "frames received are recorded",
                part::kIngest},
    CounterInfo{kFramesUnknownSession,
                "a frame for another session (not recorded: it belongs to no file of this session)",
                part::kAssemblerAndIngest},
    CounterInfo{kFramesUnknownSubSequence,
                "a frame of a sub-sequence never issued (recorded up to the junk cap, not reconstructed)",
                part::kAssembler},
    CounterInfo{
        kFramesUnknownPosition,
        "a frame of a position its sub-sequence does not have (recorded up to the junk cap, not reconstructed)",
        part::kAssembler},
    CounterInfo{kFramesDuplicate,
                "a frame that arrived twice (recorded up to the junk cap, not reconstructed)",
                part::kAssembler},
    CounterInfo{kFramesPositionMismatch,
                "a frame whose header position is not the one issued (recorded, not reconstructed)",
                part::kAssembler},
    CounterInfo{kFramesIndexUnexpected,
                "a frame whose frame index is not the one issued; placed by its position index",
                part::kAssembler},
    CounterInfo{kFramesOutOfOrder,
                "a frame that arrived after a later one of its sub-sequence (accepted)",
                part::kAssembler},
    CounterInfo{kFramesAccepted, "frames placed in their sub-sequence for reconstruction",
                part::kAssembler, Kind::kNormalOperation},
    CounterInfo{kSubSequencesCompleted, "sub-sequences with every frame received",
                part::kAssembler, Kind::kNormalOperation},
    CounterInfo{kSubSequencesAbandoned,
                "sub-sequences left incomplete when the next session began (their frames are "
                "recorded)",
                part::kAssembler},
    CounterInfo{kPositionsRequested, "scan positions the policy proposed", part::kSession,
                Kind::kNormalOperation},
    CounterInfo{kPositionsApproved, "scan positions Safety let through to the scan generator",
                part::kSession, Kind::kNormalOperation},
    CounterInfo{kPositionsNonFinite, "proposed positions that were NaN or infinite (dropped)",
                part::kSession},
    CounterInfo{kPositionsClamped, "proposed positions moved into the scan field by Safety",
                part::kSession},
    CounterInfo{kPositionsSnapped, "proposed positions moved onto the scan raster by Safety",
                part::kSession, Kind::kNormalOperation},
    CounterInfo{kPositionsDeduplicated,
                "proposed positions dropped as too close to a visited or already approved one",
                part::kSession},
    CounterInfo{kPositionsOverBudget,
                "proposed positions dropped beyond the session's position budget", part::kSession},
    CounterInfo{kSubSequencesEmpty,
                "sub-sequences where nothing the policy proposed was usable; the session ends",
                part::kSession},
    CounterInfo{kFramesAfterSessionEnd,
                "frames that arrived after the session had ended (recorded, not reconstructed)",
                part::kSession},
    CounterInfo{kFrameGeometryDisagreements,
                "sessions whose first frames disagreed with the configured frame geometry (a "
                "wrong layout, an off-centre disk, a disk of another radius): warned, or ended "
                "when grossly wrong (detector.geometry_check)",
                part::kSession},
    CounterInfo{kDetectorPixelsMasked,
                "pixels that a detector's series header marked bad (DECTRIS pixel mask), masked "
                "in the session's frame geometry besides detector.geometry.mask_path's",
                part::kSession, Kind::kNormalOperation},
    CounterInfo{kFramesOutsideSession,
                "frames that arrived while a session was stopping or after it (recorded, not "
                "reconstructed)",
                part::kDaemon},
    CounterInfo{kSessionErrors,
                "sessions that ended in `error` (a scan generator that does not acknowledge, a "
                "detector that stops sending, a stream fault, a full disk)",
                part::kDaemon},
    CounterInfo{kDetectorTimeouts,
                "a detector that stopped sending; the session goes to `error`, with the missing "
                "positions named, and the data is kept",
                part::kDaemon},
    CounterInfo{kControlRequestsRejected,
                "control requests refused (a bad config, a command not allowed in this state)",
                part::kDaemon},
    CounterInfo{kControlRequestsMalformed,
                "control requests that are neither a `ControlRequest` protobuf nor valid JSON, "
                "or that exceed the limits (1 MiB, 64 levels of JSON nesting, valid UTF-8)",
                part::kDaemon},
    CounterInfo{kControlRequestsUnauthorized,
                "control requests its client's role may not make: an observer's configure, start "
                "or stop, a controller's stop without the session's token (README, Security)",
                part::kDaemon},
    CounterInfo{kControlConnectionsUnauthorized,
                "CURVE connections to the control or event socket from a key that is not "
                "authorized; the client gets no answer",
                part::kDaemon},
    CounterInfo{kSessionsRecovered,
                "sessions of a killed daemon (a journal whose file says `interrupted`) that "
                "serve found in its recorder directory and recovered from the journal",
                part::kDaemon, Kind::kNormalOperation},
    CounterInfo{kOrphansNotRecovered,
                "such journals that could not be recovered; status lists them "
                "(`orphaned_journals`) for `ptypilot recover`",
                part::kDaemon},
    CounterInfo{kFrameStreamDisconnects,
                "connections of the frame stream that ended: the detector went away, or sent a "
                "message larger than the configured frame shape allows (dropped unread); a "
                "connecting source connects again",
                part::kEveryStreamSource},
    CounterInfo{kFramesUnissuedNotRecorded,
                "frames of no issued position (never issued, or a repeat) beyond "
                "`recorder.max_unissued_frames` in a session: counted here, not recorded",
                part::kIngest},
    CounterInfo{kControlRepliesSlow,
                "status, stop and reconstruction replies that took the daemon more than 10 ms "
                "(they never wait for the event loop or the session worker, so this stays 0)",
                part::kDaemon},
};

// kCounters as a Markdown table (counter, meaning, counted by, alarm): what `ptypilot counters`
// prints.
std::string reference();

// A count the operator should look at: non-zero, and not a counter of normal operation. A name
// the registry does not know counts as an alarm.
bool is_alarm(std::string_view name, std::uint64_t value);

}  // namespace ptypilot::counters
