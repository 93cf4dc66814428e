#include "ptypilot/app/daemon.hpp"

#include <boost/asio.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "component_factory.hpp"
#include "ptypilot/wire/control_codec.hpp"
#include "control_server.hpp"
#include "event_publisher.hpp"
#include "http_server.hpp"
#include "ptypilot/app/live_feed.hpp"
#include "ingest_pipeline.hpp"
#include "ptypilot/app/metrics.hpp"
#include "session_summary.hpp"
#include "zap_authenticator.hpp"
#include "ptypilot.pb.h"
#include "ptypilot/core/session.hpp"
#include "ptypilot/ingest/detector_connection.hpp"
#include "ptypilot/policy/policy_factory.hpp"
#include "ptypilot/record/hdf5_recorder.hpp"
#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/curve_keys.hpp"
#include "ptypilot/wire/json_guard.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using wire::ControlReply;
using wire::ControlRequest;

bool active(ControlReply::State s) {
  return s == ControlReply::RUNNING || s == ControlReply::FINISHING;
}

// A request the client's role may not make: counted apart from requests wrong in themselves.
struct Unauthorized : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// 128 bits from the system's entropy source, as hex: a controller's proof that it started the
// session, so it must not be guessable from the session id or the time.
std::string new_session_token() {
  std::random_device device;
  std::string token;
  for (int i = 0; i < 4; ++i) {
    char word[9];
    std::snprintf(word, sizeof word, "%08x", static_cast<unsigned>(device()));
    token += word;
  }
  return token;
}

// The keys of a daemon that serves CURVE (README, Security); a non-loopback endpoint without
// them is refused, since anyone who reaches it could run the microscope.
struct CurveSetup {
  std::optional<CurveKeyPair> server;
  std::vector<AuthorizedKey> clients;
};

CurveSetup load_curve_setup(const std::string& server_key, const std::string& authorized_keys,
                            const std::vector<std::string>& endpoints) {
  CurveSetup setup;
  if (server_key.empty() != authorized_keys.empty())
    throw std::runtime_error("CURVE needs both the server key and the authorized keys "
                             "(--server-key and --authorized-keys, or control.server_key and "
                             "control.authorized_keys)");
  if (server_key.empty()) {
    for (const auto& e : endpoints)
      if (!is_loopback_endpoint(e))
        throw std::runtime_error(
            "refusing to bind " + e + " without CURVE keys: anyone who reaches it could stop "
            "sessions and read reconstructions. Make keys with `ptypilot keygen --out keys "
            "--name server` (and one per client), list the clients' public keys in a file "
            "(ROLE PUBLIC_KEY NAME a line), and serve with --server-key keys/server.key_secret "
            "--authorized-keys FILE (README, Security); or bind 127.0.0.1");
    return setup;
  }
  setup.server = read_curve_key_file(server_key);
  if (setup.server->secret_key.empty())
    throw std::runtime_error(server_key + " holds no secret key: give the server's "
                             "NAME.key_secret, not its NAME.key");
  setup.clients = read_authorized_keys(authorized_keys);
  if (setup.clients.empty())
    throw std::runtime_error(authorized_keys + " authorizes no key: no client could connect");
  return setup;
}

}  // namespace

// What the session worker last reported, for status replies and the watchdog, so that neither
// waits for a reconstruction in progress.
struct SessionProgress {
  std::uint32_t sub_sequences = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t positions_issued = 0;
  bool waiting_for_frames = false;
  std::string missing;
  std::shared_ptr<const Potential> potential;
  std::vector<SessionWarning> warnings;
  // For the live page: each completed sub-sequence, the one in flight, and a count that
  // changes whenever they or the potential do.
  int position_budget = 0;
  double dose_e_per_A2 = 0.0;
  std::vector<std::shared_ptr<const LiveSubSequence>> completed;
  std::shared_ptr<const LiveSubSequence> in_flight;
  std::uint64_t version = 0;
};

// What the control thread answers status, stop and get_reconstruction from, so that it never
// waits for the event loop (busy with a configure, a start or a session's end) nor for the
// worker. The loop publishes it whenever what it holds changes; the counters of the running
// session's source and assembler are read live through the pointers (HealthCounters locks).
struct Published {
  ControlReply::State state = ControlReply::IDLE;
  std::string error;
  std::string session_id;
  std::string session_token;  // for the roles' check of a stop (authorize)
  std::shared_ptr<const IngestPipeline> ingest;
  std::shared_ptr<const HealthCounters> assembler_health;
  std::shared_ptr<const Recorder> recorder;
  std::string recorder_directory;  // where sessions are recorded (the configured, else the root)
  bool session_live = false;
  std::shared_ptr<const Potential> last_potential;
  std::map<std::string, std::uint64_t> finished_totals;
  std::set<std::string> orphaned_journals;
};

struct Daemon::Impl {
  explicit Impl(DaemonOptions o) : options(std::move(o)) {}

