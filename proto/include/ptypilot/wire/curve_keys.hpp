// ZMQ CURVE keys for the control and event sockets (README, Security): the key files that
// `ptypilot keygen` writes and that serve, ctl and the Python client read, the daemon's list of
// authorized client keys with their roles, and the test for a loopback endpoint.
//
// Key files (Z85, 40 characters a key; a line starting with `#` is a comment, and only such a
// line, since Z85 keys may hold `#`):
//   NAME.key         public = <key>                      give it to whoever must know you
//   NAME.key_secret  public = <key> / secret = <key>     mode 0600; never leaves its machine
// Authorized keys (the daemon's `control.authorized_keys`), one client a line:
//   ROLE PUBLIC_KEY [NAME]      ROLE: observer | controller | operator
#pragma once

#include <filesystem>
#include <string>
#include <vector>
#include <zmq.hpp>

namespace ptypilot {

enum class Role { kObserver, kController, kOperator };

const char* role_name(Role role);
// Throws std::invalid_argument naming the roles for anything else.
Role parse_role(const std::string& name);

struct CurveKeyPair {
  std::string public_key;  // Z85
  std::string secret_key;  // Z85; empty when read from a public key file
};

CurveKeyPair make_curve_keypair();

// Writes DIR/NAME.key and DIR/NAME.key_secret (0600, created so, never wider); refuses to
// overwrite either. Throws std::runtime_error saying why.
struct KeyFiles {
  std::filesystem::path public_file, secret_file;
};
KeyFiles write_curve_keypair(const std::filesystem::path& directory, const std::string& name,
                             const CurveKeyPair& keys);

// Reads a key file: `public` always, `secret` when the file has it. Throws std::runtime_error
// naming the file and what is wrong with it.
CurveKeyPair read_curve_key_file(const std::filesystem::path& path);

struct AuthorizedKey {
  Role role;
  std::string public_key;  // Z85
  std::string name;        // the line's NAME, or the key's first 8 characters
};
// Throws std::runtime_error naming the file and line of a malformed entry.
std::vector<AuthorizedKey> read_authorized_keys(const std::filesystem::path& path);

// tcp:// on 127.0.0.1 (any 127/8 address), ::1 or localhost, and ipc:// and inproc://, which
// other machines cannot reach. Anything else, 0.0.0.0, * and named interfaces included, is not.
bool is_loopback_endpoint(const std::string& endpoint);

// The server side of CURVE on a socket, before it binds: clients are then checked by the ZAP
// handler of the socket's context (daemon/app/src/zap_authenticator.hpp).
void make_curve_server(zmq::socket_t& socket, const CurveKeyPair& server);
// The client side, before it connects: `server_public` is the server's public key.
void make_curve_client(zmq::socket_t& socket, const std::string& server_public,
                       const CurveKeyPair& client);

}  // namespace ptypilot
