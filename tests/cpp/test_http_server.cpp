// The live page's server holds its viewers' events while the loop is deciding, so that neither
// its sends nor the kernel's work on them fall inside a decision, and sends them once the loop is
// done; a loop stuck in a decision still shows, after at most 250 ms. A plain socket is the viewer.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "http_server.hpp"

namespace ptypilot {
namespace {

using Clock = std::chrono::steady_clock;

// What the server's live route returns: a status event whose text the test sets.
struct LiveState {
  std::mutex mutex;
  std::shared_ptr<const std::string> status;
  void set(const std::string& data) {
    std::lock_guard lock(mutex);
    status = std::make_shared<const std::string>("event: status\ndata: " + data + "\n\n");
  }
  HttpServer::LiveEvents events() {
    std::lock_guard lock(mutex);
    return {status, nullptr};
  }
};

class ViewerSocket {
 public:
  explicit ViewerSocket(const std::string& url) {
    const auto colon = url.rfind(':');
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(std::stoi(url.substr(colon + 1))));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    const std::string request = "GET /live/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    REQUIRE(send(fd_, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
  }
  ~ViewerSocket() { close(fd_); }
  ViewerSocket(const ViewerSocket&) = delete;
  ViewerSocket& operator=(const ViewerSocket&) = delete;

  // Reads until `text` has arrived (true) or `limit` has passed without it (false).
  bool wait_for(const std::string& text, std::chrono::milliseconds limit) {
    const auto until = Clock::now() + limit;
    while (received_.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[4096];
      const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return false;
      received_.append(buffer, static_cast<std::size_t>(n));
    }
    return true;
  }

 private:
  int fd_ = -1;
  std::string received_;
};

}  // namespace

TEST_CASE("the live page holds its events while the loop decides and for 250 ms at most", "[live]") {
  LiveState state;
  state.set("v0");
  std::atomic<bool> deciding{false};
  HttpServer server("127.0.0.1:0",
                    HttpServer::Routes{.metrics = [] { return std::string(); },
                                       .live = [&state] { return state.events(); },
                                       .rights = [](const std::string&) { return HttpServer::Rights{}; },
                                       .stop = [](const std::string&) { return HttpServer::Reply{}; },
                                       .loop_deciding = [&deciding] { return deciding.load(); }});
  ViewerSocket viewer(server.url());
  REQUIRE(viewer.wait_for("data: v0", std::chrono::seconds(10)));

  // A decision starts, then the state changes: nothing is sent while the loop decides. (The
  // page ticks every 100 ms; 150 ms is well inside the 250 ms it may hold.)
  deciding = true;
  state.set("v1");
  CHECK_FALSE(viewer.wait_for("data: v1", std::chrono::milliseconds(150)));
  // The decision ends: the next tick sends the new state.
  deciding = false;
  CHECK(viewer.wait_for("data: v1", std::chrono::seconds(10)));

  // A loop that stays in a decision: the page holds for 250 ms, then sends anyway.
  deciding = true;
  const auto changed = Clock::now();
  state.set("v2");
  REQUIRE(viewer.wait_for("data: v2", std::chrono::seconds(10)));
  CHECK(Clock::now() - changed >= std::chrono::milliseconds(245));
}

}  // namespace ptypilot
