#include "parse_number.h"
#include "socket_activation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <climits>
#include <cstdlib>
#include <optional>
#include <string_view>

namespace forkwatch {
namespace {

constexpr const char* kListenVariables[] = {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"};


std::vector<std::string> split_names(std::string_view text) {
  std::vector<std::string> names;
  std::size_t start = 0;
  while (true) {
    std::size_t colon = text.find(':', start);
    names.emplace_back(text.substr(start, colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return names;
}

}  // namespace

Result<std::vector<ListenFdSpec>> parse_listen_fds(const Environment& env, pid_t self) {
  std::vector<ListenFdSpec> specs;
  auto pid_it = env.find("LISTEN_PID");
  if (pid_it == env.end()) return specs;
  auto pid = parse_decimal<pid_t>(pid_it->second);
  if (!pid || *pid <= 0) return plain_error("LISTEN_PID is not a pid: \"" + pid_it->second + "\"");
  if (*pid != self) return specs;

  auto fds_it = env.find("LISTEN_FDS");
  if (fds_it == env.end()) return specs;
  auto count = parse_decimal<int>(fds_it->second);
  // The fds must be numbered below INT_MAX.
  if (!count || *count < 0 || *count > INT_MAX - kListenFdsStart) {
    return plain_error("LISTEN_FDS is not a count: \"" + fds_it->second + "\"");
  }
  if (*count == 0) return specs;

  std::vector<std::string> names;
  if (auto names_it = env.find("LISTEN_FDNAMES"); names_it != env.end()) {
    names = split_names(names_it->second);
    if (names.size() != static_cast<std::size_t>(*count)) {
      return plain_error("LISTEN_FDNAMES has " + std::to_string(names.size()) +
                         " names for LISTEN_FDS=" + std::to_string(*count));
    }
  } else {
    names.assign(static_cast<std::size_t>(*count), "unknown");
  }

  specs.reserve(names.size());
  for (int i = 0; i < *count; ++i) {
    specs.push_back({kListenFdsStart + i, std::move(names[static_cast<std::size_t>(i)])});
  }
  return specs;
}

Result<std::vector<ListenFd>> adopt_listen_fds(const Environment& env, pid_t self) {
  auto specs = parse_listen_fds(env, self);
  if (!specs) return specs.error();
  std::vector<ListenFd> adopted;
  adopted.reserve(specs->size());
  for (ListenFdSpec& spec : *specs) {
    int flags = ::fcntl(spec.fd, F_GETFD);
    if (flags < 0 || ::fcntl(spec.fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
      return sys_error("fcntl(" + std::to_string(spec.fd) + ", FD_CLOEXEC)");
    }
    adopted.push_back({Fd(spec.fd), std::move(spec.name)});
  }
  return adopted;
}

Environment process_listen_environment() {
  Environment env;
  for (const char* name : kListenVariables) {
    if (const char* value = std::getenv(name)) env.emplace(name, value);
  }
  return env;
}

void unset_listen_environment() {
  for (const char* name : kListenVariables) ::unsetenv(name);
}

Result<std::vector<ListenFd>> take_listen_fds() {
  Environment env = process_listen_environment();
  unset_listen_environment();
  return adopt_listen_fds(env, ::getpid());
}

bool is_listening_stream_socket(int fd) {
  int type = 0;
  int listening = 0;
  socklen_t length = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM) {
    return false;
  }
  length = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0) return false;
  return listening != 0;
}

Result<std::string> bound_host(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return sys_error("getsockname(fd " + std::to_string(fd) + ")");
  char buf[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  else if (ss.ss_family == AF_UNIX)
    return std::string("unix");
  return std::string(buf);
}

}  // namespace forkwatch
