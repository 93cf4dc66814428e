#include "ptypilot/wire/curve_keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ptypilot {
namespace {

constexpr std::size_t kZ85KeyChars = 40;

bool valid_z85_key(const std::string& key) {
  if (key.size() != kZ85KeyChars) return false;
  std::array<std::uint8_t, 32> binary{};
  return zmq_z85_decode(binary.data(), key.c_str()) != nullptr;
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t\r");
  return s.substr(begin, end - begin + 1);
}

std::vector<std::string> content_lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string() + ": " + std::strerror(errno));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    line = trim(line);
    if (!line.empty() && line.front() == '#') line.clear();  // Z85 has '#': no comment after a key
    lines.push_back(line);
  }
  return lines;
}

// O_EXCL: a key is never replaced by accident, and the secret is never readable by others, not
// even between creating the file and a chmod.
void write_new_file(const std::filesystem::path& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    throw std::runtime_error("cannot create " + path.string() + ": " + std::strerror(errno) +
                             (errno == EEXIST ? " (keygen never overwrites a key)" : ""));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(error));
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::kObserver: return "observer";
    case Role::kController: return "controller";
    case Role::kOperator: return "operator";
  }
  return "observer";
}

Role parse_role(const std::string& name) {
  for (Role r : {Role::kObserver, Role::kController, Role::kOperator})
    if (name == role_name(r)) return r;
  throw std::invalid_argument("unknown role '" + name + "': observer, controller or operator");
}

CurveKeyPair make_curve_keypair() {
  std::array<char, kZ85KeyChars + 1> public_key{}, secret_key{};
  if (zmq_curve_keypair(public_key.data(), secret_key.data()) != 0)
    throw std::runtime_error(std::string("cannot make a CURVE key pair: ") + zmq_strerror(zmq_errno()) +
                             " (libzmq built without CURVE?)");
  return {public_key.data(), secret_key.data()};
}

KeyFiles write_curve_keypair(const std::filesystem::path& directory, const std::string& name,
                             const CurveKeyPair& keys) {
  if (name.empty() || name.find('/') != std::string::npos || name.front() == '.')
    throw std::runtime_error("a key's name is a plain file name, not '" + name + "'");
  std::filesystem::create_directories(directory);
  const KeyFiles files{directory / (name + ".key"), directory / (name + ".key_secret")};
  write_new_file(files.secret_file,
                 "# ptypilot CURVE key pair '" + name + "': keep it secret, on this machine\n"
                 "public = " + keys.public_key + "\nsecret = " + keys.secret_key + "\n",
                 0600);
  write_new_file(files.public_file,
                 "# ptypilot CURVE public key '" + name + "': give it to whoever must know you\n"
                 "public = " + keys.public_key + "\n",
                 0644);
  return files;
}

CurveKeyPair read_curve_key_file(const std::filesystem::path& path) {
  CurveKeyPair keys;
  for (const std::string& line : content_lines(path)) {
    if (line.empty()) continue;
    const auto eq = line.find('=');
    const std::string field = trim(line.substr(0, eq));
    const std::string value = eq == std::string::npos ? "" : trim(line.substr(eq + 1));
    if (field != "public" && field != "secret")
      throw std::runtime_error(path.string() + ": expected 'public = KEY' or 'secret = KEY', got '" +
                               line + "'");
    if (!valid_z85_key(value))
      throw std::runtime_error(path.string() + ": the " + field +
                               " key is not 40 characters of Z85 (make keys with ptypilot keygen)");
    (field == "public" ? keys.public_key : keys.secret_key) = value;
  }
  if (keys.public_key.empty())
    throw std::runtime_error(path.string() + ": no 'public = KEY' line (not a ptypilot keygen file?)");
  return keys;
}

std::vector<AuthorizedKey> read_authorized_keys(const std::filesystem::path& path) {
  std::vector<AuthorizedKey> keys;
  const std::vector<std::string> lines = content_lines(path);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const std::string where = path.string() + ":" + std::to_string(i + 1) + ": ";
    std::istringstream words(lines[i]);
    std::string role, key, name, extra;
    words >> role >> key >> name >> extra;
    if (!extra.empty() || !valid_z85_key(key))
      throw std::runtime_error(where + "expected 'ROLE PUBLIC_KEY [NAME]' with a 40-character Z85 key");
    try {
      keys.push_back({parse_role(role), key, name.empty() ? key.substr(0, 8) : name});
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(where + e.what());
    }
  }
  return keys;
}

bool is_loopback_endpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  std::string host = endpoint.substr(6);
  const auto colon = host.rfind(':');
  if (colon == std::string::npos) return false;
  host.erase(colon);
  if (host == "[::1]" || host == "localhost") return true;
  // 127.0.0.0/8, as four decimal numbers: "127.evil.example" is a name, not an address.
  int a, b, c, d;
  char rest;
  return std::sscanf(host.c_str(), "%d.%d.%d.%d%c", &a, &b, &c, &d, &rest) == 4 && a == 127 &&
         b >= 0 && b < 256 && c >= 0 && c < 256 && d >= 0 && d < 256;
}

void make_curve_server(zmq::socket_t& socket, const CurveKeyPair& server) {
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, server.secret_key);
  // The ZAP request names this domain; the handler serves every domain of its context.
  socket.set(zmq::sockopt::zap_domain, "ptypilot");
}

void make_curve_client(zmq::socket_t& socket, const std::string& server_public,
                       const CurveKeyPair& client) {
  socket.set(zmq::sockopt::curve_serverkey, server_public);
  socket.set(zmq::sockopt::curve_publickey, client.public_key);
  socket.set(zmq::sockopt::curve_secretkey, client.secret_key);
}

}  // namespace ptypilot
