#include <catch2/catch.hpp>

#include "flags.h"

using forkwatch::parse_daemon_flags;

namespace {
std::string error_of(std::vector<std::string> args) {
  auto f = parse_daemon_flags(args, {{"HOME", "/home/u"}});
  return f ? "" : f.error().message();
}
}  // namespace

TEST_CASE("flags default to loopback and the XDG state dir", "[unit]") {
  auto f = parse_daemon_flags({}, {{"HOME", "/home/u"}});
  REQUIRE(f);
  CHECK(f->listen_host == "127.0.0.1");
  CHECK(f->listen_port == 7420);
  CHECK(f->state_dir == "/home/u/.local/state/forkwatch");
  CHECK(f->token_file == "/home/u/.local/state/forkwatch/token");
  auto xdg = parse_daemon_flags({}, {{"HOME", "/h"}, {"XDG_STATE_HOME", "/x"}});
  CHECK(xdg->state_dir == "/x/forkwatch");
  auto sd = parse_daemon_flags({}, {{"HOME", "/h"}, {"STATE_DIRECTORY", "/var/lib/forkwatch:/other"}});
  CHECK(sd->state_dir == "/var/lib/forkwatch");
}

TEST_CASE("every flag of the contract parses", "[unit]") {
  auto f = parse_daemon_flags({"--listen", "[::1]:0", "--state-dir", "/s", "--config", "c.json",
                               "--port-file=/p", "--token-file", "/t", "--no-auth", "--allow-commands",
                               "--workers-dir", "/w", "--sample-ms", "250"},
                              {});
  REQUIRE(f);
  CHECK(f->listen_host == "::1");
  CHECK(f->listen_port == 0);
  CHECK(f->state_dir == "/s");
  CHECK(f->port_file == "/p");
  CHECK(f->token_file == "/t");
  CHECK(f->no_auth);
  CHECK(f->allow_commands);
  CHECK(f->sample_ms == 250);
}

TEST_CASE("bad flags give one clear line", "[unit]") {
  CHECK(error_of({"--bogus"}) == "unknown flag \"--bogus\" (see --help)");
  CHECK(error_of({"--listen"}) == "--listen: needs a value");
  CHECK(error_of({"--listen", "7420"}) == "--listen: expected HOST:PORT (like 127.0.0.1:7420), got \"7420\"");
  CHECK(error_of({"--listen", "127.0.0.1:70000"}) == "--listen: the port must be 0 to 65535, got \"70000\"");
  CHECK(error_of({"--sample-ms", "fast"}) == "--sample-ms: expected a whole number from 10 to 3600000, got \"fast\"");
  CHECK(error_of({"--no-auth=yes"}) == "--no-auth: takes no value");
  CHECK(error_of({"--state-dir", ""}) == "--state-dir: needs a non-empty value");
  auto none = parse_daemon_flags({}, {});
  REQUIRE_FALSE(none);
}
