// CURVE keys and the loopback rule (curve_keys.hpp, README Security); the sockets themselves are
// tested through `serve` in tests/python/test_auth.py.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "ptypilot/app/daemon.hpp"
#include "ptypilot/wire/control_codec.hpp"
#include "ptypilot/wire/curve_keys.hpp"

using namespace ptypilot;
namespace fs = std::filesystem;

namespace {

fs::path fresh_directory(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("ptypilot_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("loopback: only addresses other machines cannot reach", "[auth]") {
  for (const char* e : {"tcp://127.0.0.1:5600", "tcp://127.0.0.1:*", "tcp://127.1.2.3:1",
                        "tcp://[::1]:5600", "tcp://localhost:5600", "ipc:///tmp/ptypilot",
                        "inproc://control"})
    CHECK(is_loopback_endpoint(e));
  for (const char* e : {"tcp://0.0.0.0:5600", "tcp://*:5600", "tcp://*:*", "tcp://eth0:5600",
                        "tcp://192.168.1.5:5600", "tcp://[::]:5600", "tcp://127.evil.example:1",
                        "tcp://128.0.0.1:1", "tcp://127.0.0.1", "ws://127.0.0.1:1",
                        "udp://127.0.0.1:1", "tcp://1270.0.0.1:5"})
    CHECK_FALSE(is_loopback_endpoint(e));
}

TEST_CASE("key files: keygen's pair reads back, the secret 0600, never overwritten", "[auth]") {
  const fs::path d = fresh_directory("keys");
  CurveKeyPair made = make_curve_keypair();
  for (int i = 0; i < 200 && (made.public_key + made.secret_key).find('#') == std::string::npos; ++i)
    made = make_curve_keypair();  // one with '#', which is no comment in a key file
  const KeyFiles files = write_curve_keypair(d, "server", made);
  CHECK(files.public_file == d / "server.key");
  struct stat st {};
  REQUIRE(::stat(files.secret_file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const CurveKeyPair pair = read_curve_key_file(files.secret_file);
  CHECK(pair.public_key == made.public_key);
  CHECK(pair.secret_key == made.secret_key);
  const CurveKeyPair public_only = read_curve_key_file(files.public_file);
  CHECK(public_only.public_key == made.public_key);
  CHECK(public_only.secret_key.empty());
  CHECK_THROWS_WITH(write_curve_keypair(d, "server", make_curve_keypair()),
                    Catch::Contains("never overwrites"));
  CHECK(read_curve_key_file(files.secret_file).secret_key == made.secret_key);
  CHECK_THROWS(write_curve_keypair(d, "../elsewhere", made));

  write(d / "bad.key", "public = tooshort\n");
  CHECK_THROWS_WITH(read_curve_key_file(d / "bad.key"), Catch::Contains("40 characters of Z85"));
  write(d / "empty.key", "# nothing\n");
  CHECK_THROWS_WITH(read_curve_key_file(d / "empty.key"), Catch::Contains("no 'public = KEY'"));
  fs::remove_all(d);
}

TEST_CASE("authorized keys: a role and a key a line; mistakes name their line", "[auth]") {
  const fs::path d = fresh_directory("authorized");
  // Z85 has '#' and '=': a key with them is a key, not a comment.
  std::string a = make_curve_keypair().public_key;
  for (int i = 0; i < 200 && a.find('#') == std::string::npos; ++i) a = make_curve_keypair().public_key;
  REQUIRE(a.find('#') != std::string::npos);
  const std::string b = make_curve_keypair().public_key;
  write(d / "ok", "# clients\n\n  operator " + a + " admin\nobserver " + b + "  \n");
  const auto keys = read_authorized_keys(d / "ok");
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].role == Role::kOperator);
  CHECK(keys[0].name == "admin");
  CHECK(keys[1].role == Role::kObserver);
  CHECK(keys[0].public_key == a);
  CHECK(keys[1].name == b.substr(0, 8));
  write(d / "role", "operator " + a + "\nroot " + b + "\n");
  CHECK_THROWS_WITH(read_authorized_keys(d / "role"), Catch::Contains(":2: unknown role 'root'"));
  write(d / "key", "controller notakey\n");
  CHECK_THROWS_WITH(read_authorized_keys(d / "key"), Catch::Contains(":1: expected 'ROLE PUBLIC_KEY"));
  fs::remove_all(d);
}

TEST_CASE("serve refuses a non-loopback bind without keys and says how to make them", "[auth]") {
  for (const auto& [control, events] :
       {std::pair{"tcp://0.0.0.0:*", "tcp://127.0.0.1:*"}, {"tcp://127.0.0.1:*", "tcp://*:*"}}) {
    DaemonOptions options;
    options.control_endpoint = control;
    options.events_endpoint = events;
    CHECK_THROWS_WITH(Daemon(options), Catch::Contains("without CURVE keys") &&
                                           Catch::Contains("ptypilot keygen"));
  }
  DaemonOptions half;
  half.control_endpoint = half.events_endpoint = "tcp://127.0.0.1:*";
  half.server_key = "server.key_secret";
  CHECK_THROWS_WITH(Daemon(half), Catch::Contains("needs both"));
}

TEST_CASE("JSON mirror: stop carries the session token, start's reply returns it", "[auth]") {
  CHECK(decode_control_request(R"({"command": "stop", "session_token": "abc"})").stop().session_token() == "abc");
  CHECK(decode_control_request(R"({"command": "stop"})").stop().session_token().empty());
  CHECK_THROWS_AS(decode_control_request(R"({"command": "stop", "session_token": 5})"),
                  std::invalid_argument);
  wire::ControlReply reply;
  reply.set_ok(true);
  reply.set_session_token("tok");
  CHECK(nlohmann::json::parse(reply_to_json(reply))["session_token"] == "tok");
  reply.clear_session_token();
  CHECK_FALSE(nlohmann::json::parse(reply_to_json(reply)).contains("session_token"));
}
