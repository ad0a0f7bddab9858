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

TEST_CASE("history retention flags default to 30 days and 256 MiB, 0 lifts a bound", "[unit]") {
  auto f = parse_daemon_flags({}, {{"HOME", "/h"}});
  REQUIRE(f);
  CHECK(f->history_max_age_days == 30);
  CHECK(f->history_max_mib == 256);
  auto set = parse_daemon_flags({"--history-max-age-days", "0", "--history-max-mib=8"}, {{"HOME", "/h"}});
  REQUIRE(set);
  CHECK(set->history_max_age_days == 0);
  CHECK(set->history_max_mib == 8);
  CHECK_THAT(error_of({"--history-max-mib", "-1"}), Catch::Contains("--history-max-mib") && Catch::Contains("-1"));
  CHECK_THAT(error_of({"--history-max-age-days", "ten"}),
             Catch::Contains("--history-max-age-days") && Catch::Contains("ten"));
  CHECK_THAT(error_of({"--history-max-age-days"}), Catch::Contains("needs a value"));
}

TEST_CASE("the Unix socket defaults to the runtime directory, else the state dir", "[unit]") {
  auto by_hand = parse_daemon_flags({"--state-dir", "/s"}, {});
  REQUIRE(by_hand);
  CHECK(by_hand->socket == "/s/forkwatch.sock");
  CHECK_FALSE(by_hand->socket_given);
  auto systemd = parse_daemon_flags({"--state-dir", "/s"}, {{"RUNTIME_DIRECTORY", "/run/forkwatch:/run/x"}});
  CHECK(systemd->socket == "/run/forkwatch/forkwatch.sock");
  auto given = parse_daemon_flags({"--state-dir", "/s", "--socket", "/tmp/f.sock", "--socket-group", "adm",
                                   "--read-token-file", "/s/read"},
                                  {});
  CHECK(given->socket == "/tmp/f.sock");
  CHECK(given->socket_given);
  CHECK(given->socket_group == "adm");
  CHECK(given->read_token_file == "/s/read");
  CHECK(parse_daemon_flags({"--state-dir", "/s", "--no-socket"}, {})->socket.empty());
  CHECK(error_of({"--no-socket", "--socket", "/x"}) == "--no-socket: cannot be given with --socket");
  CHECK(error_of({"--read-token-file", "/t", "--token-file", "/t"}) ==
        "--read-token-file: must not be the admin --token-file (/t)");
}

TEST_CASE("the flags --tls-cert and --tls-key come together, or the error names the missing one", "[unit]") {
  auto f = parse_daemon_flags({"--tls-cert", "/c.pem", "--tls-key=/k.pem"}, {{"HOME", "/h"}});
  REQUIRE(f);
  CHECK(f->tls_cert == "/c.pem");
  CHECK(f->tls_key == "/k.pem");
  CHECK(parse_daemon_flags({}, {{"HOME", "/h"}})->tls_cert.empty());
  CHECK(error_of({"--tls-cert", "/c.pem"}) == "--tls-cert: needs --tls-key (the certificate's private key)");
  CHECK(error_of({"--tls-key", "/k.pem"}) == "--tls-key: needs --tls-cert (the certificate for that key)");
  CHECK(error_of({"--tls-cert"}).find("--tls-cert") != std::string::npos);
}
