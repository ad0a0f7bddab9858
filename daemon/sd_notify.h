// Notifier: tells systemd how the daemon is doing over the sd_notify(3)
// datagram protocol, without libsystemd. Owned by main; used by the loop
// thread (the class has no lock: one thread at a time). Sends never block
// (MSG_DONTWAIT) and never fail loudly: a slow or absent manager must not
// stall supervision, so failures are only counted (send_failures()).
//
// Wiring in main, before any thread starts or any worker is spawned:
//   Notifier notifier = Notifier::from_environment(process_notify_environment(), getpid());
//   unset_notify_environment();   // workers must not inherit NOTIFY_SOCKET
// then, from the loop thread:
//   notifier.ready();                       once the API accepts connections
//   notifier.status("3 running, 1 backoff"); after worker state changes
//   if (auto every = notifier.watchdog_interval())   a timerfd at *every,
//     notifier.watchdog_ping();             so a stuck loop stops the pings
//   notifier.reloading(); ... notifier.ready();   around a SIGHUP reload
//   notifier.stopping();                    first thing on SIGTERM/SIGINT
// Every method is a harmless no-op when NOTIFY_SOCKET was not set.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "fd.h"

namespace forkwatch {

// Variable name -> value; passed explicitly so tests never touch the real
// environment.
using Environment = std::map<std::string, std::string>;

// ---- Pure helpers (no syscalls; unit-tested directly) ----

inline constexpr std::string_view kNotifyReady = "READY=1";
inline constexpr std::string_view kNotifyStopping = "STOPPING=1";
inline constexpr std::string_view kNotifyWatchdog = "WATCHDOG=1";

// The sun_path bytes for NOTIFY_SOCKET: "/run/x" stays as is, "@name" becomes
// "\0name" (an abstract socket). nullopt for anything else, for an empty
// name, or for one too long for sockaddr_un (108 bytes, with the path's NUL).
std::optional<std::string> notify_socket_address(std::string_view value);

// WATCHDOG_USEC as a duration when the watchdog is meant for process `self`:
// WATCHDOG_PID unset or equal to self (sd_watchdog_enabled(3)). nullopt when
// unset, zero, malformed, or meant for another pid.
std::optional<std::chrono::microseconds> watchdog_timeout(const Environment& env, pid_t self);

// "RELOADING=1\nMONOTONIC_USEC=<n>": systemd (253+) matches the reload to
// this CLOCK_MONOTONIC timestamp; older managers ignore the second line.
std::string reloading_message(std::uint64_t monotonic_usec);

// "STATUS=<text>" with newlines turned into spaces: a newline would start a
// new assignment in the datagram.
std::string status_message(std::string_view text);

// ---- The process environment (main only; not thread-safe: setenv/getenv) ----

// NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, those of them that are set.
Environment process_notify_environment();
// Unsets those three so spawned workers cannot talk to systemd as us.
void unset_notify_environment();

class Notifier {
 public:
  Notifier() = default;  // disabled: every send is a no-op
  Notifier(Notifier&&) = default;
  Notifier& operator=(Notifier&&) = default;

  // Reads NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID from `env` (not from the
  // process). Opens the datagram socket (SOCK_CLOEXEC) now; if that fails the
  // notifier stays enabled and retries on the next send.
  static Notifier from_environment(const Environment& env, pid_t self);

  // True when NOTIFY_SOCKET named a usable address.
  bool enabled() const { return !address_.empty(); }
  // How often to call watchdog_ping(): half of WATCHDOG_USEC, as
  // sd_watchdog_enabled(3) advises. nullopt when there is no watchdog for us.
  std::optional<std::chrono::microseconds> watchdog_interval() const;

  void ready() { send(kNotifyReady); }
  // Stamps CLOCK_MONOTONIC now; send ready() when the reload is done.
  void reloading();
  void stopping() { send(kNotifyStopping); }
  void status(std::string_view text) { send(status_message(text)); }
  // No-op unless watchdog_interval() has a value.
  void watchdog_ping();

  // Sends one datagram (newline-separated assignments). False when disabled or
  // when sendto failed (then counted).
  bool send(std::string_view message);
  std::uint64_t send_failures() const { return failures_; }

 private:
  std::string address_;  // sun_path bytes; empty when disabled
  Fd socket_;            // AF_UNIX SOCK_DGRAM, opened lazily if the first try failed
  std::optional<std::chrono::microseconds> watchdog_;  // full WATCHDOG_USEC
  std::uint64_t failures_ = 0;
};

}  // namespace forkwatch
