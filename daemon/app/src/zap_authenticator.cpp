#include "zap_authenticator.hpp"

#include <array>
#include <chrono>


namespace ptypilot {

ZapAuthenticator::ZapAuthenticator(zmq::context_t& context, const std::vector<AuthorizedKey>& keys,
                                   std::function<void(const std::string&)> on_refused)
    : socket_(context, zmq::socket_type::rep), on_refused_(std::move(on_refused)) {
  for (const auto& k : keys) {
    std::array<std::uint8_t, 32> binary{};
    zmq_z85_decode(binary.data(), k.public_key.c_str());
    user_ids_[std::string(binary.begin(), binary.end())] = std::string(role_name(k.role)) + ":" + k.name;
  }
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
  thread_ = std::thread([this] { serve(); });
}

ZapAuthenticator::~ZapAuthenticator() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

Role ZapAuthenticator::role_of(const std::string& user_id) {
  try {
    return parse_role(user_id.substr(0, user_id.find(':')));
  } catch (const std::invalid_argument&) {
    return Role::kObserver;  // the least a connection that got through can be
  }
}

void ZapAuthenticator::serve() {
  while (!stopping_) {
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(100));
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    std::vector<zmq::message_t> request;
    do {
      request.emplace_back();
      if (!socket_.recv(request.back())) break;
    } while (socket_.get(zmq::sockopt::rcvmore));
    answer(request);
  }
}

// Request: version, request id, domain, address, routing id, mechanism, credentials (for CURVE
// the client's 32-byte public key). Reply: version, request id, status, text, User-Id, metadata.
void ZapAuthenticator::answer(std::vector<zmq::message_t>& request) {
  std::string status = "400", text = "malformed ZAP request", user_id;
  if (request.size() >= 6 && request[0].to_string() == "1.0") {
    const bool curve = request.size() >= 7 && request[5].to_string() == "CURVE";
    const auto found = curve ? user_ids_.find(request[6].to_string()) : user_ids_.end();
    if (!curve) {
      text = "only CURVE clients are served";
    } else if (found == user_ids_.end()) {
      text = "key not authorized";
    } else {
      status = "200";
      text = "OK";
      user_id = found->second;
    }
    if (status != "200") on_refused_(text + " (a client at " + request[3].to_string() + ")");
  }
  const std::string request_id = request.size() >= 2 ? request[1].to_string() : "";
  for (const std::string& part : {std::string("1.0"), request_id, status, text, user_id})
    socket_.send(zmq::buffer(part), zmq::send_flags::sndmore);
  socket_.send(zmq::message_t(), zmq::send_flags::none);  // no metadata
}

}  // namespace ptypilot
