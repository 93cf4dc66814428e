#include "merlin_ports.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "ptypilot/wire/log.hpp"
#include "ptypilot/wire/merlin.hpp"

namespace ptypilot::sim {

int listen_tcp(const std::string& endpoint, std::string* bound) {
  const auto colon = endpoint.rfind(':');
  if (!endpoint.starts_with("tcp://") || colon == std::string::npos || colon < 6)
    throw std::invalid_argument("'" + endpoint + "': a Merlin port is tcp://HOST:PORT");
  std::string host = endpoint.substr(6, colon - 6);
  const std::string port = endpoint.substr(colon + 1);
  if (host == "*") host = "0.0.0.0";
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port == "*" ? "0" : port.c_str(), &hints, &found) != 0 || !found)
    throw std::invalid_argument("'" + endpoint + "': cannot resolve its host or port");
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool ok = fd >= 0 && ::bind(fd, found->ai_addr, found->ai_addrlen) == 0 && ::listen(fd, 8) == 0;
  ::freeaddrinfo(found);
  if (!ok) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot listen on " + endpoint + ": " + why);
  }
  sockaddr_in address{};
  socklen_t size = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
  *bound = "tcp://" + std::string(text) + ":" + std::to_string(ntohs(address.sin_port));
  return fd;
}

namespace {

int accept_client(int listener) {
  const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

zmq_pollitem_t fd_item(int fd, short events) { return {nullptr, fd, events, 0}; }

}  // namespace

// --- data --------------------------------------------------------------------------------------

MerlinDataPort::MerlinDataPort(const std::string& endpoint) {
  listener_ = listen_tcp(endpoint, &bound_);
}

MerlinDataPort::~MerlinDataPort() {
  drop_client();
  if (listener_ >= 0) ::close(listener_);
}

void MerlinDataPort::drop_client() {
  if (client_ >= 0) ::close(client_);
  client_ = -1;
  out_.clear();
  out_sent_ = 0;
}

bool MerlinDataPort::send(const zmq::message_t& message) {
  if (client_ < 0) return false;
  flush();
  if (client_ < 0 || out_sent_ < out_.size()) return false;
  const auto* p = static_cast<const std::byte*>(message.data());
  out_.assign(p, p + message.size());
  out_sent_ = 0;
  flush();
  return true;
}

void MerlinDataPort::flush() {
  while (client_ >= 0 && out_sent_ < out_.size()) {
    const ssize_t n = ::send(client_, out_.data() + out_sent_, out_.size() - out_sent_,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_sent_ += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return;
    } else {
      log::warn("merlin_data_client_lost", {{"error", std::strerror(errno)}});
      drop_client();
    }
  }
}

void MerlinDataPort::add_pollitems(std::vector<zmq_pollitem_t>& items, bool want_write) const {
  items.push_back(fd_item(listener_, ZMQ_POLLIN));
  const bool pending = out_sent_ < out_.size();
  items.push_back(fd_item(client_, static_cast<short>(client_ < 0 ? 0
                                                      : ZMQ_POLLIN | ((want_write || pending) ? ZMQ_POLLOUT : 0))));
}

void MerlinDataPort::handle(const std::vector<zmq_pollitem_t>& items, std::size_t first) {
  if (items[first].revents & ZMQ_POLLIN) {
    const int fd = accept_client(listener_);
    if (fd >= 0) {
      drop_client();  // a Merlin streams to one client: the newest
      client_ = fd;
      log::info("merlin_data_client", {{"port", bound_}});
    }
  }
  const zmq_pollitem_t& c = items[first + 1];
  if (client_ >= 0 && c.fd == client_ && (c.revents & ZMQ_POLLIN)) {
    char sink[4096];
    const ssize_t n = ::recv(client_, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) drop_client();
  }
  if (client_ >= 0 && c.fd == client_ && (c.revents & ZMQ_POLLOUT)) flush();
}

// --- control -----------------------------------------------------------------------------------

MerlinControlPort::MerlinControlPort(const std::string& endpoint,
                                     std::function<int(const std::string&)> on_cmd,
                                     std::function<int()> status)
    : on_cmd_(std::move(on_cmd)), status_(std::move(status)) {
  listener_ = listen_tcp(endpoint, &bound_);
}

MerlinControlPort::~MerlinControlPort() {
  for (const Client& c : clients_) ::close(c.fd);
  if (listener_ >= 0) ::close(listener_);
}

std::string MerlinControlPort::value(const std::string& name, const std::string& otherwise) const {
  const auto it = values_.find(name);
  return it == values_.end() ? otherwise : it->second;
}

void MerlinControlPort::add_pollitems(std::vector<zmq_pollitem_t>& items) const {
  items.push_back(fd_item(listener_, ZMQ_POLLIN));
  for (const Client& c : clients_) items.push_back(fd_item(c.fd, ZMQ_POLLIN));
}

void MerlinControlPort::handle(const std::vector<zmq_pollitem_t>& items, std::size_t first) {
  std::vector<int> gone;
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    const zmq_pollitem_t& item = items[first + 1 + i];
    if (!(item.revents & ZMQ_POLLIN)) continue;
    Client& c = clients_[i];
    char chunk[4096];
    const ssize_t n = ::recv(c.fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      gone.push_back(c.fd);
      continue;
    }
    if (n < 0) continue;
    const auto* b = reinterpret_cast<const std::byte*>(chunk);
    c.in.insert(c.in.end(), b, b + n);
    serve(c);
    if (c.in.size() > merlin::kMaxHeaderBytes) gone.push_back(c.fd);
  }
  for (int fd : gone) {
    ::close(fd);
    std::erase_if(clients_, [fd](const Client& c) { return c.fd == fd; });
  }
  if (items[first].revents & ZMQ_POLLIN) {
    const int fd = accept_client(listener_);
    if (fd >= 0) clients_.push_back({fd, {}});
  }
}

void MerlinControlPort::serve(Client& c) {
  while (true) {
    std::uint64_t length = 0;
    std::string why;
    const merlin::PrefixStatus s = merlin::read_prefix(c.in, &length, &why);
    if (s == merlin::PrefixStatus::kNeedMore) return;
    if (s == merlin::PrefixStatus::kBad) {
      log::warn("merlin_control_garbled", {{"error", why}});
      c.in.clear();
      return;
    }
    if (c.in.size() < merlin::kPrefixBytes + length) return;
    const std::string body(reinterpret_cast<const char*>(c.in.data()) + merlin::kPrefixBytes + 1,
                           length - 1);
    c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(merlin::kPrefixBytes + length));
    std::vector<std::string> f = merlin::split_body(body);
    std::vector<std::string> answer;
    if (f.size() >= 3 && f[0] == "SET") {
      values_[f[1]] = f[2];
      answer = {"SET", f[1], "0"};
    } else if (f.size() >= 2 && f[0] == "GET") {
      const std::string v = f[1] == "DETECTORSTATUS" ? std::to_string(status_()) : value(f[1], "0");
      answer = {"GET", f[1], v, "0"};
    } else if (f.size() >= 2 && f[0] == "CMD") {
      answer = {"CMD", f[1], std::to_string(on_cmd_(f[1]))};
    } else {
      answer = {f.empty() ? std::string("?") : f[0], f.size() > 1 ? f[1] : std::string("?"), "2"};
    }
    log::info("merlin_control", {{"request", body}, {"status", answer.back()}});
    const std::string reply = merlin::control_message(answer);
    // Answers are short; a client that does not read them is dropped at its next request.
    [[maybe_unused]] const ssize_t n = ::send(c.fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

}  // namespace ptypilot::sim