  DaemonOptions options;
  zmq::context_t context{1};
  // The event loop: the state machine, control requests, events, the watchdog.
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  // The session worker: Session::start, on_frames (reconstruction, policy, driver) and stop run
  // here, so that a control request never waits for a reconstruction.
  asio::io_context session_io;
  asio::executor_work_guard<asio::io_context::executor_type> session_work{session_io.get_executor()};
  std::thread session_thread;
  asio::signal_set signals{io, SIGINT, SIGTERM};
  asio::steady_timer watchdog{io};
  // Before the sockets it checks, so that it outlives them.
  std::optional<ZapAuthenticator> zap;
  std::optional<ControlServer> control;
  std::optional<EventPublisher> events;
  std::atomic<bool> stopping{false};
  // A session's decision is running (Session::Parts::deciding); the live page holds its sends.
  std::atomic<bool> deciding{false};
  // Every sub-sequence's decision latency since start, for /metrics (observed by the worker).
  DecisionLatencies latencies;

  // The recorder's directory (and a point-list driver's) must lie inside it: canonical.
  std::filesystem::path recorder_root;

  // Owned by the event loop.
  ControlReply::State state = ControlReply::IDLE;
  bool closing = false;        // end_session began; the worker is closing the session
  bool shutting_down = false;  // a signal came: stop the loop once the session is closed
  std::string error;
  std::optional<ServeConfig> config;
  std::unique_ptr<DetectorConnection> connection;
  std::string session_id;
  std::string session_token;  // the running session's, from its Start reply
  // Tells a finished session's late callbacks from the current one's; read by the worker.
  std::atomic<std::uint64_t> generation{0};
  HealthCounters health;
  std::map<std::string, std::uint64_t> finished_totals;  // ingest and assembly counters of ended sessions
  std::shared_ptr<const Potential> last_potential;
  std::shared_ptr<Recorder> recorder;
  std::mutex recorder_mutex;
  std::shared_ptr<IngestPipeline> ingest;
  // Made on the event loop; used only on the session worker until the session ends.
  std::shared_ptr<Session> session;
  std::atomic<bool> accepting_frames{false};
  std::atomic<Clock::rep> last_activity{Clock::now().time_since_epoch().count()};
  // The worker is in a step (a reconstruction, a scan generator's acknowledgement): the frames
  // it has are not a silent detector, so the watchdog waits (the driver times out on its own).
  std::atomic<bool> worker_busy{false};

  std::mutex progress_mutex;
  SessionProgress progress;
  // Journals of killed sessions that recovery failed on, for status (`ptypilot recover` them).
  std::set<std::string> orphaned_journals;

  std::mutex published_mutex;
  Published published;
  bool stop_requested = false;  // under published_mutex: a stop the loop has not yet taken

  // On the event loop, after each change of what Published holds.
  void publish() {
    std::lock_guard lock(published_mutex);
    // A stop acknowledged by the control thread stays acknowledged until the loop takes it.
    published.state = state == ControlReply::RUNNING && stop_requested ? ControlReply::FINISHING : state;
    published.error = error;
    published.session_id = session_id;
    published.session_token = session_token;
    published.ingest = ingest;
    published.assembler_health =
        session ? std::shared_ptr<const HealthCounters>(session, &session->assembler_health()) : nullptr;
    published.recorder = recorder;
    published.recorder_directory = config ? config->recorder.directory : recorder_root.string();
    published.session_live = session != nullptr;
    published.last_potential = last_potential;
    published.finished_totals = finished_totals;
    published.orphaned_journals = orphaned_journals;
  }

  Published snapshot() {
    std::lock_guard lock(published_mutex);
    return published;
  }

  // Sessions a killed daemon left in `directory`: recovered now, or listed in status. Runs when
  // no session of ours is live; a live session of another process holds its journal's lock and
  // is left alone. Leftover reserve files go too.
  void recover_orphans(const std::filesystem::path& directory) {
    const DirectoryScan scan = Hdf5Recorder::scan_directory(directory);
    for (const auto& reserve : scan.reserves_removed)
      log::info("reserve_removed", {{"path", reserve.string()},
                                    {"note", "left behind by a session that did not end"}});
    for (const auto& journal : scan.orphaned_journals) {
      SessionRecovery r;
      const Status s = Hdf5Recorder::recover_session(journal, &r);
      if (s.ok()) {
        health.increment(counters::kSessionsRecovered);
        orphaned_journals.erase(journal.string());
        log::warn("orphan_recovered", {{"journal", journal.string()}, {"h5", r.h5.string()},
                                       {"frames", r.report.frames},
                                       {"sub_sequences", r.report.sub_sequences},
                                       {"complete", r.report.complete},
                                       {"error", r.report.error}});
      } else {
        if (orphaned_journals.insert(journal.string()).second)
          health.increment(counters::kOrphansNotRecovered);
        log::error("orphan_not_recovered", {{"journal", journal.string()}, {"error", s.message()},
                                            {"fix", "ptypilot recover " + journal.string()}});
      }
    }
  }

  void touch() { last_activity = Clock::now().time_since_epoch().count(); }

  // --- session worker --------------------------------------------------------------------------

