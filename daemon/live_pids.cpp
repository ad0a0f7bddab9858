#include "live_pids.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "event.h"
#include "family.h"
#include "fd.h"

namespace forkwatch {

std::string format_live_pids(const std::vector<LivePid>& pids) {
  std::string out;
  for (const LivePid& p : pids)
    out += std::to_string(p.worker_id) + " " + std::to_string(p.pid) + " " + std::to_string(p.pgid) + " " +
           std::to_string(p.start_time) + "\n";
  return out;
}

std::vector<LivePid> parse_live_pids(const std::string& text) {
  std::vector<LivePid> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    LivePid p;
    std::string rest;
    if (!(fields >> p.worker_id >> p.pid >> p.pgid >> p.start_time) || (fields >> rest)) continue;
    if (p.pid <= 1 || p.pgid <= 1) continue;  // never init, never "every process"
    out.push_back(p);
  }
  return out;
}

Status LivePidsFile::update(const std::vector<std::pair<int64_t, pid_t>>& live) {
  std::unordered_map<pid_t, LivePid> next;
  next.reserve(live.size());
  for (auto [id, pid] : live) {
    if (auto it = known_.find(pid); it != known_.end() && it->second.worker_id == id) {
      next.emplace(pid, it->second);
      continue;
    }
    // Gone already (died before the round ended): nothing to find later.
    const uint64_t start = process_start_time(pid);
    if (start == 0) continue;
    next.emplace(pid, LivePid{id, pid, pid, start});
  }
  known_ = std::move(next);
  std::vector<LivePid> rows;
  rows.reserve(known_.size());
  for (const auto& [pid, p] : known_) rows.push_back(p);
  std::sort(rows.begin(), rows.end(), [](const LivePid& a, const LivePid& b) { return a.worker_id < b.worker_id; });
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << format_live_pids(rows);
    out.flush();
    if (!out) return plain_error("cannot write " + tmp);
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return sys_error("rename(" + tmp + ", " + path_ + ")");
  return Ok{};
}

void LivePidsFile::clear() {
  known_.clear();
  ::unlink(path_.c_str());
}

namespace {

// A pidfd for the recorded process if it is still that process: opened first,
// then the start time checked, so the fd cannot name a recycled pid.
Fd open_if_same(const LivePid& p, const std::string& proc_root) {
  Fd fd(static_cast<int>(syscall(SYS_pidfd_open, p.pid, 0)));
  if (!fd) return {};
  if (process_start_time(p.pid, proc_root) != p.start_time) return {};
  return fd;
}

void signal_group(const LivePid& p, const Fd& pidfd, int sig) {
  syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0);
  // The group only while the process still leads it: a group number is
  // ours to signal only through its living leader.
  if (getpgid(p.pid) == p.pgid) kill(-p.pgid, sig);
}

bool exited(const Fd& pidfd) {
  pollfd pfd{pidfd.get(), POLLIN, 0};
  return poll(&pfd, 1, 0) == 1;
}

}  // namespace

std::vector<Leftover> end_previous_run(const std::string& path, int term_wait_ms, const std::string& proc_root) {
  std::vector<Leftover> out;
  std::ifstream in(path);
  if (!in) return out;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<Fd> fds;
  for (const LivePid& p : parse_live_pids(text)) {
    Leftover l{p};
    Fd fd = open_if_same(p, proc_root);
    l.running = fd.valid();
    if (fd) {
      signal_group(p, fd, SIGTERM);
      signal_group(p, fd, SIGCONT);  // a stopped process cannot act on SIGTERM
    }
    out.push_back(l);
    fds.push_back(std::move(fd));
  }
  const int64_t deadline = monotonic_ns() + int64_t{term_wait_ms} * 1'000'000;
  for (;;) {
    std::vector<pollfd> waiting;
    for (const Fd& fd : fds)
      if (fd && !exited(fd)) waiting.push_back({fd.get(), POLLIN, 0});
    const int64_t left_ms = (deadline - monotonic_ns()) / 1'000'000;
    if (waiting.empty() || left_ms <= 0) break;
    poll(waiting.data(), waiting.size(), static_cast<int>(std::min<int64_t>(left_ms, 100)));
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    if (!fds[i] || exited(fds[i])) continue;
    signal_group(out[i].recorded, fds[i], SIGKILL);
    out[i].killed = true;
  }
  ::unlink(path.c_str());
  return out;
}

}  // namespace forkwatch
