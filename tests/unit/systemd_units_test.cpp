// The shipped systemd unit and example config agree with each other and with
// the daemon: the config loads, names programs that exist, and stops within
// the unit's TimeoutStopSec=. (systemd-analyze checks are ctest scripts:
// systemd/check_units.sh.)
#include <algorithm>
#include <catch2/catch.hpp>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "config.h"

namespace {

const std::string kSystemdDir = std::string(FORKWATCH_SOURCE_DIR) + "/systemd";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The value of the last "Key=" line (later assignments win in systemd).
std::optional<std::string> unit_value(const std::string& unit, const std::string& key) {
  std::optional<std::string> value;
  std::istringstream lines(unit);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(key + "=", 0) == 0) value = line.substr(key.size() + 1);
  }
  return value;
}

// "60s", "2min", "90" (seconds) as milliseconds; the units systemd.time(7)
// accepts that these files use.
std::optional<std::int64_t> seconds_as_ms(const std::string& text) {
  std::int64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc{}) return std::nullopt;
  std::string unit(end, text.data() + text.size());
  if (unit.empty() || unit == "s") return number * 1000;
  if (unit == "min") return number * 60 * 1000;
  return std::nullopt;
}

}  // namespace

TEST_CASE("the example config loads and names built-in workers", "[unit]") {
  auto config = forkwatch::load_config(kSystemdDir + "/programs.json");
  INFO((config ? "" : config.error().message()));
  REQUIRE(config);
  REQUIRE(config->programs.size() >= 2);
  for (const auto& program : config->programs) {
    REQUIRE_FALSE(program.command.empty());
    // A bare name is found in libexec/forkwatch/ once installed: it must be
    // one of the worker programs the build installs there.
    std::string source = program.command[0];
    std::replace(source.begin(), source.end(), '-', '_');
    INFO(program.name << ": " << program.command[0]);
    CHECK(std::filesystem::exists(std::string(FORKWATCH_SOURCE_DIR) + "/workers/" + source +
                                  ".cpp"));
  }
}

TEST_CASE("the service gives the daemon longer to stop than any program needs", "[unit]") {
  std::string unit = read_file(kSystemdDir + "/forkwatchd.service.in");
  auto timeout = unit_value(unit, "TimeoutStopSec");
  REQUIRE(timeout);
  auto timeout_ms = seconds_as_ms(*timeout);
  REQUIRE(timeout_ms);

  auto config = forkwatch::load_config(kSystemdDir + "/programs.json");
  REQUIRE(config);
  std::int64_t longest = forkwatch::ProgramSpec{}.stop_timeout_ms;
  for (const auto& program : config->programs) {
    longest = std::max(longest, program.stop_timeout_ms);
  }
  // Headroom for recording the exits and flushing the store.
  CHECK(*timeout_ms >= longest + 5000);
}

TEST_CASE("the service is a notify unit the daemon can satisfy", "[unit]") {
  std::string unit = read_file(kSystemdDir + "/forkwatchd.service.in");
  CHECK(unit_value(unit, "Type") == std::string("notify"));
  CHECK(unit_value(unit, "NotifyAccess") == std::string("main"));
  // The daemon stops its own workers; systemd only kills leftovers.
  CHECK(unit_value(unit, "KillMode") == std::string("mixed"));
  CHECK(unit_value(unit, "ExecReload") == std::string("/bin/kill -HUP $MAINPID"));
  CHECK(unit_value(unit, "StateDirectory") == std::string("forkwatch"));
  CHECK(unit_value(unit, "ConfigurationDirectory") == std::string("forkwatch"));
  // Both paths are filled in at install time (systemd/render_units.cmake).
  CHECK(unit_value(unit, "ExecStart") ==
        std::string("@FORKWATCH_BINDIR@/forkwatchd --config @FORKWATCH_CONFIG@"));
  // The watchdog must leave the loop room: pings go out at half of it.
  auto watchdog = unit_value(unit, "WatchdogSec");
  REQUIRE(watchdog);
  auto watchdog_ms = seconds_as_ms(*watchdog);
  REQUIRE(watchdog_ms);
  CHECK(*watchdog_ms >= 10000);
  // These would break fork/exec, /proc reading, or message queues.
  for (const char* key : {"ProtectProc", "ProcSubset", "PrivateIPC", "MemoryDenyWriteExecute",
                          "PrivatePIDs", "DynamicUser"}) {
    INFO(key);
    CHECK_FALSE(unit_value(unit, key));
  }
}

TEST_CASE("the socket unit listens where the daemon listens by default", "[unit]") {
  std::string socket = read_file(kSystemdDir + "/forkwatchd.socket.in");
  CHECK(unit_value(socket, "ListenStream") == std::string("127.0.0.1:7420"));
  CHECK(unit_value(socket, "Service") == std::string("forkwatchd.service"));
}