  // `completed`: the sub-sequences completed since the last call, whose reconstruction is new.
  void update_progress(const std::vector<SubSequenceReport>& completed = {}) {
    SessionProgress p;
    p.sub_sequences = session->sub_sequences_done();
    p.frames_received = session->frames_received();
    p.positions_issued = session->positions_issued();
    p.waiting_for_frames = session->waiting_for_frames();
    p.missing = p.waiting_for_frames ? session->missing_description() : "";
    p.warnings = session->warnings();
    p.position_budget = session->position_budget();
    p.dose_e_per_A2 = session->dose_e_per_A2();
    std::shared_ptr<const Potential> potential;
    if (!completed.empty()) potential = std::make_shared<const Potential>(session->potential());
    std::vector<std::shared_ptr<const LiveSubSequence>> done;
    for (const SubSequenceReport& r : completed)
      done.push_back(std::make_shared<const LiveSubSequence>(
          live_completed(*session, r, recorder->frames_recorded())));
    // The sub-sequence in flight: the last one issued, while it is not completed.
    const std::uint32_t issued = session->sub_sequences_issued();
    const bool flying = issued > p.sub_sequences;
    std::lock_guard lock(progress_mutex);
    p.potential = potential ? potential : progress.potential;
    p.completed = std::move(progress.completed);
    p.completed.insert(p.completed.end(), done.begin(), done.end());
    p.in_flight = flying ? progress.in_flight : nullptr;
    if (flying && (!p.in_flight || p.in_flight->index != issued - 1))
      p.in_flight = std::make_shared<const LiveSubSequence>(live_issued(*session, issued - 1));
    p.version = progress.version + (!done.empty() || p.in_flight != progress.in_flight ? 1 : 0);
    progress = std::move(p);
  }

  // After the worker ran the session: publish its new reports, and end it if it failed or is done.
  void after_step(std::uint64_t gen, const Status& s, std::size_t reports_before,
                  std::size_t warnings_before) {
    std::vector<SubSequenceReport> reports(session->reports().begin() + reports_before,
                                           session->reports().end());
    std::vector<SessionWarning> warnings(session->warnings().begin() + warnings_before,
                                         session->warnings().end());
    for (const auto& r : reports) latencies.observe(r.latency);
    update_progress(reports);
    touch();
    const bool done = session->done();
    asio::post(io, [this, gen, s, done, reports = std::move(reports),
                    warnings = std::move(warnings)] {
      if (gen != generation || !active(state)) return;
      for (const auto& w : warnings) events->warning(session_id, w);
      for (const auto& r : reports) events->sub_sequence_done(session_id, r);
      if (!s.ok()) return fail(s.message());
      if (done) end_session(true, "");
    });
  }

  void worker_start(std::uint64_t gen) {
    worker_busy = true;
    const Status s = session->start();
    worker_busy = false;
    after_step(gen, s, 0, 0);
  }

  void worker_frames(std::uint64_t gen, std::vector<DetectorFrame>& frames) {
    touch();
    if (!accepting_frames || gen != generation) {
      health.increment(counters::kFramesOutsideSession, frames.size());
      return;
    }
    const std::size_t before = session->reports().size();
    const std::size_t warned = session->warnings().size();
    worker_busy = true;
    const Status s = session->on_frames(frames);
    worker_busy = false;
    after_step(gen, s, before, warned);
  }

  // --- event loop --------------------------------------------------------------------------------

  // Ends the session: ingest stopped (its last frames recorded), the worker idle, the file closed
  // and readable, the event published. The loop waits for none of it: the worker, which may be
  // mid-reconstruction or waiting for a scan generator, stops ingest and closes the file once
  // what it already had is done, then hands back to finish_session. Until then: finishing.
  void end_session(bool ok, const std::string& why) {
    if (!active(state) || closing) return;
    closing = true;
    state = ControlReply::FINISHING;
    accepting_frames = false;
    publish();
    asio::post(session_io, [this, ok, why] {
      ingest->stop();  // its last batches are queued on the worker, behind this
      asio::post(session_io, [this, ok, why] { close_session(ok, why); });
    });
  }

  // On the worker, after every batch ingest handed on.
  void close_session(bool ok, const std::string& why) {
    auto last = std::make_shared<const Potential>(session->potential());
    // The counters as status shows them now, for the recording's summary.
    wire::Status status;
    fill_status(snapshot(), &status);
    const std::string summary = session_summary_json(
        *session, {status.counters().begin(), status.counters().end()});
    Status closed;
    {
      std::lock_guard lock(recorder_mutex);
      closed = recorder->end_session(ok ? "" : why, summary);
    }
    if (!closed.ok()) log::error("recorder_close_failed", {{"error", closed.to_string()}});
    const SessionTotals totals{session->sub_sequences_done(), session->positions_issued(),
                               recorder->frames_recorded(), recorder->output_path().string()};
    update_progress();
    asio::post(io, [this, ok, why, last, totals] { finish_session(ok, why, last, totals); });
  }

