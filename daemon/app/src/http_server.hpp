// The daemon's HTTP endpoint (Boost.Beast): `GET /metrics` for facility monitoring
// (metrics.hpp). It runs on a thread and io_context of its own and reads only snapshots, so a
// scrape never waits for the event loop or the session worker, and they never wait for it.
//
// It binds loopback addresses only. Without CURVE the control socket is reachable from this
// machine alone (README, Security); the HTTP endpoint keeps that rule and has no keys of its
// own, so a monitoring system on another machine reaches it through a proxy or a tunnel that
// does its own authentication.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace ptypilot {

class HttpServer {
 public:
  using Handler = std::function<std::string()>;  // the body of GET /metrics

  // `endpoint` is HOST:PORT (port 0: any free one). Throws std::invalid_argument for a
  // malformed or non-loopback endpoint, std::runtime_error if it cannot bind.
  HttpServer(const std::string& endpoint, Handler metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // http://HOST:PORT, with the port actually bound.
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ptypilot
