#include "parse_number.h"
#include "sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace forkwatch {
namespace {

constexpr const char* kNotifyVariables[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"};


const std::string* find(const Environment& env, const char* name) {
  auto it = env.find(name);
  return it == env.end() ? nullptr : &it->second;
}

std::uint64_t monotonic_usec_now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

std::optional<std::string> notify_socket_address(std::string_view value) {
  constexpr std::size_t kSunPath = sizeof(sockaddr_un{}.sun_path);
  if (value.size() < 2) return std::nullopt;
  if (value[0] == '/') {
    // A filesystem path needs room for its terminating NUL.
    if (value.size() >= kSunPath || value.find('\0') != std::string_view::npos) {
      return std::nullopt;
    }
    return std::string(value);
  }
  if (value[0] == '@') {
    // Abstract names are length-delimited; the leading NUL replaces '@'.
    if (value.size() > kSunPath) return std::nullopt;
    std::string address(value);
    address[0] = '\0';
    return address;
  }
  return std::nullopt;  // vsock: and relative paths are not for us
}

std::optional<std::chrono::microseconds> watchdog_timeout(const Environment& env, pid_t self) {
  const std::string* usec_text = find(env, "WATCHDOG_USEC");
  if (!usec_text) return std::nullopt;
  auto usec = parse_decimal<std::uint64_t>(*usec_text);
  if (!usec || *usec == 0) return std::nullopt;
  // Rejects values chrono's signed count cannot hold.
  if (*usec > static_cast<std::uint64_t>(std::chrono::microseconds::max().count())) {
    return std::nullopt;
  }
  if (const std::string* pid_text = find(env, "WATCHDOG_PID")) {
    auto pid = parse_decimal<pid_t>(*pid_text);
    if (!pid || *pid != self) return std::nullopt;
  }
  return std::chrono::microseconds(static_cast<std::int64_t>(*usec));
}

std::string reloading_message(std::uint64_t monotonic_usec) {
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec);
}

std::string status_message(std::string_view text) {
  std::string message = "STATUS=";
  message.reserve(message.size() + text.size());
  for (char c : text) message += (c == '\n' || c == '\r') ? ' ' : c;
  return message;
}

Environment process_notify_environment() {
  Environment env;
  for (const char* name : kNotifyVariables) {
    if (const char* value = std::getenv(name)) env.emplace(name, value);
  }
  return env;
}

void unset_notify_environment() {
  for (const char* name : kNotifyVariables) ::unsetenv(name);
}

Notifier Notifier::from_environment(const Environment& env, pid_t self) {
  Notifier notifier;
  const std::string* socket_text = find(env, "NOTIFY_SOCKET");
  if (!socket_text) return notifier;
  auto address = notify_socket_address(*socket_text);
  if (!address) return notifier;
  notifier.address_ = std::move(*address);
  notifier.watchdog_ = watchdog_timeout(env, self);
  notifier.socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  return notifier;
}

std::optional<std::chrono::microseconds> Notifier::watchdog_interval() const {
  if (!enabled() || !watchdog_) return std::nullopt;
  return *watchdog_ / 2;
}

void Notifier::reloading() { send(reloading_message(monotonic_usec_now())); }

void Notifier::watchdog_ping() {
  if (watchdog_interval()) send(kNotifyWatchdog);
}

bool Notifier::send(std::string_view message) {
  if (!enabled()) return false;
  if (!socket_) socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!socket_) {
    ++failures_;
    return false;
  }
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, address_.data(), address_.size());
  // An abstract address is exactly its bytes; a path is NUL-terminated (the
  // zeroed tail of sun_path supplies the NUL).
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() +
                                            (address_[0] == '/' ? 1 : 0));
  ssize_t sent =
      ::sendto(socket_.get(), message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&sun), length);
  if (sent != static_cast<ssize_t>(message.size())) {
    ++failures_;
    return false;
  }
  return true;
}

}  // namespace forkwatch