  void finish_session(bool ok, const std::string& why, std::shared_ptr<const Potential> last,
                      const SessionTotals& totals) {
    last_potential = std::move(last);
    events->session_done(session_id, ok, why, totals);
    log::info("session_done", {{"session", session_id}, {"ok", ok}, {"error", why},
                               {"frames_recorded", totals.frames_recorded}});
    if (ok) {
      state = ControlReply::IDLE;
      config.reset();
      error.clear();
    } else {
      state = ControlReply::ERROR;
      error = why;
    }
    if (ingest->source())
      for (const auto& [k, v] : ingest->source()->health().snapshot()) finished_totals[k] += v;
    for (const auto& [k, v] : session->assembler_health().snapshot()) finished_totals[k] += v;
    ingest.reset();
    session.reset();
    closing = false;
    publish();
    if (shutting_down) {
      stopping = true;
      io.stop();
    }
  }

  void fail(const std::string& why) {
    if (!active(state) || closing) return;  // ending already, for its own reason
    health.increment(counters::kSessionErrors);
    log::error("session_error", {{"session", session_id}, {"error", why}});
    end_session(false, why);
  }

  void arm_watchdog() {
    watchdog.expires_after(std::chrono::milliseconds(200));
    watchdog.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (active(state) && !closing) {
        const auto last = Clock::time_point(Clock::duration(last_activity.load()));
        const double idle_s = std::chrono::duration<double>(Clock::now() - last).count();
        SessionProgress p;
        {
          std::lock_guard lock(progress_mutex);
          p = progress;
        }
        if (p.waiting_for_frames && !worker_busy && idle_s > config->session.frame_timeout_s) {
          health.increment(counters::kDetectorTimeouts);
          // Messages that arrived and were discarded are not a silent detector: say which.
          std::string discarded;
          std::uint64_t discarded_count = 0;
          if (ingest && ingest->source())
            for (const auto& [name, n] : ingest->source()->health().rejections()) {
              discarded += (discarded.empty() ? "" : ", ") + name + " " + std::to_string(n);
              discarded_count += n;
            }
          if (discarded_count > 0)
            fail("no usable frame for " + std::to_string(idle_s) + " s: the detector sent " +
                 std::to_string(discarded_count) + " message(s) that were discarded (" +
                 discarded + "; see the log and ctl status); " + p.missing +
                 "; the frames received so far are recorded");
          else
            fail("detector stopped sending: no frame for " + std::to_string(idle_s) + " s; " +
                 p.missing + "; the frames received so far are recorded");
        }
      }
      arm_watchdog();
    });
  }

  // --- control -----------------------------------------------------------------------------------

  void configure(const std::string& text) {
    if (active(state)) throw std::runtime_error("a session is running: stop it before configuring");
    if (const std::string why = check_json_text(text, kConfigJsonLimits); !why.empty())
      throw std::invalid_argument("config: " + why);
    ServeConfig c = confined(parse_serve_config(nlohmann::json::parse(text, nullptr, true, true)));
    if (!options.detector_uri.empty()) c.detector = apply_detector_uri(c.detector, options.detector_uri);
    // Everything that can fail before a session fails here, not at start.
    make_reconstructor(c.reconstructor_config());
    make_policy(c.policy, policy_limits(c));  // loads and checks a learned policy's model now
    connection = make_detector_connection(context, c.detector, c.session.probe.detector_side_px(),
                                          parse_pixel_type(c.detector.dtype),
                                          static_cast<std::uint64_t>(c.session.total_positions));
    config = std::move(c);
    state = ControlReply::CONFIGURED;
    error.clear();
    recover_orphans(config->recorder.directory);
    publish();
    log::info("configured", {{"policy", config->policy.kind}, {"preset", config->session.preset},
                             {"detector", config->detector.kind},
                             {"detector_endpoint", config->detector.endpoint}});
  }

  // `c` with its directories resolved inside the recorder root; throws if one lies outside.
  ServeConfig confined(ServeConfig c) const {
    c.recorder.directory = confine_directory(recorder_root, c.recorder.directory, "recorder.directory").string();
    if (c.scan_driver.kind == "point-list")
      c.scan_driver.directory =
          confine_directory(recorder_root, c.scan_driver.directory, "scan_driver.directory").string();
    return c;
  }

  void start(const std::string& requested_id) {
    if (state != ControlReply::CONFIGURED)
      throw std::runtime_error(std::string("cannot start in state ") + state_name(state) +
                               ": configure first");
    const ServeConfig& c = *config;
    const std::string id = requested_id.empty() ? new_session_id() : requested_id;
    Session::Parts parts;
    const BackendChoice backend = choose_backend(c.reconstruction.backend);
    parts.reconstructor = make_reconstructor(c.reconstructor_config());
    log::info("reconstructor_backend", {{"requested", c.reconstruction.backend},
                                        {"chosen", parts.reconstructor->backend()},
                                        {"reason", backend.reason}});
    if (const double turn = c.reconstructor_config().scan_rotation_deg; turn != 0.0)
      log::info("scan_rotation_in_positions",
                {{"rotation_deg", c.detector.geometry.rotation_deg}, {"positions_deg", turn},
                 {"frames_deg", c.detector.geometry.rotation_deg - turn}});
    parts.policy = make_policy(c.policy, policy_limits(c));
    parts.driver = make_scan_driver(context, c.scan_driver);
    recorder = make_recorder(c.recorder);
    parts.record_sub_sequence = [this](const SubSequenceRecord& r) {
      std::lock_guard lock(recorder_mutex);
      return recorder->write_sub_sequence(r);
    };
    // The recorder's messages name it already.
    if (Status s = recorder->begin_session(session_info(c, id)); !s.ok())
      throw std::runtime_error(s.message());

    const std::uint64_t gen = ++generation;
    IngestPipeline::Callbacks callbacks;
    callbacks.on_batch = [this, gen](std::vector<DetectorFrame> frames) {
      asio::post(session_io, [this, gen, frames = std::move(frames)]() mutable {
        ingest_taken(frames.size());
        worker_frames(gen, frames);
      });
    };
    callbacks.on_fault = [this, gen](std::string why) {
      asio::post(io, [this, gen, why = std::move(why)] {
        if (gen == generation && active(state)) fail(why);
      });
    };
    ingest = std::make_shared<IngestPipeline>(recorder, recorder_mutex, health, id,
                                              c.recorder.sync_every_frames,
                                              static_cast<std::size_t>(c.detector.max_pending_frames),
                                              c.recorder.max_unissued_frames, std::move(callbacks));
    std::unique_ptr<FrameSource> source = connection->open(id, ingest->make_fault_handler());
    parts.positions_issued = [s = source.get(), i = ingest.get()](const ScanRequest& r) {
      Status placed = s->positions_issued(r);
      if (placed.ok()) i->positions_issued(r);
      return placed;
    };
    // The clock, not the server: the session may read it while the daemon shuts the page down.
    if (const std::optional<clockid_t> clock = http ? http->cpu_clock() : std::nullopt)
      parts.live_page_cpu_seconds = [clock = *clock] { return thread_cpu_seconds(clock); };
    parts.deciding = [this](bool now) { deciding.store(now, std::memory_order_relaxed); };
    session = std::make_shared<Session>(c, id, std::move(parts), health);
    session_id = id;
    session_token = new_session_token();
    last_potential.reset();
    {
      std::lock_guard lock(progress_mutex);
      SessionProgress fresh;
      fresh.version = progress.version + 1;  // the live page's count never repeats
      progress = std::move(fresh);
    }
    accepting_frames = true;
    ingest->start(std::move(source));
    state = ControlReply::RUNNING;
    {
      std::lock_guard lock(published_mutex);
      stop_requested = false;
    }
    publish();
    touch();
    log::info("session_started", {{"session", id}, {"policy", session->policy_name()},
                                  {"output", recorder->output_path().string()}});
    // The first sub-sequence goes out from the worker, after the Start reply: a scan generator
    // may be driven by the same software that sent Start, and must not be waited for here.
    asio::post(session_io, [this, gen] { worker_start(gen); });
  }

  void ingest_taken(std::size_t n) {
    // The pipeline outlives every batch it handed on: end_session stops it only after the
    // worker has taken what was queued.
    if (ingest) ingest->taken(n);
  }

  // On the control thread: the stop is acknowledged (finishing) at once, and the loop takes it.
  void request_stop() {
    {
      std::lock_guard lock(published_mutex);
      if (published.state != ControlReply::RUNNING) return;  // twice, or nothing to stop: fine
      stop_requested = true;
      published.state = ControlReply::FINISHING;
    }
    asio::post(io, [this] { stop(); });
  }

  void stop() {
    if (state != ControlReply::RUNNING) return;
    state = ControlReply::FINISHING;
    publish();
    log::info("session_stopping", {{"session", session_id}});
    const std::uint64_t gen = generation;
    asio::post(session_io, [this, gen] {
      if (gen != generation || !session) return;
      session->stop();
      update_progress();
      const bool waiting = session->waiting_for_frames();
      asio::post(io, [this, gen, waiting] {
        if (gen == generation && !waiting) end_session(true, "");
      });
    });
  }

  // On the control thread, from what the loop published.
  void fill_status(const Published& now, wire::Status* s) {
    SessionProgress p;
    {
      std::lock_guard lock(progress_mutex);
      p = progress;
    }
    s->set_session_id(now.session_id);
    s->set_sub_sequence(p.sub_sequences);
    s->set_frames_received(p.frames_received);
    s->set_positions_issued(p.positions_issued);
    if (now.recorder) s->set_frames_recorded(now.recorder->frames_recorded());
    auto* counters = s->mutable_counters();
    for (const auto& [k, v] : health.snapshot()) (*counters)[k] = v;
    // Ingest and assembly counters of the current session, on top of earlier sessions' totals.
    std::map<std::string, std::uint64_t> merged = now.finished_totals;
    if (now.ingest && now.ingest->source())
      for (const auto& [k, v] : now.ingest->source()->health().snapshot()) merged[k] += v;
    if (now.assembler_health)
      for (const auto& [k, v] : now.assembler_health->snapshot()) merged[k] += v;
    for (const auto& [k, v] : merged) (*counters)[k] += v;
    for (const auto& w : p.warnings) {
      auto* out = s->add_warnings();
      out->set_code(w.code);
      out->set_message(w.message);
      out->set_detail_json(w.detail_json);
    }
    for (const auto& journal : now.orphaned_journals) s->add_orphaned_journals(journal);
  }

  void fill_reconstruction(const Published& now, ControlReply* reply) {
    std::shared_ptr<const Potential> current;
    std::uint32_t sub_sequences = 0;
    {
      std::lock_guard lock(progress_mutex);
      current = progress.potential;
      sub_sequences = progress.sub_sequences;
    }
    const Potential* p = now.session_live && current ? current.get() : now.last_potential.get();
    if (!p || p->phase_rad.empty()) throw std::runtime_error("no reconstruction yet");
    auto* r = reply->mutable_reconstruction();
    r->set_rows(p->phase_rad.rows());
    r->set_cols(p->phase_rad.cols());
    r->set_pixel_a(p->grid.pixel_A);
    r->set_sub_sequence(now.session_live ? sub_sequences : 0);
    r->set_data(p->phase_rad.data(), p->phase_rad.size() * sizeof(float));
  }

  // Runs `task` on the event loop and waits for it; its exception comes back here.
  template <typename F>
  void on_loop(F task) {
    auto done = std::make_shared<std::promise<void>>();
    auto future = done->get_future();
    asio::post(io, [task = std::move(task), done] {
      try {
        task();
        done->set_value();
      } catch (...) {
        done->set_exception(std::current_exception());
      }
    });
    while (future.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready)
      if (stopping) throw std::runtime_error("the daemon is shutting down");
    future.get();
  }

  // Roles (README, Security). Without CURVE only this machine reaches the sockets, and every
  // client is an operator.
  // On the control thread: the state and the session's token are what the loop published.
  void authorize(const ControlRequest& request, Role role, const Published& now) {
    const auto refuse = [&](const std::string& why) {
      health.reject(counters::kControlRequestsUnauthorized, why);
      throw Unauthorized("not authorized: " + why);
    };
    switch (request.command_case()) {
      case ControlRequest::kConfigure:
      case ControlRequest::kStart:
        if (role == Role::kObserver) refuse("an observer key may read, not configure or start");
        break;
      case ControlRequest::kStop:
        if (role == Role::kObserver) refuse("an observer key may read, not stop a session");
        if (role == Role::kController && active(now.state) &&
            request.stop().session_token() != now.session_token)
          refuse("session " + now.session_id + " was started by another client: stop it with the "
                 "session_token of its start reply, or with an operator key");
        break;
      default: break;
    }
  }

  ControlReply handle(const ControlRequest& request, Role role) {
    ControlReply reply;
    reply.set_ok(true);
    try {
      authorize(request, role, snapshot());
      switch (request.command_case()) {
        case ControlRequest::kConfigure:
          on_loop([&] { configure(request.configure().config_json()); });
          break;
        case ControlRequest::kStart: {
          std::string token;
          on_loop([&] {
            start(request.start().session_id());
            token = session_token;
          });
          reply.set_session_token(token);
          break;
        }
        case ControlRequest::kStop: request_stop(); break;
        case ControlRequest::kStatus: break;
        case ControlRequest::kGetReconstruction: fill_reconstruction(snapshot(), &reply); break;
        default: throw std::invalid_argument("empty control request: no command set");
      }
    } catch (const Unauthorized& e) {
      reply.set_ok(false);
      reply.set_error(e.what());
    } catch (const std::exception& e) {
      reply.set_ok(false);
      reply.set_error(e.what());
      health.increment(counters::kControlRequestsRejected);
    }
    const Published now = snapshot();
    reply.set_state(now.state);
    fill_status(now, reply.mutable_status());
    if (now.state == ControlReply::ERROR && reply.error().empty()) reply.set_error(now.error);
    return reply;
  }

  // `loop_command`: set when the request is one the loop runs (configure, start).
  std::string handle_bytes(const std::string& bytes, Role role, bool* loop_command) {
    const bool json = is_json_request(bytes);
    ControlRequest request;
    std::string malformed;
    try {
      request = decode_control_request(bytes);
    } catch (const std::exception& e) {
      malformed = json ? std::string("bad JSON request: ") + e.what() : e.what();
    }
    ControlReply reply;
    if (!malformed.empty()) {
      health.increment(counters::kControlRequestsMalformed);
      log_malformed_once(malformed);
      reply.set_ok(false);
      reply.set_error(malformed);
      const Published now = snapshot();
      reply.set_state(now.state);
      fill_status(now, reply.mutable_status());
    } else {
      *loop_command = request.command_case() == ControlRequest::kConfigure ||
                      request.command_case() == ControlRequest::kStart;
      reply = handle(request, role);
    }
    // Errors may quote a client's bytes (a parser's "last read" can end inside a character).
    reply.set_error(to_valid_utf8(reply.error()));
    return json ? reply_to_json(reply) : reply.SerializeAsString();
  }

  // Malformed requests may come in floods; the counter has them all, the log the first.
  bool logged_malformed = false;
  void log_malformed_once(const std::string& why) {
    if (logged_malformed) return;
    logged_malformed = true;
    log::warn("control_request_malformed",
              {{"error", why},
               {"note", "logged once; counted in " + std::string(counters::kControlRequestsMalformed)}});
  }

  // On the control server's thread. Status, stop and get_reconstruction are answered here from
  // what the loop published, so they never wait for the loop or the worker; configure and start
  // run on the loop and are waited for. A slow reply of the first kind is counted: it would
  // mean the control plane waited on something after all.
  std::string answer(const std::string& bytes, const std::string& user_id) {
    const auto received = Clock::now();
    std::string reply;
    bool waits_for_loop = false;
    const Role role = zap ? ZapAuthenticator::role_of(user_id) : Role::kOperator;
    try {
      reply = handle_bytes(bytes, role, &waits_for_loop);
    } catch (const std::exception& e) {
      log::error("control_request_failed", {{"error", e.what()}});
      ControlReply r;
      r.set_ok(false);
      r.set_error(to_valid_utf8(std::string("internal error answering the request: ") + e.what()));
      r.set_state(snapshot().state);
      reply = is_json_request(bytes) ? reply_to_json(r) : r.SerializeAsString();
    }
    if (!waits_for_loop && Clock::now() - received > std::chrono::milliseconds(10))
      health.increment(counters::kControlRepliesSlow);
    return stopping ? std::string() : reply;
  }

  // On the HTTP thread, from what the loop published, as the control thread answers status.
  std::string metrics_text() {
    const Published now = snapshot();
    wire::Status status;
    fill_status(now, &status);
    MetricsSnapshot m;
    m.state = state_name(now.state);
    m.counters.insert(status.counters().begin(), status.counters().end());
    m.sub_sequences = status.sub_sequence();
    m.positions_issued = status.positions_issued();
    m.frames_received = status.frames_received();
    m.frames_recorded = status.frames_recorded();
    m.disk_free_bytes = disk_free_bytes(now.recorder_directory);
    m.latencies = latencies.snapshot();
    return prometheus_text(m);
  }

  // The live page's events, on the HTTP thread only: rebuilt when what they show changed.
  struct LiveCache {
    std::shared_ptr<const std::string> status;
    std::shared_ptr<const std::string> reconstruction;
    std::uint64_t version = 0;
    ReconstructionEvents events;
  } live_cache;

  HttpServer::LiveEvents live_events() {
    Published now;
    wire::Status status;
    SessionProgress p;
    {
      LoopLockScope scope;  // the reads under the loop's locks; the encoding below at idle priority
      now = snapshot();
      fill_status(now, &status);
      std::lock_guard lock(progress_mutex);
      p = progress;
    }
    LiveStatus s;
    s.state = state_name(now.state);
    s.error = now.error;
    s.session_id = now.session_id;
    s.sub_sequences = status.sub_sequence();
    s.positions_issued = status.positions_issued();
    s.position_budget = p.position_budget;
    s.frames_received = status.frames_received();
    s.frames_recorded = status.frames_recorded();
    s.dose_e_per_A2 = p.dose_e_per_A2;
    s.disk_free_bytes = disk_free_bytes(now.recorder_directory);
    s.counters.insert(status.counters().begin(), status.counters().end());
    std::string text = status_event(s);
    if (!live_cache.status || *live_cache.status != text)
      live_cache.status = std::make_shared<const std::string>(std::move(text));
    if (p.version != live_cache.version || !live_cache.reconstruction) {
      live_cache.version = p.version;
      LiveReconstruction r{now.session_id, p.sub_sequences, p.potential, p.completed, p.in_flight};
      live_cache.reconstruction = std::make_shared<const std::string>(live_cache.events.event(r));
    }
    return {live_cache.status, live_cache.reconstruction};
  }

  // A page's role, by the control socket's rules (README, Security): without CURVE every client
  // on this machine is an operator; with it, a page holds no key, so it is an observer unless it
  // holds the running session's token, which gives the controller's right to stop it.
  Role page_role(const std::string& bearer, const Published& now, std::string* why) {
    if (!zap) {
      *why = "without CURVE keys every client on this machine is an operator";
      return Role::kOperator;
    }
    if (!bearer.empty() && active(now.state) && bearer == now.session_token) {
      *why = "holds the token of session " + now.session_id;
      return Role::kController;
    }
    *why = "with CURVE keys a page may stop only the session whose token it holds (#token=...)";
    return Role::kObserver;
  }

  HttpServer::Rights viewer_rights(const std::string& bearer) {
    const Published now = snapshot();
    HttpServer::Rights rights;
    const Role role = page_role(bearer, now, &rights.why);
    rights.role = role_name(role);
    rights.can_stop = role != Role::kObserver && now.state == ControlReply::RUNNING;
    return rights;
  }

  HttpServer::Reply http_stop(const std::string& bearer) {
    const Published now = snapshot();
    nlohmann::json out;
    if (now.state != ControlReply::RUNNING) {
      out = {{"ok", false}, {"error", std::string("nothing to stop: the daemon is ") + state_name(now.state)}};
      return {409, out.dump()};
    }
    std::string why;
    const Role role = page_role(bearer, now, &why);
    ControlRequest request;
    request.mutable_stop()->set_session_token(bearer);
    const ControlReply reply = handle(request, role);
    if (reply.ok())
      log::info("stop_requested", {{"session", now.session_id}, {"by", "live page"}, {"role", role_name(role)}});
    out = {{"ok", reply.ok()}, {"state", state_name(reply.state())}};
    if (!reply.ok()) out["error"] = to_valid_utf8(reply.error());
    return {reply.ok() ? 200 : 403, out.dump()};
  }

  void shut_down_threads() {
    stopping = true;
    http.reset();  // first: it reads what the others own
    if (control) control->stop();
    if (ingest) ingest->stop();
    session_io.stop();
    if (session_thread.joinable()) session_thread.join();
  }

  // --http: /metrics and the live page. The last member, so that it is destroyed first: its thread reads the
  // members above.
  std::optional<HttpServer> http;
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& d = *impl_;
  const ControlConfig defaults = d.options.initial_config ? d.options.initial_config->control : ControlConfig{};
  const std::string control = d.options.control_endpoint.empty() ? defaults.endpoint : d.options.control_endpoint;
  const std::string events = d.options.events_endpoint.empty() ? defaults.events_endpoint : d.options.events_endpoint;
  const CurveSetup curve = load_curve_setup(
      d.options.server_key.empty() ? defaults.server_key : d.options.server_key,
      d.options.authorized_keys.empty() ? defaults.authorized_keys : d.options.authorized_keys,
      {control, events});
  if (curve.server)
    d.zap.emplace(d.context, curve.clients, [&d](const std::string& why) {
      d.health.reject(counters::kControlConnectionsUnauthorized, why);
    });
  try {
    d.control.emplace(d.context, control, curve.server);
    d.events.emplace(d.context, events, curve.server);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("cannot bind the control sockets (" + control + ", " + events +
                             "): " + e.what() + "; is another ptypilot serve running?");
  }
  std::error_code ec;
  d.recorder_root = std::filesystem::canonical(
      d.options.recorder_root.empty() ? std::filesystem::current_path()
                                      : std::filesystem::path(d.options.recorder_root),
      ec);
  if (ec || !std::filesystem::is_directory(d.recorder_root))
    throw std::runtime_error("the recorder root '" + d.options.recorder_root +
                             "' is not a directory (serve --recorder-root DIR): create it first");
  if (d.options.initial_config) {
    ServeConfig c = d.confined(*d.options.initial_config);
    if (!d.options.detector_uri.empty()) c.detector = apply_detector_uri(c.detector, d.options.detector_uri);
    d.connection = make_detector_connection(d.context, c.detector, c.session.probe.detector_side_px(),
                                            parse_pixel_type(c.detector.dtype),
                                            static_cast<std::uint64_t>(c.session.total_positions));
    d.config = std::move(c);
    d.state = ControlReply::CONFIGURED;
  }
  d.recover_orphans(d.config ? d.config->recorder.directory
                             : d.confined(ServeConfig{}).recorder.directory);
  d.publish();
  // Before the worker thread: a refused endpoint throws out of here with nothing to join.
  if (!d.options.http_endpoint.empty())
    d.http.emplace(d.options.http_endpoint,
                   HttpServer::Routes{
                       .metrics = [&d] { return d.metrics_text(); },
                       .live = [&d] { return d.live_events(); },
                       .rights = [&d](const std::string& bearer) { return d.viewer_rights(bearer); },
                       .stop = [&d](const std::string& bearer) { return d.http_stop(bearer); },
                       .loop_deciding = [&d] { return d.deciding.load(std::memory_order_relaxed); }});
  d.session_thread = std::thread([&d] { d.session_io.run(); });
}

