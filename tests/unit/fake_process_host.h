// FakeProcessHost: a ProcessHost with no processes, for the supervisor's unit
// tests. spawn() hands out made-up pids and records each request; signals are
// recorded, not sent; exit() queues a wait status that the next reap returns.
// Single-threaded, like the loop it stands in for.
#pragma once

#include <sys/wait.h>

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "process_host.h"

namespace forkwatch::testing {

class FakeProcessHost : public ProcessHost {
 public:
  struct Signal {
    pid_t pgid;
    int sig;
  };
  std::vector<SpawnRequest> spawned;
  std::vector<Signal> signals;  // to groups, in order
  std::string next_exec_error;  // the next spawn "fails to exec" with this
  std::map<int64_t, bool> frozen;
  std::vector<int64_t> released;
  std::map<int64_t, int64_t> oom;  // worker id -> memory.events oom_kill, where "the controller is there"
  pid_t next_pid = 1000;

  // The process `pid` ends with wait status `raw` (as wait4 fills it in).
  void exit(pid_t pid, int raw) {
    live_.erase(pid);
    Reaped r;
    r.pid = pid;
    r.raw = raw;
    r.ts_ns = realtime_ns();
    pending_.push_back(r);
  }
  static int exited(int code) { return (code & 0xff) << 8; }
  static int killed(int sig) { return sig & 0x7f; }
  bool alive(pid_t pid) const { return live_.contains(pid); }

  Status prepare() override { return Ok{}; }
  Result<SpawnedChild> spawn(int64_t, const SpawnRequest& req) override {
    spawned.push_back(req);
    SpawnedChild c;
    c.pid = next_pid++;
    c.exec_error = std::exchange(next_exec_error, "");
    if (c.exec_error.empty()) live_[c.pid] = true;
    else exit(c.pid, exited(127));
    return c;
  }
  int signal_group(pid_t pgid, int sig) override {
    signals.push_back({pgid, sig});
    return live_.contains(pgid) || sig == 0 ? 0 : ESRCH;
  }
  std::vector<FamilyMember> list_tree(const FamilyQuery&) override { return {}; }
  void signal_member(const FamilyMember&, int) override {}
  bool group_empty(pid_t pgid) override { return !live_.contains(pgid); }
  Status freeze(int64_t worker_id, bool f) override {
    frozen[worker_id] = f;
    return Ok{};
  }
  size_t reap(const std::function<bool(pid_t)>&, const std::function<void(const Reaped&)>& on) override {
    auto batch = std::move(pending_);
    pending_.clear();
    for (const Reaped& r : batch) on(r);
    return batch.size();
  }
  void release(int64_t worker_id) override { released.push_back(worker_id); }
  std::optional<int64_t> oom_kills(int64_t worker_id) override {
    auto it = oom.find(worker_id);
    return it == oom.end() ? std::nullopt : std::optional<int64_t>(it->second);
  }

 private:
  std::map<pid_t, bool> live_;
  std::deque<Reaped> pending_;
};

}  // namespace forkwatch::testing
