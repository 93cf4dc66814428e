#include "http_server.hpp"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "live_assets.hpp"
#include "ptypilot/app/daemon.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr std::uint32_t kHeaderLimitBytes = 8 * 1024;
// No request has a body (POST /live/stop has none); a larger one closes the connection unanswered.
constexpr std::uint64_t kBodyLimitBytes = 1024;
// How often the viewers' events are brought up to date while anyone watches.
constexpr auto kLiveTick = std::chrono::milliseconds(100);
// While the loop decides, a tick looks again this often, for at most kMaxHold: the page's sends,
// and the kernel's work on them, then fall between decisions, not inside them.
constexpr auto kHoldRetry = std::chrono::milliseconds(5);
constexpr auto kMaxHold = std::chrono::milliseconds(250);
// A comment line this often keeps proxies from closing an idle stream and finds dead viewers.
constexpr int kTicksPerKeepAlive = 150;
// A viewer that has not taken an event in this long is disconnected.
constexpr auto kViewerWriteTimeout = std::chrono::seconds(30);

// A host without its port, an IP address (IPv6 in brackets) or localhost; none for a name.
std::optional<asio::ip::address> address_of(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code error;
  const asio::ip::address address = asio::ip::make_address(host, error);
  if (error) return std::nullopt;
  return address;
}

tcp::endpoint parse_loopback_endpoint(const std::string& endpoint) {
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size())
    throw std::invalid_argument("--http: '" + endpoint + "' is not HOST:PORT");
  const std::string host = endpoint.substr(0, colon);
  const std::optional<asio::ip::address> address = address_of(host);
  if (!address) throw std::invalid_argument("--http: '" + host + "' is not an IP address");
  if (!address->is_loopback())
    throw std::invalid_argument("--http: " + host + " is not a loopback address; the HTTP "
                                "endpoint has no authentication, so it serves this machine only "
                                "(README, Monitoring)");
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(endpoint.substr(colon + 1), &used);
    if (used != endpoint.size() - colon - 1) throw std::invalid_argument("trailing characters");
  } catch (const std::exception&) {
    throw std::invalid_argument("--http: '" + endpoint.substr(colon + 1) + "' is not a port");
  }
  if (port > 65535) throw std::invalid_argument("--http: port " + std::to_string(port) + " > 65535");
  return {*address, static_cast<unsigned short>(port)};
}

// A Host header that names this machine. Anything else is a page of another site that a DNS
// name pointed at 127.0.0.1 (DNS rebinding): it must not read the page or press stop.
bool host_is_loopback(std::string_view host) {
  if (host.empty()) return true;  // HTTP/1.0 sends none
  // The port goes: after the bracket of an IPv6 address, else after the last colon.
  const auto bracket = host.find(']');
  const auto colon = host.rfind(':');
  if (bracket != std::string_view::npos) host = host.substr(0, bracket + 1);
  else if (colon != std::string_view::npos) host = host.substr(0, colon);
  const std::optional<asio::ip::address> address = address_of(std::string(host));
  return address && address->is_loopback();
}

std::string bearer_of(const http::request<http::string_body>& request) {
  const auto it = request.find(http::field::authorization);
  if (it == request.end()) return "";
  const std::string_view value(it->value().data(), it->value().size());
  constexpr std::string_view kScheme = "Bearer ";
  return value.substr(0, kScheme.size()) == kScheme ? std::string(value.substr(kScheme.size())) : "";
}

// Set on the server's thread once it runs at idle priority (LoopLockScope).
thread_local bool idle_priority = false;

}  // namespace

LoopLockScope::LoopLockScope() {
  if (!idle_priority) return;
  sched_param none{};
  raised_ = pthread_setschedparam(pthread_self(), SCHED_OTHER, &none) == 0;
}

LoopLockScope::~LoopLockScope() {
  if (!raised_) return;
  sched_param none{};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
}

class Viewer;

struct HttpServer::Impl {
  Impl(const tcp::endpoint& endpoint, Routes r) : routes(std::move(r)), acceptor(io), tick_timer(io) {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
    accept();
    thread = std::thread([this] {
      pthread_setname_np(pthread_self(), "ptypilot-http");  // as top -H and perf name it
      run_at_idle_priority();
      io.run();
    });
  }