Daemon::~Daemon() {
  shutdown();
  impl_->shut_down_threads();
}

std::string Daemon::control_endpoint() const { return impl_->control->bound_endpoint(); }
std::string Daemon::events_endpoint() const { return impl_->events->bound_endpoint(); }
std::string Daemon::http_url() const { return impl_->http ? impl_->http->url() : ""; }
double Daemon::http_cpu_seconds() const { return impl_->http ? impl_->http->cpu_seconds() : 0.0; }

void Daemon::shutdown() {
  impl_->stopping = true;
  impl_->io.stop();
}

int Daemon::run() {
  Impl& d = *impl_;
  d.signals.async_wait([&d](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log::info("shutdown_signal", {{"signal", signal}});
    d.shutting_down = true;
    if (active(d.state)) {
      // finish_session stops the loop once the file is closed.
      d.end_session(false, "daemon shut down by signal " + std::to_string(signal));
      return;
    }
    d.stopping = true;
    d.io.stop();
  });
  d.arm_watchdog();
  d.control->start([&d](const std::string& bytes, const std::string& user_id) {
    return d.answer(bytes, user_id);
  });
  log::info("serving", {{"control", d.control->bound_endpoint()},
                        {"events", d.events->bound_endpoint()},
                        {"curve", d.zap.has_value()},
                        {"state", state_name(d.state)},
                        {"recorder_root", d.recorder_root.string()}});
  d.io.run();
  d.shut_down_threads();
  return 0;
}

}  // namespace ptypilot
