// `ptypilot keygen`: a CURVE key pair for the daemon or one of its clients (README, Security).
// Prints one JSON object: the two files, the public key, and the line that authorizes it.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "ptypilot/wire/command.hpp"
#include "ptypilot/wire/curve_keys.hpp"

namespace ptypilot {
namespace {

int keygen(const CliArgs& args) {
  const std::string name = args.get("name");
  if (name.empty()) throw UsageError("keygen needs --name NAME (the files' stem)");
  const Role role = parse_role(args.get("role"));
  const CurveKeyPair keys = make_curve_keypair();
  const KeyFiles files = write_curve_keypair(args.get("out"), name, keys);
  std::cout << nlohmann::json{{"public_key_file", files.public_file.string()},
                              {"secret_key_file", files.secret_file.string()},
                              {"public_key", keys.public_key},
                              {"authorized_keys_line",
                               std::string(role_name(role)) + " " + keys.public_key + " " + name}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace

Command keygen_command() {
  return {.name = "keygen",
          .summary = "make a CURVE key pair for serve or a client (prints JSON)",
          .description =
              "Writes DIR/NAME.key (the public key: `public = KEY`, Z85) and DIR/NAME.key_secret "
              "(`public = KEY` and `secret = KEY`, mode 0600); never overwrites either. The "
              "daemon's pair goes to serve --server-key (the .key_secret) and its .key to every "
              "client (--server-key); a client's .key_secret stays with it (--client-key), and "
              "its authorized_keys_line goes into the daemon's --authorized-keys file. Prints "
              "one JSON object: public_key_file, secret_key_file, public_key, "
              "authorized_keys_line.",
          .options = {{"out", "DIR", "keys", "where the two files go (made if missing)"},
                      {"name", "NAME", "", "the pair's name: the files' stem (required)"},
                      {"role", "ROLE", "controller",
                       "observer, controller or operator: the role of the line printed for "
                       "the authorized keys"}},
          .run = keygen};
}

}  // namespace ptypilot