  // The page and the scrapes must never slow the loop: on Linux this thread runs only on CPU
  // time that the loop's threads (reconstruction, policy, ingest) leave over. The loop never
  // waits on it, so the worst a busy machine does is delay the page.
  static void run_at_idle_priority() {
    sched_param none{};
    if (const int e = pthread_setschedparam(pthread_self(), SCHED_IDLE, &none); e != 0)
      log::warn("http_priority_unchanged", {{"error", std::strerror(e)},
                                            {"note", "the HTTP thread runs at normal priority"}});
    else
      idle_priority = true;
  }

  ~Impl();
  void accept();
  // The live page's events, on this thread only.
  void add_viewer(const std::shared_ptr<Viewer>& viewer);
  void remove_viewer(const Viewer* viewer);
  void tick();
  void refresh();

  Routes routes;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{io.get_executor()};
  tcp::acceptor acceptor;
  std::thread thread;

  std::vector<std::shared_ptr<Viewer>> viewers;
  std::atomic<std::size_t> viewer_count{0};
  asio::steady_timer tick_timer;
  bool ticking = false;
  int ticks = 0;
  std::chrono::steady_clock::time_point held_since{};  // when a tick first waited for the loop
  bool holding = false;
  LiveEvents last;
};

// One viewer of /live/events: a stream of server-sent events that never queues more than the
// newest event of each kind, so a slow viewer costs at most two events' memory and gets the
// latest state when it catches up.
class Viewer : public std::enable_shared_from_this<Viewer> {
 public:
  Viewer(tcp::socket socket, HttpServer::Impl& server)
      : socket_(std::move(socket)), server_(server), write_timer_(socket_.get_executor()) {}

  void start(unsigned version) {
    auto header = std::make_shared<std::string>(
        std::string(version == 10 ? "HTTP/1.0" : "HTTP/1.1") +
        " 200 OK\r\nServer: ptypilot\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n"
        // The browser's reconnection delay after a broken stream.
        "retry: 1000\n\n");
    pending_[kHeader] = std::move(header);
    write_next();
    // A viewer sends nothing after its request; a read that ends means it went away.
    socket_.async_read_some(asio::buffer(discard_), [self = shared_from_this()](
                                                        boost::system::error_code, std::size_t) {
      self->close();
    });
  }

  enum Slot { kHeader, kReconstruction, kStatus, kKeepAlive, kSlots };
  void push(Slot slot, std::shared_ptr<const std::string> event) {
    if (closed_ || !event) return;
    pending_[slot] = std::move(event);
    write_next();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    write_timer_.cancel();
    server_.remove_viewer(this);
  }

 private:
  void write_next() {
    if (writing_ || closed_) return;
    for (auto& p : pending_)
      if (p) {
        writing_ = std::move(p);
        break;
      }
    if (!writing_) return;
    write_timer_.expires_after(kViewerWriteTimeout);
    write_timer_.async_wait([weak = weak_from_this()](boost::system::error_code e) {
      if (auto self = weak.lock(); self && !e) self->close();
    });
    asio::async_write(socket_, asio::buffer(*writing_),
                      [self = shared_from_this()](boost::system::error_code error, std::size_t) {
                        self->writing_.reset();
                        self->write_timer_.cancel();
                        if (error) return self->close();
                        self->write_next();
                      });
  }

  tcp::socket socket_;
  HttpServer::Impl& server_;
  asio::steady_timer write_timer_;
  std::shared_ptr<const std::string> pending_[kSlots];
  std::shared_ptr<const std::string> writing_;
  char discard_[64];
  bool closed_ = false;
};

