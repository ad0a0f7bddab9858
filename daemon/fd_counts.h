// FdCounts: per supervised process, how many descriptors it holds, and per
// worker (its whole subtree) the total, its sockets by state and a leak
// warning. Driven by the sampler at its rate, so an unwatched daemon counts
// nothing. Costs (bench/RESULTS.md, issue 18): one stat() of PID/fd per
// process per sample; the socket breakdown (a readlink per descriptor and the
// /proc/net tables) at most every kSocketRefreshNs per worker; PID/limits
// once per process lifetime. Loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "fd_reader.h"
#include "process_tree.h"

namespace forkwatch {

// The leak rule (docs/operations.md, "Descriptor warnings"), pure.
struct FdPoint {
  int64_t ts_ns;  // CLOCK_MONOTONIC
  int64_t fds;
};
inline constexpr int64_t kFdTrendWindowNs = 60LL * 1'000'000'000;
// "near_limit" when a process holds this share of its soft RLIMIT_NOFILE.
inline constexpr double kFdNearLimit = 0.8;
// "growing" when, over the window's points (at least 8 spanning 45 s), each
// quarter's lowest count is above the quarter's before, and the last
// quarter's lowest is at least kFdGrowthMin above the first's: a floor that
// keeps rising, which clients coming and going do not fake.
inline constexpr int64_t kFdGrowthMin = 8;
bool fd_growing(std::span<const FdPoint> points);

struct SocketStates {
  int64_t listen = 0, established = 0, time_wait = 0, other = 0;
};

struct WorkerFds {
  int64_t fds = 0;                 // over the worker's processes
  int64_t max_share_permille = 0;  // the fullest process: its count per mille of its soft limit
  SocketStates sockets;
  std::string warning;             // "", "growing" or "near_limit"
};

class FdCounts {
 public:
  static constexpr int64_t kSocketRefreshNs = 5LL * 1'000'000'000;

  explicit FdCounts(std::string proc_root = "/proc");

  // Sets fd_count on `self`'s descendants in `procs` (the other entries keep -1).
  void count(std::vector<ProcessInfo>& procs, pid_t self);
  // The worker whose main process is `pid`, over its subtree in `tree`.
  WorkerFds worker(const ProcessTree& tree, pid_t pid, int64_t worker_id, int64_t now_ns);
  // Drops what is kept of workers not in `live`.
  void forget_except(const std::unordered_map<int64_t, bool>& live);

 private:
  struct Limit {
    uint64_t starttime = 0;
    int64_t soft = 0;  // 0: unknown or unlimited
  };
  struct Trend {
    std::deque<FdPoint> points;
    int64_t sockets_at_ns = -kSocketRefreshNs;
    SocketStates sockets;
  };
  int64_t soft_limit(const ProcessInfo& p);
  SocketStates socket_states(std::span<const pid_t> pids);

  FdReader reader_;
  std::unordered_map<pid_t, Limit> limits_;
  std::unordered_map<int64_t, Trend> trends_;  // by worker id
};

}  // namespace forkwatch
