// bench-echo: the three echo servers side by side at 1, 64 and 512 clients.
//
// For each server and client count it starts the server on a free port, runs
// `echo-client --load N --seconds S` against it, and while it runs sums the
// resident memory (VmRSS, and PSS, which shares pages fairly between
// processes) of the server and all its descendants, sampled through the run
// (the largest sample counts). Prints a Markdown table:
// round trips per second, p50/p99 latency, and memory per connected client
// (total RSS / clients, plus the growth over the idle server / clients).
//
// usage: bench-echo [--seconds S] [--clients 1,64,512] [--servers a,b,c]
//                   [--size B] [--client-threads T] [--bin-dir DIR]

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

struct Child {
  pid_t pid = -1;
  int out = -1;  // its stdout
};

Child start(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    std::perror("pipe2");
    std::exit(1);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Child child;
  int rc = posix_spawn(&child.pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (rc != 0) {
    std::fprintf(stderr, "bench-echo: cannot start %s: %s\n", args[0], std::strerror(rc));
    std::exit(1);
  }
  child.out = pipe_fds[0];
  return child;
}

// Reads a line (up to '\n') within timeout_ms; empty on timeout or EOF. A
// line cut by the timeout is lost, which is fine for echo-client's one line
// written at the very end.
std::string read_line(int fd, int timeout_ms) {
  std::string line;
  char c;
  while (line.empty() || line.back() != '\n') {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) break;
    if (read(fd, &c, 1) != 1) break;
    line += c;
  }
  return line;
}

int finish(Child& child) {
  int status = 0;
  while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  close(child.out);
  return status;
}

std::vector<pid_t> descendants(pid_t root) {
  std::map<pid_t, pid_t> parent;
  if (DIR* dir = opendir("/proc")) {
    while (dirent* e = readdir(dir)) {
      pid_t pid = std::atoi(e->d_name);
      if (pid <= 0) continue;
      std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
      std::string text((std::istreambuf_iterator<char>(stat)), {});
      auto close_paren = text.rfind(')');
      if (close_paren == std::string::npos) continue;
      char state;
      pid_t ppid = 0;
      std::istringstream(text.substr(close_paren + 2)) >> state >> ppid;
      parent[pid] = ppid;
    }
    closedir(dir);
  }
  std::vector<pid_t> result{root};
  for (size_t i = 0; i < result.size(); ++i) {
    for (const auto& [pid, ppid] : parent) {
      if (ppid == result[i]) result.push_back(pid);
    }
  }
  return result;
}

// kB of a "Name:   123 kB" line in a /proc file.
long field_kb(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) == 0) return std::atol(line.c_str() + name.size());
  }
  return 0;
}

struct Memory {
  long rss_kb = 0;
  long pss_kb = 0;
  size_t processes = 0;
};

Memory memory_of_tree(pid_t root) {
  Memory m;
  for (pid_t pid : descendants(root)) {
    std::string base = "/proc/" + std::to_string(pid);
    m.rss_kb += field_kb(base + "/status", "VmRSS:");
    m.pss_kb += field_kb(base + "/smaps_rollup", "Pss:");
    ++m.processes;
  }
  return m;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) parts.push_back(part);
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5;
  std::vector<std::string> clients_list{"1", "64", "512"};
  std::vector<std::string> servers{"echo-fork", "echo-epoll", "echo-threads"};
  std::string size = "64";
  std::string client_threads = "1";
  std::string bin_dir = FORKWATCH_BIN_DIR;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--seconds") {
      seconds = std::max(2, std::atoi(value.c_str()));
    } else if (flag == "--clients") {
      clients_list = split(value);
    } else if (flag == "--servers") {
      servers = split(value);
    } else if (flag == "--size") {
      size = value;
    } else if (flag == "--client-threads") {
      client_threads = value;
    } else if (flag == "--bin-dir") {
      bin_dir = value;
    } else {
      std::fprintf(stderr, "bench-echo: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr,
                 "usage: bench-echo [--seconds S] [--clients 1,64,512] [--servers ...] [--size B] "
                 "[--client-threads T] [--bin-dir DIR]\n");
    return 2;
  }

  std::printf("%d s per run, %s-byte messages, echo-client with %s thread(s)\n\n", seconds,
              size.c_str(), client_threads.c_str());
  std::printf(
      "| server | clients | round trips/s | p50 µs | p99 µs | processes | RSS KiB | RSS/client KiB "
      "| "
      "(RSS-idle)/client KiB | PSS/client KiB |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::fflush(stdout);
  int failures = 0;
  for (const auto& server_name : servers) {
    for (const auto& clients_text : clients_list) {
      long clients = std::atol(clients_text.c_str());
      Child server = start({bin_dir + "/" + server_name, "--port", "0"});
      int port = 0;
      std::string line = read_line(server.out, 5000);
      if (std::sscanf(line.c_str(), "listening on port %d", &port) != 1) {
        std::fprintf(stderr, "bench-echo: %s did not say its port\n", server_name.c_str());
        return 1;
      }
      Memory idle = memory_of_tree(server.pid);
      Child client = start({bin_dir + "/echo-client", "--port", std::to_string(port), "--load",
                            clients_text, "--seconds", std::to_string(seconds), "--size", size,
                            "--threads", client_threads});
      // Sample every 250 ms while it runs and keep the largest: echo-fork may
      // still be forking for its 512th client well into the run.
      Memory loaded;
      std::string result;
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds + 30);
      while (result.empty() && std::chrono::steady_clock::now() < deadline) {
        result = read_line(client.out, 250);
        if (result.empty()) {
          Memory now = memory_of_tree(server.pid);
          if (now.rss_kb > loaded.rss_kb) loaded = now;
        }
      }
      int client_status = finish(client);
      kill(server.pid, SIGTERM);
      int server_status = finish(server);

      double rate = 0;
      unsigned p50 = 0, p99 = 0, max_us = 0;
      unsigned long long errors = 0;
      size_t trips = 0;
      double secs = 0;
      long n = 0;
      if (std::sscanf(result.c_str(),
                      "clients %ld seconds %lf round_trips %zu rate %lf/s p50_us %u p99_us %u "
                      "max_us %u errors %llu",
                      &n, &secs, &trips, &rate, &p50, &p99, &max_us, &errors) != 8 ||
          client_status != 0 || errors != 0) {
        std::fprintf(stderr, "bench-echo: %s with %ld clients failed: %s", server_name.c_str(),
                     clients, result.empty() ? "(no result)\n" : result.c_str());
        ++failures;
      }
      if (!WIFEXITED(server_status) || WEXITSTATUS(server_status) != 0) {
        std::fprintf(stderr, "bench-echo: %s did not exit 0 on SIGTERM (status %#x)\n",
                     server_name.c_str(), server_status);
        ++failures;
      }
      std::printf("| %s | %ld | %.0f | %u | %u | %zu | %ld | %.1f | %.1f | %.1f |\n",
                  server_name.c_str(), clients, rate, p50, p99, loaded.processes, loaded.rss_kb,
                  static_cast<double>(loaded.rss_kb) / static_cast<double>(clients),
                  static_cast<double>(loaded.rss_kb - idle.rss_kb) / static_cast<double>(clients),
                  static_cast<double>(loaded.pss_kb) / static_cast<double>(clients));
      std::fflush(stdout);
    }
  }
  return failures == 0 ? 0 : 1;
}
