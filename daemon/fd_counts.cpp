#include "fd_counts.h"

#include <algorithm>

namespace forkwatch {

bool fd_growing(std::span<const FdPoint> points) {
  if (points.size() < 8) return false;
  const int64_t t0 = points.front().ts_ns, span = points.back().ts_ns - t0;
  if (span < 45LL * 1'000'000'000) return false;
  int64_t floor[4];
  std::fill(std::begin(floor), std::end(floor), INT64_MAX);
  for (const FdPoint& p : points) {
    size_t q = std::min<size_t>(3, static_cast<size_t>((p.ts_ns - t0) * 4 / (span + 1)));
    floor[q] = std::min(floor[q], p.fds);
  }
  for (int q = 1; q < 4; ++q)
    if (floor[q] == INT64_MAX || floor[q - 1] == INT64_MAX || floor[q] <= floor[q - 1]) return false;
  return floor[3] - floor[0] >= kFdGrowthMin;
}

FdCounts::FdCounts(std::string proc_root) : reader_(std::move(proc_root)) {}

void FdCounts::count(std::vector<ProcessInfo>& procs, pid_t self) {
  std::vector<int32_t> parents = parent_links(procs);
  std::vector<uint32_t> mine = subtree_indices(procs, parents, self);
  std::unordered_map<pid_t, Limit> kept;
  for (uint32_t i : mine) {
    ProcessInfo& p = procs[i];
    if (p.pid == self || p.state == 'Z') continue;  // a zombie holds nothing
    int64_t n = reader_.count(p.pid);
    p.fd_count = n >= 0 ? n : -1;
    if (auto it = limits_.find(p.pid); it != limits_.end()) kept.emplace(p.pid, it->second);
  }
  limits_ = std::move(kept);  // only processes still supervised
}

int64_t FdCounts::soft_limit(const ProcessInfo& p) {
  Limit& l = limits_[p.pid];
  // A limit changes by prlimit or exec of a setuid file; once per process is
  // the price of one file read a lifetime. A reused pid reads it again.
  if (l.starttime != p.starttime || l.soft == 0) {
    l.starttime = p.starttime;
    auto soft = reader_.nofile_limit(p.pid);
    l.soft = soft ? static_cast<int64_t>(*soft) : -1;
  }
  return l.soft;
}

SocketStates FdCounts::socket_states(std::span<const pid_t> pids) {
  SocketStates out;
  std::vector<uint64_t> inodes;
  for (pid_t pid : pids) {
    auto fds = reader_.list(pid, false);
    if (!fds) continue;
    for (const FdItem& f : *fds)
      if (f.kind == FdKind::kSocket) inodes.push_back(f.inode);
  }
  if (inodes.empty()) return out;
  std::sort(inodes.begin(), inodes.end());
  inodes.erase(std::unique(inodes.begin(), inodes.end()), inodes.end());  // shared by parent and child: once
  std::vector<SocketEntry> unowned;
  SocketTable table = reader_.sockets(pids.front(), &unowned);
  std::vector<std::string> listening;
  for (uint64_t ino : inodes) {
    auto it = table.find(ino);
    if (it == table.end()) {
      ++out.other;
      continue;
    }
    const std::string& st = it->second.state;
    if (st == "listen") {
      ++out.listen;
      listening.push_back(it->second.local);
    } else if (st == "established") {
      ++out.established;
    } else {
      ++out.other;
    }
  }
  // A time-wait connection belongs to no process any more: it counts for the
  // worker whose listener accepted it (the same local address).
  for (const SocketEntry& e : unowned)
    if (e.state == "time_wait" && std::find(listening.begin(), listening.end(), e.local) != listening.end())
      ++out.time_wait;
  return out;
}

WorkerFds FdCounts::worker(const ProcessTree& tree, pid_t pid, int64_t worker_id, int64_t now_ns) {
  WorkerFds w;
  std::vector<pid_t> pids{pid};
  for (pid_t d : tree.descendants(pid)) pids.push_back(d);
  std::vector<pid_t> counted;
  for (pid_t p : pids) {
    const ProcessInfo* info = tree.find(p);
    if (!info || info->fd_count < 0) continue;
    counted.push_back(p);
    w.fds += info->fd_count;
    int64_t soft = soft_limit(*info);
    if (soft > 0) w.max_share_permille = std::max(w.max_share_permille, info->fd_count * 1000 / soft);
  }
  Trend& t = trends_[worker_id];
  t.points.push_back({now_ns, w.fds});
  while (!t.points.empty() && t.points.front().ts_ns < now_ns - kFdTrendWindowNs) t.points.pop_front();
  if (!counted.empty() && now_ns - t.sockets_at_ns >= kSocketRefreshNs) {
    t.sockets = socket_states(counted);
    t.sockets_at_ns = now_ns;
  }
  w.sockets = t.sockets;
  const std::vector<FdPoint> points(t.points.begin(), t.points.end());
  if (w.max_share_permille >= static_cast<int64_t>(kFdNearLimit * 1000)) w.warning = "near_limit";
  else if (fd_growing(points)) w.warning = "growing";
  return w;
}

void FdCounts::forget_except(const std::unordered_map<int64_t, bool>& live) {
  std::erase_if(trends_, [&](const auto& kv) { return !live.contains(kv.first); });
}

}  // namespace forkwatch
