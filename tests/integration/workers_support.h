// Helpers for workers_test.cpp: run a built worker program directly (no
// daemon) with pipes or files on its standard streams, wait for it with a
// deadline, read its output with a deadline, and look at processes in /proc.
// A Spawned owns its process: the destructor SIGKILLs and reaps it if the test
// did not, so a failing test never leaves a zombie or a stray server. Used
// from the test's main thread only. Header-only: it has this one user.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace workers_support {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline std::string bin(const std::string& program) {
  return std::string(FORKWATCH_BIN_DIR) + "/" + program;
}

inline int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Polls `condition` every few milliseconds until true or the timeout.
template <typename F>
bool eventually(F condition, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return false;
    timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, nullptr);
  }
}

struct SpawnOptions {
  std::string stdin_file;            // empty: /dev/null (unless stdin_pipe)
  bool stdin_pipe = false;           // give the test the write end as Spawned::in
  std::string stdout_file;           // empty: a pipe, read end in Spawned::out
  std::string cwd;                   // empty: inherit
  std::vector<int> ignored_signals;  // SIG_IGN before exec (to prove a worker resets them)
};

class Spawned {
 public:
  Spawned(pid_t pid, int pidfd, int in_fd, int out_fd, int err_fd)
      : in(in_fd), out(out_fd), err(err_fd), pid_(pid), pidfd_(pidfd) {}
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  ~Spawned() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    for (int fd : {pidfd_, in, out, err}) {
      if (fd >= 0) close(fd);
    }
  }

  pid_t pid() const { return pid_; }

  // Waits until it ends or the timeout passes; then reaps it and returns the
  // raw wait status. nullopt: still running after the timeout.
  std::optional<int> wait_for(milliseconds timeout) {
    if (pid_ <= 0) return std::nullopt;
    auto deadline = Clock::now() + timeout;
    for (;;) {
      pollfd p{pidfd_, POLLIN, 0};
      int ready = poll(&p, 1, remaining_ms(deadline));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return std::nullopt;
      break;
    }
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

  // Through the pidfd: never hits a recycled pid.
  void signal(int sig) const {
    if (pid_ > 0) syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0);
  }

  void close_in() {
    if (in >= 0) close(in);
    in = -1;
  }

  int in;   // write end of its stdin, or -1
  int out;  // read end of its stdout, or -1
  int err;  // read end of its stderr

 private:
  pid_t pid_;  // -1 once reaped
  int pidfd_;
};

inline std::unique_ptr<Spawned> spawn(const std::vector<std::string>& argv,
                                      const SpawnOptions& options = {}) {
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  if (options.stdin_pipe && pipe2(in_pipe, O_CLOEXEC) != 0) return nullptr;
  if (options.stdout_file.empty() && pipe2(out_pipe, O_CLOEXEC) != 0) return nullptr;
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return nullptr;
  std::string in_path = options.stdin_file.empty() ? "/dev/null" : options.stdin_file;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) return nullptr;
  if (pid == 0) {
    // Async-signal-safe calls only until exec.
    int in_fd = options.stdin_pipe ? in_pipe[0] : open(in_path.c_str(), O_RDONLY);
    int out_fd = options.stdout_file.empty()
                     ? out_pipe[1]
                     : open(options.stdout_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in_fd < 0 || out_fd < 0) _exit(126);
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_pipe[1], 2);
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) _exit(126);
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
    }
    for (int sig : options.ignored_signals) ::signal(sig, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (in_pipe[0] >= 0) close(in_pipe[0]);
  if (out_pipe[1] >= 0) close(out_pipe[1]);
  close(err_pipe[1]);
  return std::make_unique<Spawned>(pid, pidfd, in_pipe[1], out_pipe[0], err_pipe[0]);
}

// Reads fd until `needle` appears (empty: until EOF), EOF, or the deadline.
inline std::string read_until(int fd, const std::string& needle, milliseconds timeout) {
  std::string text;
  auto deadline = Clock::now() + timeout;
  char buf[4096];
  while (needle.empty() || text.find(needle) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

inline std::string read_all(int fd, milliseconds timeout) { return read_until(fd, "", timeout); }

// Runs argv to its end; its exit status, with stdout and stderr if asked.
inline int run_status(const std::vector<std::string>& argv, std::string* out = nullptr,
                      std::string* err = nullptr, const SpawnOptions& options = {}) {
  auto p = spawn(argv, options);
  REQUIRE(p);
  std::string o = p->out >= 0 ? read_all(p->out, milliseconds(20000)) : "";
  std::string e = read_all(p->err, milliseconds(20000));
  auto status = p->wait_for(milliseconds(20000));
  REQUIRE(status.has_value());
  if (out) *out = o;
  if (err) *err = e;
  return *status;
}

// Reads "listening on port N\n" from an echo server's stdout; 0 if it never came.
inline int read_port(Spawned& server, milliseconds timeout = milliseconds(5000)) {
  std::string text = read_until(server.out, "\n", timeout);
  int port = 0;
  if (std::sscanf(text.c_str(), "listening on port %d", &port) != 1) return 0;
  return port;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// One line of /proc/PID/stat (or /proc/PID/task/TID/stat), see proc(5). The
// comm field may hold spaces and parentheses, so parse from the last ')'.
struct ProcStat {
  std::string comm;
  char state = '?';
  pid_t ppid = 0, pgrp = 0, session = 0;
  unsigned long utime = 0, stime = 0;  // clock ticks
};

inline std::optional<ProcStat> proc_stat(pid_t pid, pid_t tid = 0) {
  std::string path =
      "/proc/" + std::to_string(pid) + (tid ? "/task/" + std::to_string(tid) : "") + "/stat";
  std::string text = slurp(path);
  auto open = text.find('(');
  auto close_paren = text.rfind(')');
  if (open == std::string::npos || close_paren == std::string::npos) return std::nullopt;
  ProcStat st;
  st.comm = text.substr(open + 1, close_paren - open - 1);
  std::istringstream rest(text.substr(close_paren + 2));
  long skip = 0;
  rest >> st.state >> st.ppid >> st.pgrp >> st.session;
  for (int field = 7; field <= 13; ++field) rest >> skip;  // tty_nr .. majflt/cmajflt
  rest >> st.utime >> st.stime;
  if (!rest) return std::nullopt;
  return st;
}

inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> result;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return result;
  while (dirent* entry = readdir(dir)) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    auto st = proc_stat(pid);
    if (st && st->ppid == parent) result.push_back(pid);
  }
  closedir(dir);
  return result;
}

inline std::vector<std::pair<pid_t, std::string>> threads_of(pid_t pid) {
  std::vector<std::pair<pid_t, std::string>> result;
  DIR* dir = opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  if (dir == nullptr) return result;
  while (dirent* entry = readdir(dir)) {
    pid_t tid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (tid <= 0) continue;
    if (auto st = proc_stat(pid, tid)) result.emplace_back(tid, st->comm);
  }
  closedir(dir);
  return result;
}

// A connected, blocking TCP socket to 127.0.0.1:port, or -1.
inline int connect_local(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace workers_support