namespace {

// One request, one response, then the connection closes (Prometheus opens one per scrape); a
// request for /live/events becomes a Viewer.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server) {
    parser_.header_limit(kHeaderLimitBytes);
    parser_.body_limit(kBodyLimitBytes);
  }

  void start() {
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buffer_, parser_,
                     [self = shared_from_this()](beast::error_code e, std::size_t) { self->on_read(e); });
  }

 private:
  void on_read(beast::error_code error) {
    if (error) return;  // a client that went away or sent garbage: nothing to answer
    const auto& request = parser_.get();
    response_.version(request.version());
    response_.keep_alive(false);
    response_.set(http::field::server, "ptypilot");
    response_.set(http::field::cache_control, "no-store");
    response_.set("X-Content-Type-Options", "nosniff");
    const std::string_view target(request.target().data(), request.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    const http::verb method = request.method();
    const bool read = method == http::verb::get || method == http::verb::head;
    const auto host = request.find(http::field::host);
    if (!host_is_loopback(host == request.end() ? std::string_view()
                                                 : std::string_view(host->value().data(), host->value().size())))
      return reply(http::status::forbidden, "text/plain; charset=utf-8",
                   "forbidden: the Host header must name this machine (127.0.0.1, [::1] or "
                   "localhost)\n");

    if (path == "/metrics") {
      if (!read) return refuse_method("GET, HEAD");
      try {
        std::string text;
        {
          LoopLockScope scope;
          text = server_.routes.metrics();
        }
        return reply(http::status::ok, "text/plain; version=0.0.4; charset=utf-8", std::move(text),
                     method == http::verb::head);
      } catch (const std::exception& e) {
        return reply(http::status::internal_server_error, "text/plain; charset=utf-8",
                     std::string("metrics failed: ") + e.what() + "\n");
      }
    }
    if (!server_.routes.live)
      return reply(http::status::not_found, "text/plain; charset=utf-8", "not found: try /metrics\n");
    if (path == "/live/events") {
      if (method != http::verb::get) return refuse_method("GET");
      if (server_.viewers.size() >= kMaxLiveViewers)
        return reply(http::status::service_unavailable, "text/plain; charset=utf-8",
                     "too many viewers (" + std::to_string(kMaxLiveViewers) + ")\n");
      auto viewer = std::make_shared<Viewer>(stream_.release_socket(), server_);
      viewer->start(request.version());
      server_.add_viewer(viewer);
      return;
    }
    if (path == "/live/role") {
      if (!read) return refuse_method("GET, HEAD");
      HttpServer::Rights r;
      {
        LoopLockScope scope;
        r = server_.routes.rights(bearer_of(request));
      }
      const nlohmann::json body = {{"role", r.role}, {"can_stop", r.can_stop}, {"why", r.why}};
      return reply(http::status::ok, "application/json", body.dump() + "\n",
                   method == http::verb::head);
    }
    if (path == "/live/stop") {
      if (method != http::verb::post) return refuse_method("POST");
      // A form or script of another site cannot set this header without the CORS preflight
      // that this server never grants, so a stop comes from the page (or curl) only.
      if (request["X-Ptypilot-Action"] != "stop")
        return reply(http::status::bad_request, "application/json",
                     "{\"ok\": false, \"error\": \"a stop needs the header X-Ptypilot-Action: stop\"}\n");
      const auto origin = request.find(http::field::origin);
      if (origin != request.end() && host != request.end() &&
          std::string(origin->value()) != "http://" + std::string(host->value()))
        return reply(http::status::forbidden, "application/json",
                     "{\"ok\": false, \"error\": \"not authorized: a stop from another origin\"}\n");
      HttpServer::Reply r;
      {
        LoopLockScope scope;
        r = server_.routes.stop(bearer_of(request));
      }
      return reply(static_cast<http::status>(r.status), "application/json", r.json);
    }
    for (const LiveAsset& asset : live_assets())
      if (path == asset.path) {
        if (!read) return refuse_method("GET, HEAD");
        return reply(http::status::ok, std::string(asset.content_type).c_str(), std::string(asset.body),
                     method == http::verb::head);
      }
    reply(http::status::not_found, "text/plain; charset=utf-8",
          "not found: the live page is at /, the metrics at /metrics\n");
  }

  void refuse_method(const char* allowed) {
    response_.set(http::field::allow, allowed);
    reply(http::status::method_not_allowed, "text/plain; charset=utf-8",
          std::string("allowed: ") + allowed + "\n");
  }

  void reply(http::status status, const char* type, std::string body, bool head = false) {
    response_.result(status);
    response_.set(http::field::content_type, type);
    response_.content_length(body.size());
    if (!head) response_.body() = std::move(body);
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code, std::size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> response_;
};

}  // namespace

HttpServer::Impl::~Impl() {
  work.reset();
  asio::post(io, [this] {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    tick_timer.cancel();
    for (const auto& v : std::vector(viewers)) v->close();
    io.stop();
  });
  if (thread.joinable()) thread.join();
}

