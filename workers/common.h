// What every worker program needs but none of them teaches: its error
// messages and exit codes (2 for bad arguments, 1 for a failed call), the
// argument loop, a listening socket, the stop signals. Header-only, so each
// worker still builds from its one .cpp file. Single-threaded use, from main
// before any thread starts, except `stop_requested`, which a handler sets.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace forkwatch::workers {

// The prefix of every message, "echo-fork: ..."; main sets it first.
inline const char* program_name = "worker";

[[noreturn]] inline void usage_error(const std::string& message) {
  std::fprintf(stderr, "%s: %s (see --help)\n", program_name, message.c_str());
  std::exit(2);
}

// Reports errno for `what` ("bind 127.0.0.1:80: Address already in use"), exits 1.
[[noreturn]] inline void fatal(const std::string& what) {
  std::fprintf(stderr, "%s: %s: %s\n", program_name, what.c_str(), std::strerror(errno));
  std::exit(1);
}

// A whole decimal integer in [lo, hi], or nothing.
inline std::optional<long long> parse_int(std::string_view text, long long lo, long long hi) {
  if (text.empty()) return std::nullopt;
  std::string copy(text);
  char* end = nullptr;
  errno = 0;
  long long value = std::strtoll(copy.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || value < lo || value > hi) return std::nullopt;
  return value;
}

// Walks argv one flag at a time. --help/-h prints the usage and exits 0; every
// mistake is a usage_error naming the flag. With inline_values, "--flag=value"
// is read like "--flag value".
class ArgReader {
 public:
  ArgReader(int argc, char** argv, const char* usage, bool inline_values = false)
      : argc_(argc), argv_(argv), usage_(usage), inline_values_(inline_values) {}

  // Steps to the next argument; false when none is left.
  bool next() {
    if (++i_ >= argc_) return false;
    flag_ = argv_[i_];
    inline_ = std::nullopt;
    if (auto eq = flag_.find('=');
        inline_values_ && flag_.rfind("--", 0) == 0 && eq != std::string_view::npos) {
      inline_ = flag_.substr(eq + 1);
      flag_ = flag_.substr(0, eq);
    }
    if (flag_ == "--help" || flag_ == "-h") {
      std::fputs(usage_, stdout);
      std::exit(0);
    }
    return true;
  }

  // The current argument is the flag `name` (which takes a value).
  bool is(std::string_view name) const { return flag_ == name; }
  // The current argument is the switch `name`, given without "=value".
  bool is_switch(std::string_view name) const { return flag_ == name && !inline_; }

  std::string_view value() {
    if (inline_) return *inline_;
    if (i_ + 1 >= argc_) usage_error(std::string(flag_) + " needs a value");
    return argv_[++i_];
  }

  // The value as an integer in [lo, hi]; else "--flag needs EXPECTED, got 'v'",
  // where EXPECTED defaults to "lo..hi".
  long long number(long long lo, long long hi, const std::string& expected = "") {
    std::string_view text = value();
    auto n = parse_int(text, lo, hi);
    if (!n) {
      usage_error(std::string(flag_) + " needs " +
                  (expected.empty() ? std::to_string(lo) + ".." + std::to_string(hi) : expected) +
                  ", got '" + std::string(text) + "'");
    }
    return *n;
  }

  [[noreturn]] void unknown() const {
    usage_error("unknown argument '" + std::string(argv_[i_]) + "'");
  }

 private:
  int argc_;
  char** argv_;
  const char* usage_;
  bool inline_values_;
  int i_ = 0;  // argv_[i_] is the current argument
  std::string_view flag_;
  std::optional<std::string_view> inline_;
};

// --port P and --host ADDR, as every echo server takes them.
struct ListenFlags {
  long port = 0;  // 0: the kernel picks one
  std::string host = "127.0.0.1";

  // Reads the current argument if it is one of ours; false if not.
  bool take(ArgReader& args) {
    if (args.is("--port")) {
      port = static_cast<long>(args.number(0, 65535));
    } else if (args.is("--host")) {
      host = args.value();
    } else {
      return false;
    }
    return true;
  }
};

// host:port as an IPv4 address; a host that is not one is a usage error.
inline sockaddr_in ipv4_address(const std::string& host, long port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    usage_error("--host: not an IPv4 address '" + host + "'");
  return addr;
}

// A non-blocking listening TCP socket; prints "listening on port N" once it
// listens, which is what scripts and tests wait for.
inline int listen_on(const std::string& host, long port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fatal("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = ipv4_address(host, port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    fatal("bind " + host + ":" + std::to_string(port));
  if (listen(fd, SOMAXCONN) != 0) fatal("listen");
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("listening on port %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  return fd;
}

// One fd per client or connection: take the whole hard limit, not the soft 1024.
inline void raise_fd_limit() {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
}

// Blocks SIGTERM and SIGINT (before any thread starts, so every thread
// inherits the block) and returns that set, for a signalfd or sigwait.
// `previous`, if given, receives the mask from before.
inline sigset_t block_stop_signals(sigset_t* previous = nullptr) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, previous);
  return stop;
}

// Set by the handler catch_stop_signals installs.
inline volatile sig_atomic_t stop_requested = 0;

// SIGTERM and SIGINT set stop_requested. No SA_RESTART, so a blocked call
// returns EINTR and the caller sees the flag.
inline void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = [](int) { stop_requested = 1; };
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, nullptr) != 0 || sigaction(SIGINT, &sa, nullptr) != 0)
    fatal("sigaction");
}

inline timespec from_ms(long long ms) {
  return timespec{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L};
}

// The wait status of child `pid`, waiting as long as it takes (0 if it is not ours).
inline int wait_for_child(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace forkwatch::workers
