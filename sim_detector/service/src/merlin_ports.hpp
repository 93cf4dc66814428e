// The simulated Merlin's two TCP ports (ptypilot/wire/merlin.hpp), as DetectorService serves
// them when its protocol is merlin. Both listen, like a Merlin PC's; nothing blocks: the service's
// poll loop watches pollitems() and calls the handlers. Internal to sim_detector/service.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <zmq.hpp>

namespace ptypilot::sim {

// "tcp://HOST:PORT" (PORT may be "*": any free one) into a listening socket; throws
// std::invalid_argument for another form, std::runtime_error when it cannot be bound.
int listen_tcp(const std::string& endpoint, std::string* bound);

// The data port: one client at a time (a new one replaces the old). Messages are whole byte
// strings; one that is taken is sent in full, in order.
class MerlinDataPort {
 public:
  explicit MerlinDataPort(const std::string& endpoint);
  ~MerlinDataPort();
  const std::string& bound() const { return bound_; }
  // False (nothing taken) while no client is connected or the last message is still going out.
  bool send(const zmq::message_t& message);
  // Poll items: the listener (accept) and the client (readable: it left; writable: flush).
  void add_pollitems(std::vector<zmq_pollitem_t>& items, bool want_write) const;
  void handle(const std::vector<zmq_pollitem_t>& items, std::size_t first);
  bool connected() const { return client_ >= 0; }

 private:
  void flush();
  void drop_client();
  int listener_ = -1;
  int client_ = -1;
  std::string bound_;
  std::vector<std::byte> out_;
  std::size_t out_sent_ = 0;
};

// The control port: any number of clients, each request answered on its connection. `on_cmd`
// runs a CMD and returns its status (0 ok, 1 busy, 2 not recognised); SET stores the value
// (status 0), GET answers it (DETECTORSTATUS from `status`).
class MerlinControlPort {
 public:
  MerlinControlPort(const std::string& endpoint, std::function<int(const std::string&)> on_cmd,
                    std::function<int()> status);
  ~MerlinControlPort();
  const std::string& bound() const { return bound_; }
  std::string value(const std::string& name, const std::string& otherwise) const;
  void add_pollitems(std::vector<zmq_pollitem_t>& items) const;
  void handle(const std::vector<zmq_pollitem_t>& items, std::size_t first);

 private:
  struct Client {
    int fd;
    std::vector<std::byte> in;
  };
  void serve(Client& client);
  int listener_ = -1;
  std::string bound_;
  std::vector<Client> clients_;
  std::map<std::string, std::string> values_;
  std::function<int(const std::string&)> on_cmd_;
  std::function<int()> status_;
};

}  // namespace ptypilot::sim
