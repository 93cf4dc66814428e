// The daemon's HTTP endpoint (Boost.Beast): `GET /metrics` for facility monitoring (metrics.hpp)
// and the live page for the operator (live_feed.hpp, daemon/app/live/). It runs on a thread and
// io_context of its own and reads only snapshots, so a scrape or a viewer never waits for the
// event loop or the session worker, and they never wait for it.
//
//   GET  /, /live.js, /live.css  the page, built into the binary
//   GET  /live/events            server-sent events: status and reconstruction (live_feed.hpp)
//   GET  /live/role              what this viewer may do: {"role", "can_stop", "why"}
//   POST /live/stop              stop the running session (X-Ptypilot-Action: stop)
//   GET  /metrics                Prometheus text exposition
//
// Its thread runs at idle priority (SCHED_IDLE), on what CPU time the loop leaves over, except
// while it reads the loop's shared state (LoopLockScope). metrics, rights and stop run whole
// in that scope; live does its own (it encodes at idle priority).
//
// It binds loopback addresses only. Without CURVE the control socket is reachable from this
// machine alone (README, Security); the HTTP endpoint keeps that rule and has no keys of its
// own, so a monitoring system on another machine reaches it through a proxy or a tunnel that
// does its own authentication. A viewer's rights come from the daemon (Routes::rights), by the
// control socket's rules; the bearer token is the session's token from its start reply.
#pragma once

#include <ctime>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace ptypilot {

// While alive, the HTTP thread runs at normal priority: around every read of what the loop
// shares under a lock (its published state, the progress, the counters). At idle priority the
// thread could be preempted holding such a lock and not run again while the machine is busy,
// and the loop's threads would then wait for it (priority inversion). Elsewhere a no-op.
class LoopLockScope {
 public:
  LoopLockScope();
  ~LoopLockScope();
  LoopLockScope(const LoopLockScope&) = delete;
  LoopLockScope& operator=(const LoopLockScope&) = delete;

 private:
  bool raised_ = false;
};

class HttpServer {
 public:
  struct LiveEvents {
    // The same pointer as before when nothing changed: only a new one is sent to the viewers.
    std::shared_ptr<const std::string> status;
    std::shared_ptr<const std::string> reconstruction;  // null before the first
  };
  struct Rights {
    std::string role;  // operator, controller, observer
    bool can_stop = false;
    std::string why;
  };
  struct Reply {
    int status = 200;
    std::string json;
  };
  struct Routes {
    std::function<std::string()> metrics;                       // the body of GET /metrics
    std::function<LiveEvents()> live;                           // every 100 ms while watched
    std::function<Rights(const std::string& bearer)> rights;    // bearer: "" when none
    std::function<Reply(const std::string& bearer)> stop;
    // Whether the loop is deciding now: the viewers' events wait until it is done (at most
    // 250 ms, so that a loop stuck in a decision still shows). May be empty.
    std::function<bool()> loop_deciding;
  };

  // `endpoint` is HOST:PORT (port 0: any free one). Throws std::invalid_argument for a
  // malformed or non-loopback endpoint, std::runtime_error if it cannot bind.
  HttpServer(const std::string& endpoint, Routes routes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // http://HOST:PORT, with the port actually bound.
  std::string url() const;
  // Viewers connected to /live/events now, and the CPU time the server's thread has used: what
  // `bench loop --viewers` compares with the decisions it could have slowed.
  std::size_t viewers() const;
  double cpu_seconds() const;
  // The CPU-time clock of the server's thread, for thread_cpu_seconds: unlike the server, it may
  // be read after the server is gone, and then reads 0.
  std::optional<clockid_t> cpu_clock() const;

  struct Impl;  // public for the connection classes of http_server.cpp, defined there only

 private:
  std::unique_ptr<Impl> impl_;
};

// CPU seconds a thread's CPU-time clock reads; 0 where it cannot be read (the thread has ended).
double thread_cpu_seconds(clockid_t clock);

}  // namespace ptypilot
