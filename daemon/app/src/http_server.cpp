#include "http_server.hpp"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>

#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr std::uint32_t kHeaderLimitBytes = 8 * 1024;
// A body is read only to be refused (405); a larger one closes the connection unanswered.
constexpr std::uint64_t kBodyLimitBytes = 1024;

tcp::endpoint parse_loopback_endpoint(const std::string& endpoint) {
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size())
    throw std::invalid_argument("--http: '" + endpoint + "' is not HOST:PORT");
  std::string host = endpoint.substr(0, colon);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code error;
  const asio::ip::address address = asio::ip::make_address(host, error);
  if (error) throw std::invalid_argument("--http: '" + host + "' is not an IP address");
  if (!address.is_loopback())
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
  return {address, static_cast<unsigned short>(port)};
}

// One request, one response, then the connection closes (Prometheus opens one per scrape).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const HttpServer::Handler& metrics)
      : stream_(std::move(socket)), metrics_(metrics) {
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
    if (request.target() != "/metrics") {
      reply(http::status::not_found, "text/plain; charset=utf-8", "not found: try /metrics\n");
    } else if (request.method() != http::verb::get && request.method() != http::verb::head) {
      response_.set(http::field::allow, "GET, HEAD");
      reply(http::status::method_not_allowed, "text/plain; charset=utf-8", "GET /metrics\n");
    } else {
      try {
        reply(http::status::ok, "text/plain; version=0.0.4; charset=utf-8", metrics_(),
              request.method() == http::verb::head);
      } catch (const std::exception& e) {
        reply(http::status::internal_server_error, "text/plain; charset=utf-8",
              std::string("metrics failed: ") + e.what() + "\n");
      }
    }
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
  beast::flat_buffer buffer_;
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> response_;
  const HttpServer::Handler& metrics_;
};

}  // namespace

struct HttpServer::Impl {
  Impl(const tcp::endpoint& endpoint, Handler handler)
      : metrics(std::move(handler)), acceptor(io) {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
    accept();
    thread = std::thread([this] { io.run(); });
  }

  ~Impl() {
    work.reset();
    asio::post(io, [this] {
      boost::system::error_code ignored;
      acceptor.close(ignored);
      io.stop();
    });
    if (thread.joinable()) thread.join();
  }

  void accept() {
    acceptor.async_accept([this](boost::system::error_code error, tcp::socket socket) {
      if (error == asio::error::operation_aborted) return;
      if (!error) std::make_shared<Connection>(std::move(socket), metrics)->start();
      accept();
    });
  }

  Handler metrics;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{io.get_executor()};
  tcp::acceptor acceptor;
  std::thread thread;
};

HttpServer::HttpServer(const std::string& endpoint, Handler metrics) {
  const tcp::endpoint where = parse_loopback_endpoint(endpoint);
  try {
    impl_ = std::make_unique<Impl>(where, std::move(metrics));
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("--http: cannot listen on " + endpoint + ": " + e.code().message());
  }
  log::info("http_listening", {{"url", url()}, {"paths", "/metrics"}});
}

HttpServer::~HttpServer() = default;

std::string HttpServer::url() const {
  const tcp::endpoint local = impl_->acceptor.local_endpoint();
  const std::string host = local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                                   : local.address().to_string();
  return "http://" + host + ":" + std::to_string(local.port());
}

}  // namespace ptypilot