void HttpServer::Impl::accept() {
  acceptor.async_accept([this](boost::system::error_code error, tcp::socket socket) {
    if (error == asio::error::operation_aborted) return;
    if (!error) std::make_shared<Connection>(std::move(socket), *this)->start();
    accept();
  });
}

void HttpServer::Impl::add_viewer(const std::shared_ptr<Viewer>& viewer) {
  viewers.push_back(viewer);
  viewer_count = viewers.size();
  // The newcomer gets the current state now, not after the next change.
  refresh();
  viewer->push(Viewer::kStatus, last.status);
  viewer->push(Viewer::kReconstruction, last.reconstruction);
  if (!ticking) {
    ticking = true;
    tick_timer.expires_after(kLiveTick);
    tick_timer.async_wait([this](boost::system::error_code e) {
      if (!e) tick();
    });
  }
}

void HttpServer::Impl::remove_viewer(const Viewer* viewer) {
  std::erase_if(viewers, [viewer](const auto& v) { return v.get() == viewer; });
  viewer_count = viewers.size();
}

// The daemon's events, sent to every viewer where they changed.
void HttpServer::Impl::refresh() {
  LiveEvents now;
  try {
    now = routes.live();
  } catch (const std::exception& e) {
    log::warn("live_page_update_failed", {{"error", e.what()}});
    return;
  }
  const bool status_changed = now.status && now.status != last.status;
  const bool reconstruction_changed = now.reconstruction && now.reconstruction != last.reconstruction;
  if (now.status) last.status = now.status;
  if (now.reconstruction) last.reconstruction = now.reconstruction;
  for (const auto& v : std::vector(viewers)) {
    if (reconstruction_changed) v->push(Viewer::kReconstruction, last.reconstruction);
    if (status_changed) v->push(Viewer::kStatus, last.status);
  }
}

void HttpServer::Impl::tick() {
  if (viewers.empty()) {
    ticking = false;  // the next viewer starts it again; nobody watching costs nothing
    holding = false;
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (routes.loop_deciding && routes.loop_deciding()) {
    if (!holding) {
      held_since = now;
      holding = true;
    }
    if (now - held_since < kMaxHold) {
      tick_timer.expires_after(kHoldRetry);
      tick_timer.async_wait([this](boost::system::error_code e) {
        if (!e) tick();
      });
      return;
    }
  }
  holding = false;
  refresh();
  if (++ticks % kTicksPerKeepAlive == 0) {
    static const auto keep_alive = std::make_shared<const std::string>(": keep-alive\n\n");
    for (const auto& v : std::vector(viewers)) v->push(Viewer::kKeepAlive, keep_alive);
  }
  tick_timer.expires_after(kLiveTick);
  tick_timer.async_wait([this](boost::system::error_code e) {
    if (!e) tick();
  });
}

HttpServer::HttpServer(const std::string& endpoint, Routes routes) {
  const tcp::endpoint where = parse_loopback_endpoint(endpoint);
  try {
    impl_ = std::make_unique<Impl>(where, std::move(routes));
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("--http: cannot listen on " + endpoint + ": " + e.code().message());
  }
  log::info("http_listening", {{"url", url()},
                               {"paths", impl_->routes.live ? "/ (live page), /metrics" : "/metrics"}});
}

HttpServer::~HttpServer() = default;

std::string HttpServer::url() const {
  const tcp::endpoint local = impl_->acceptor.local_endpoint();
  const std::string host = local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                                   : local.address().to_string();
  return "http://" + host + ":" + std::to_string(local.port());
}

std::size_t HttpServer::viewers() const { return impl_->viewer_count; }

std::optional<clockid_t> HttpServer::cpu_clock() const {
  clockid_t clock{};
  if (pthread_getcpuclockid(impl_->thread.native_handle(), &clock) != 0) return std::nullopt;
  return clock;
}

double HttpServer::cpu_seconds() const {
  const std::optional<clockid_t> clock = cpu_clock();
  return clock ? thread_cpu_seconds(*clock) : 0.0;
}

double thread_cpu_seconds(clockid_t clock) {
  timespec t{};
  if (clock_gettime(clock, &t) != 0) return 0.0;
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace ptypilot
