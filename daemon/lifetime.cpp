#include "lifetime.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "json_dump.h"
#include "json_text.h"
#include "proc_parse.h"
#include "wait_status.h"

namespace forkwatch {
namespace {

// argv is read up to this many bytes: a lifetime row is a ledger entry, not
// a copy of a 2 MiB command line (issue 19's argv bounds).
constexpr size_t kMaxArgvBytes = 4096;

// The whole of a small /proc file, or nullopt when the process is gone.
std::optional<std::string> read_small(const std::string& path, size_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out(max, '\0');
  ssize_t n = ::read(fd, out.data(), max);
  ::close(fd);
  if (n < 0) return std::nullopt;
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

std::string lifetime_description(const Lifetime& l) {
  if (l.exited_ns == 0) return "running";
  if (!l.raw_status) return "unknown (events lost)";
  return describe(decode_wait_status(*l.raw_status));
}

void put_lifetime_fields(std::string& out, const Lifetime& l) {
  using namespace json_text;
  const auto opt = [](int64_t v) { return v ? std::optional<int64_t>(v) : std::nullopt; };
  put_field(out, "\"pid\":", l.pid);
  put_field(out, ",\"ppid\":", l.ppid);
  put_field(out, ",\"worker_id\":", l.worker_id);
  put_field(out, ",\"comm\":", std::string_view(l.comm));
  put_raw(out, ",\"argv\":[");
  for (size_t i = 0; i < l.argv.size(); ++i) {
    if (i) out += ',';
    put_string(out, l.argv[i]);
  }
  put_raw(out, "]");
  put_field(out, ",\"forked_ns\":", l.forked_ns);
  put_field(out, ",\"exited_ns\":", opt(l.exited_ns));
  put_field(out, ",\"raw_status\":", l.raw_status);
  put_field(out, ",\"description\":", std::string_view(lifetime_description(l)));
}

std::string lifetime_json(const Lifetime& l, std::optional<int64_t> wait_id) {
  using namespace json_text;
  std::string out;
  out.reserve(256);
  put_field(out, "{\"id\":", l.id);
  out += ',';
  put_lifetime_fields(out, l);
  put_field(out, ",\"argv_lost\":", l.argv_lost);
  put_field(out, ",\"exec_ns\":", l.exec_ns ? std::optional<int64_t>(l.exec_ns) : std::nullopt);
  put_field(out, ",\"execs\":", l.execs);
  put_field(out, ",\"reaped_by_daemon\":", l.reaped_by_daemon);
  put_field(out, ",\"wait_id\":", wait_id);
  put_field(out, ",\"core_dumped\":", l.core_dumped);
  put_field(out, ",\"from_scan\":", l.from_scan);
  put_field(out, ",\"threads\":", l.threads);
  if (l.raw_status) {
    const WaitStatus s = decode_wait_status(*l.raw_status);
    put_field(out, ",\"wifexited\":", s.exited);
    put_field(out, ",\"wexitstatus\":", s.exit_status);
    put_field(out, ",\"wifsignaled\":", s.signaled);
    put_field(out, ",\"wtermsig\":", s.term_sig);
    put_field(out, ",\"wcoredump\":", s.core_dumped);
  }
  out += '}';
  return out;
}

std::string thread_lifetime_json(const ThreadLifetime& t) {
  using namespace json_text;
  std::string out;
  out.reserve(160);
  put_field(out, "{\"id\":", t.id);
  put_field(out, ",\"lifetime_id\":", t.lifetime_id);
  put_field(out, ",\"pid\":", t.pid);
  put_field(out, ",\"tid\":", t.tid);
  put_field(out, ",\"first_name\":", std::string_view(t.first_name));
  put_field(out, ",\"name\":", std::string_view(t.name));
  put_field(out, ",\"created_ns\":", t.created_ns);
  put_field(out, ",\"exited_ns\":", t.exited_ns ? std::optional<int64_t>(t.exited_ns) : std::nullopt);
  out += '}';
  return out;
}

LifetimeTracker::LifetimeTracker(LifetimeSink& sink, ProcessEventStats& stats, std::function<void(Event)> emit,
                                 pid_t daemon_pid, std::string proc_root)
    : sink_(sink), stats_(stats), emit_(std::move(emit)), daemon_pid_(daemon_pid), proc_root_(std::move(proc_root)) {
  attribution_ = [this](pid_t pid, pid_t ppid, std::optional<int64_t> parent) { return attribute(pid, ppid, parent); };
}

std::optional<int64_t> LifetimeTracker::attribute(pid_t pid, pid_t /*ppid*/, std::optional<int64_t> parent) const {
  if (auto it = main_pids_.find(pid); it != main_pids_.end()) return it->second;
  return parent;
}

void LifetimeTracker::note_spawn(int64_t worker_id, pid_t pid) {
  main_pids_[pid] = worker_id;
  // The fork was seen before the supervisor knew whose it was: claim it now.
  if (auto it = live_.find(pid); it != live_.end()) it->second.worker_id = worker_id;
}

void LifetimeTracker::apply(std::vector<ProcEvent>& batch, int64_t mono_to_real_ns) {
  // Within a batch, kernel time orders events from different CPUs.
  std::stable_sort(batch.begin(), batch.end(),
                   [](const ProcEvent& a, const ProcEvent& b) { return a.mono_ns < b.mono_ns; });
  std::vector<pid_t> forked;
  for (const ProcEvent& e : batch) {
    ++stats_.events;
    // A process's fork, or a thread's (its exit or rename may have come first).
    const bool was_fork = e.op == ProcOp::kFork;
    if (!apply_one(e, mono_to_real_ns)) {
      if (e.op == ProcOp::kExec || e.op == ProcOp::kExit || e.op == ProcOp::kComm) hold(e, mono_to_real_ns);
    } else if (was_fork && pending_tgids_.count(e.tgid)) {
      forked.push_back(e.tgid);
    }
  }
  if (forked.empty()) return;
  // A fork we now know completes events that came before it.
  std::deque<Pending> keep;
  for (Pending& p : pending_) {
    const bool ours = std::find(forked.begin(), forked.end(), p.event.tgid) != forked.end();
    if (ours && apply_one(p.event, p.to_real)) {
      unhold(p.event.tgid);
    } else {
      keep.push_back(std::move(p));
    }
  }
  pending_.swap(keep);
}

void LifetimeTracker::hold(const ProcEvent& e, int64_t to_real) {
  pending_.push_back({e, to_real});
  ++pending_tgids_[e.tgid];
  if (pending_.size() > kPendingMax) {
    unhold(pending_.front().event.tgid);
    pending_.pop_front();
  }
}

void LifetimeTracker::unhold(pid_t tgid) {
  auto it = pending_tgids_.find(tgid);
  if (it != pending_tgids_.end() && --it->second <= 0) pending_tgids_.erase(it);
}

bool LifetimeTracker::apply_one(const ProcEvent& e, int64_t to_real) {
  switch (e.op) {
    case ProcOp::kFork: {
      if (e.is_thread()) return on_thread_fork(e, to_real);
      auto parent = live_.find(e.parent_tgid);
      std::optional<int64_t> parent_worker;
      if (parent != live_.end()) parent_worker = parent->second.worker_id;
      const std::optional<int64_t> worker = attribution_(e.tgid, e.parent_tgid, parent_worker);
      if (!worker) return false;
      on_fork(e, to_real);
      Lifetime& l = live_[e.tgid];
      l.worker_id = *worker;
      if (parent != live_.end()) {
        l.comm = parent->second.comm;
        l.argv = parent->second.argv;
      }
      notify("fork", l);
      return true;
    }
    case ProcOp::kExec: {
      auto it = live_.find(e.tgid);
      if (it == live_.end()) return false;
      on_exec(it->second, e, to_real);
      return true;
    }
    case ProcOp::kComm: {
      auto it = live_.find(e.tgid);
      if (it == live_.end()) return false;
      if (e.pid == e.tgid) {
        it->second.comm = e.comm;
        return true;
      }
      ThreadLifetime* t = nullptr;
      if (auto pt = threads_.find(e.tgid); pt != threads_.end())
        if (auto tt = pt->second.find(e.pid); tt != pt->second.end()) t = &tt->second;
      if (!t) return false;  // the thread's creation is still to come (another CPU's event)
      t->name = e.comm;
      unwritten_threads_[t->tid] = t->pid;
      return true;
    }
    case ProcOp::kCoredump: {
      auto it = live_.find(e.tgid);
      if (it == live_.end()) return false;
      it->second.core_dumped = true;
      return true;
    }
    case ProcOp::kExit: {
      auto it = live_.find(e.tgid);
      if (it == live_.end()) return false;
      if (e.is_thread()) return on_thread_exit(it->second, e, to_real);
      on_exit(e.tgid, e, to_real);
      return true;
    }
    default: return true;  // uid, gid, sid, ptrace: nothing a lifetime keeps
  }
}

void LifetimeTracker::on_fork(const ProcEvent& e, int64_t to_real) {
  auto [it, fresh] = live_.try_emplace(e.tgid);
  Lifetime& l = it->second;
  if (!fresh) {
    // The pid was reused before the old process's exit reached us: that exit
    // was lost, so the old lifetime ends without a status.
    l.exited_ns = e.mono_ns + to_real;
    finish_threads(l.pid, l.exited_ns);
    finish(l);
    l = Lifetime{};
  }
  l.id = next_id_++;
  l.pid = e.tgid;
  l.ppid = e.parent_tgid;
  l.forked_ns = e.mono_ns + to_real;
  l.mono_forked_ns = e.mono_ns;
  unwritten_[l.pid] = e.mono_ns;
}

void LifetimeTracker::read_exec(Lifetime& l) {
  const std::string dir = proc_root_ + "/" + std::to_string(l.pid);
  auto cmdline = read_small(dir + "/cmdline", kMaxArgvBytes);
  auto comm = read_small(dir + "/comm", 64);
  // A zombie (or a gone process) has no cmdline: argv cannot be known now.
  if (!cmdline || cmdline->empty()) {
    l.argv_lost = true;
  } else {
    l.argv = parse_cmdline(*cmdline);
    l.argv_lost = false;
  }
  if (comm && !comm->empty()) {
    if (comm->back() == '\n') comm->pop_back();
    l.comm = *comm;
  }
}

void LifetimeTracker::on_exec(Lifetime& l, const ProcEvent& e, int64_t to_real) {
  l.exec_ns = e.mono_ns + to_real;
  ++l.execs;
  read_exec(l);
  stats_.exec_lag_ns_max = std::max<int64_t>(stats_.exec_lag_ns_max, monotonic_ns() - e.mono_ns);
  if (l.argv_lost) ++stats_.argv_lost;
  if (l.exited_ns == 0) unwritten_[l.pid] = l.mono_forked_ns;
  notify("exec", l);
}

void LifetimeTracker::on_exit(pid_t tgid, const ProcEvent& e, int64_t to_real) {
  auto it = live_.find(tgid);
  Lifetime& l = it->second;
  l.exited_ns = e.mono_ns + to_real;
  l.raw_status = e.exit_code;
  l.reaped_by_daemon = e.parent_tgid == daemon_pid_;
  l.live_threads = 0;
  finish_threads(tgid, l.exited_ns);
  finish(l);
  notify("exit", l);
  main_pids_.erase(tgid);
  unwritten_.erase(tgid);
  live_.erase(it);
}

bool LifetimeTracker::on_thread_fork(const ProcEvent& e, int64_t to_real) {
  auto it = live_.find(e.tgid);
  if (it == live_.end()) return false;  // not a supervised process (or its fork is still to come)
  Lifetime& l = it->second;
  ++l.threads;
  ++l.live_threads;
  auto& mine = threads_[e.tgid];
  if (auto old = mine.find(e.pid); old != mine.end()) {
    // The tid was reused before the old thread's exit reached us: that exit was lost.
    old->second.exited_ns = e.mono_ns + to_real;
    sink_.record_thread(old->second);
    ++stats_.thread_lifetimes;
  }
  ThreadLifetime& t = mine[e.pid];
  t = ThreadLifetime{};
  t.id = next_thread_id_++;
  t.lifetime_id = l.id;
  t.tid = e.pid;
  t.pid = e.tgid;
  // A new thread carries its creator's name; the event does not say which
  // thread created it (its "parent" is the process's parent), so the
  // process's name stands in: the main thread's, which made most threads.
  t.first_name = t.name = l.comm;
  t.created_ns = e.mono_ns + to_real;
  t.mono_created_ns = e.mono_ns;
  unwritten_threads_[e.pid] = e.tgid;
  return true;
}

bool LifetimeTracker::on_thread_exit(Lifetime& l, const ProcEvent& e, int64_t to_real) {
  auto pt = threads_.find(l.pid);
  if (pt == threads_.end()) return false;
  auto tt = pt->second.find(e.pid);
  if (tt == pt->second.end()) return false;  // created on a CPU whose event is still to come: held
  l.live_threads = std::max(1, l.live_threads - 1);
  tt->second.exited_ns = e.mono_ns + to_real;
  sink_.record_thread(tt->second);
  ++stats_.thread_lifetimes;
  unwritten_threads_.erase(e.pid);
  pt->second.erase(tt);
  if (pt->second.empty()) threads_.erase(pt);
  return true;
}

void LifetimeTracker::finish_threads(pid_t pid, int64_t exited_ns) {
  auto pt = threads_.find(pid);
  if (pt == threads_.end()) return;
  for (auto& [tid, t] : pt->second) {
    t.exited_ns = exited_ns;
    sink_.record_thread(t);
    ++stats_.thread_lifetimes;
    unwritten_threads_.erase(tid);
  }
  threads_.erase(pt);
}

const std::unordered_map<pid_t, ThreadLifetime>* LifetimeTracker::live_threads(pid_t pid) const {
  auto pt = threads_.find(pid);
  return pt == threads_.end() ? nullptr : &pt->second;
}

void LifetimeTracker::finish(Lifetime& l) {
  ++stats_.lifetimes;
  sink_.record_lifetime(l);
}

void LifetimeTracker::notify(const char* op, const Lifetime& l) {
  if (on_change_) on_change_(op, l);
  Window& w = window_[l.worker_id];
  if (w.sent >= kPerWindow) {
    // A storm: from here on this window only counts, sent at its end.
    if (op[1] == 'o') ++w.fork;
    else if (op[1] == 'x' && op[2] == 'e') ++w.exec;
    else ++w.exit;
    return;
  }
  ++w.sent;
  Event ev;
  ev.kind = EventKind::kProcess;
  ev.ts_ns = realtime_ns();
  ev.worker_id = l.worker_id;
  ev.pid = l.pid;
  std::string body = lifetime_json(l);
  ev.data_json = "{\"type\":\"process\",\"op\":\"" + std::string(op) + "\",\"lifetime\":" + body + "}";
  emit_(std::move(ev));
}

void LifetimeTracker::record_gap(ProcessGap g) {
  ++stats_.gaps;
  sink_.record_gap(g);
  Event ev;
  ev.kind = EventKind::kProcess;
  ev.ts_ns = g.ts_ns;
  nlohmann::json j = {{"type", "process"}, {"op", "gap"}, {"ts_ns", g.ts_ns}, {"lost", g.lost}, {"reason", g.reason}};
  ev.data_json = dump_json(j);
  emit_(std::move(ev));
}

void LifetimeTracker::resync(std::span<const ProcessInfo> procs, int64_t now_real_ns, int64_t boot_to_mono_ns,
                             long ticks_per_s) {
  std::unordered_map<pid_t, const ProcessInfo*> by_pid;
  for (const ProcessInfo& p : procs) by_pid[p.pid] = &p;
  auto started_mono = [&](const ProcessInfo& p) {
    return static_cast<int64_t>(p.starttime) * (1'000'000'000 / ticks_per_s) + boot_to_mono_ns;
  };
  const int64_t tick_ns = 1'000'000'000 / ticks_per_s;
  // Tracked processes that are gone, or whose pid now names a newer process,
  // exited while we were not told: their end is known only to this scan.
  // The kernel stamps a process's start before its fork event, which can
  // come many ms later on a busy machine (the forker preempted in between),
  // and /proc gives the start in whole ticks, rounded down: the same process
  // never looks newer than its fork event by a tick. A newer process under
  // the pid started after the old one exited, so after its fork event.
  std::vector<pid_t> gone;
  for (auto& [pid, l] : live_) {
    auto it = by_pid.find(pid);
    const bool same = it != by_pid.end() && it->second->state != 'Z' &&
                      started_mono(*it->second) <= l.mono_forked_ns + tick_ns;
    if (!same) gone.push_back(pid);
  }
  for (pid_t pid : gone) {
    Lifetime& l = live_[pid];
    l.exited_ns = now_real_ns;
    l.raw_status.reset();
    finish_threads(pid, now_real_ns);
    finish(l);
    notify("exit", l);
    main_pids_.erase(pid);
    unwritten_.erase(pid);
    live_.erase(pid);
  }
  // Processes below a tracked one (or a worker's main pid) that we never saw
  // fork: parents first, so that a whole missed subtree is found.
  std::vector<const ProcessInfo*> order;
  for (const ProcessInfo& p : procs) order.push_back(&p);
  std::sort(order.begin(), order.end(),
            [](const ProcessInfo* a, const ProcessInfo* b) { return a->starttime < b->starttime; });
  const int64_t real_minus_mono = now_real_ns - monotonic_ns();
  for (const ProcessInfo* p : order) {
    if (p->kernel_thread || p->state == 'Z' || live_.count(p->pid)) continue;
    auto parent = live_.find(p->ppid);
    std::optional<int64_t> parent_worker;
    if (parent != live_.end()) parent_worker = parent->second.worker_id;
    const std::optional<int64_t> worker = attribution_(p->pid, p->ppid, parent_worker);
    if (!worker) continue;
    Lifetime& l = live_[p->pid];
    l.id = next_id_++;
    l.pid = p->pid;
    l.ppid = p->ppid;
    l.worker_id = *worker;
    l.mono_forked_ns = started_mono(*p);
    l.forked_ns = l.mono_forked_ns + real_minus_mono;
    l.comm = p->comm;
    l.argv = p->cmdline;
    l.from_scan = true;
    l.live_threads = static_cast<int>(std::max<int64_t>(1, p->num_threads));
    unwritten_[l.pid] = 0;  // written at the next tick
    notify("fork", l);
  }
}

void LifetimeTracker::tick(int64_t now_mono_ns, int64_t mono_to_real_ns) {
  for (auto it = unwritten_.begin(); it != unwritten_.end();) {
    if (now_mono_ns - it->second < kAliveWriteNs) {
      ++it;
      continue;
    }
    if (auto l = live_.find(it->first); l != live_.end()) sink_.record_lifetime(l->second);
    it = unwritten_.erase(it);
  }
  for (auto it = unwritten_threads_.begin(); it != unwritten_threads_.end();) {
    const ThreadLifetime* t = nullptr;
    if (auto pt = threads_.find(it->second); pt != threads_.end())
      if (auto tt = pt->second.find(it->first); tt != pt->second.end()) t = &tt->second;
    if (t && now_mono_ns - t->mono_created_ns < kAliveWriteNs) {
      ++it;
      continue;
    }
    if (t) sink_.record_thread(*t);
    it = unwritten_threads_.erase(it);
  }
  while (!pending_.empty() && now_mono_ns - pending_.front().event.mono_ns > kPendingNs) {
    const ProcEvent& e = pending_.front().event;
    // A thread's exit whose creation never came (a thread older than our
    // record of its process, found by a /proc re-read): it still leaves the count.
    if (e.op == ProcOp::kExit && e.is_thread())
      if (auto l = live_.find(e.tgid); l != live_.end()) l->second.live_threads = std::max(1, l->second.live_threads - 1);
    unhold(e.tgid);
    pending_.pop_front();
  }
  for (auto& [worker, w] : window_) {
    for (auto [op, n] : {std::pair{"fork", w.fork}, {"exec", w.exec}, {"exit", w.exit}}) {
      if (n == 0) continue;
      Event ev;
      ev.kind = EventKind::kProcess;
      ev.ts_ns = now_mono_ns + mono_to_real_ns;
      ev.worker_id = worker;
      ev.data_json = "{\"type\":\"process\",\"op\":\"" + std::string(op) + "\",\"worker_id\":" + std::to_string(worker) +
                     ",\"count\":" + std::to_string(n) + ",\"coalesced\":true}";
      emit_(std::move(ev));
    }
  }
  window_.clear();
}

}  // namespace forkwatch
