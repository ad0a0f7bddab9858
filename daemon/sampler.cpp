#include "sampler.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "json_dump.h"
#include "log.h"
#include "proc_parse.h"

namespace forkwatch {
namespace {

// The thread count a client sees: the listed threads, which the tree shows,
// rather than stat's count, which a thread starting or ending between the two
// reads makes differ.
int64_t thread_count(const ProcessInfo& p) {
  return p.threads.empty() ? p.num_threads : static_cast<int64_t>(p.threads.size());
}

// Used CPU in its sample. Process and thread times are rounded to ticks
// separately, so a thread can show a last tick where its process shows none.
bool busy(const ProcessInfo& p) {
  return p.cpu_percent > 0 ||
         std::any_of(p.threads.begin(), p.threads.end(), [](const ThreadInfo& th) { return th.cpu_percent > 0; });
}

// The same threads by tid and name: none came, went or was renamed.
bool same_threads(const ProcessInfo& a, const ProcessInfo& b) {
  return std::equal(a.threads.begin(), a.threads.end(), b.threads.begin(), b.threads.end(),
                    [](const ThreadInfo& x, const ThreadInfo& y) { return x.tid == y.tid && x.name == y.name; });
}

}  // namespace

void SampleHistory::add(int64_t worker_id, Point p) {
  std::lock_guard lock(mu_);
  auto& d = points_[worker_id];
  d.push_back(p);
  while (!d.empty() && d.front().ts_ns < p.ts_ns - kKeepNs) d.pop_front();
}

void SampleHistory::forget_except(const std::unordered_map<int64_t, bool>& live) {
  std::lock_guard lock(mu_);
  std::erase_if(points_, [&](const auto& kv) { return !live.contains(kv.first); });
}

std::string SampleHistory::json(int64_t worker_id) const {
  nlohmann::json out = nlohmann::json::array();
  std::lock_guard lock(mu_);
  auto it = points_.find(worker_id);
  if (it == points_.end()) return dump_json(out);
  for (const Point& p : it->second)
    out.push_back({{"ts_ns", p.ts_ns}, {"cpu_percent", p.cpu_percent}, {"rss_bytes", p.rss_bytes},
                   {"processes", p.processes}, {"threads", p.threads}, {"fds", p.fds},
                   {"fd_warning", p.fd_warning.empty() ? nlohmann::json() : nlohmann::json(p.fd_warning)}});
  return dump_json(out);
}

Sampler::Sampler(EventLoop& loop, SupervisorCounters& counters, int64_t sample_ms,
                 std::function<WorkerTags()> worker_tags, std::function<void(Event)> emit,
                 std::string proc_root)
    : loop_(loop), counters_(counters), sample_ns_(sample_ms * 1'000'000),
      worker_tags_(std::move(worker_tags)), emit_(std::move(emit)), reader_(proc_root), fd_counts_(std::move(proc_root)),
      cpu_(sysconf(_SC_CLK_TCK)), ticks_per_s_(sysconf(_SC_CLK_TCK)), boot_to_mono_ns_(monotonic_ns() - boottime_ns()) {}

void Sampler::start() { tick(); }

std::shared_ptr<TreeSample> Sampler::render(std::vector<ProcessInfo> procs, int64_t taken_ns, int64_t taken_real_ns,
                                            bool all) {
  const pid_t self = getpid();
  auto t = std::make_shared<TreeSample>();
  t->taken_ns = taken_ns;
  t->taken_real_ns = taken_real_ns;
  t->all_scope = all;
  t->tags = worker_tags_();
  t->tree = std::make_shared<const ProcessTree>(std::move(procs), taken_ns);
  const ProcessTree& tree = *t->tree;
  t->supervised_json = tree_json(tree, TreeScope::kSupervised, self, t->tags);
  if (all) t->all_json = tree_json(tree, TreeScope::kAll, self, t->tags);
  for (const auto& p : tree.processes()) {
    ++t->processes;
    t->threads += p.threads.empty() ? 1 : p.threads.size();
  }
  t->history = history_;
  return t;
}

void Sampler::note_change(std::string_view op, const Lifetime& l) {
  // Unwatched, nobody reads the tree, and the next request samples afresh
  // (the sample is older than the API's freshness bound by then).
  if (!latest_ || changes_.size() >= kMaxChanges || !watched()) return;
  ProcessChange c;
  c.op = op == "fork" ? ProcessChange::Op::kFork : op == "exec" ? ProcessChange::Op::kExec : ProcessChange::Op::kExit;
  c.pid = l.pid;
  c.ppid = l.ppid;
  c.comm = l.comm;
  c.argv = l.argv;
  c.starttime = starttime_ticks(l.mono_forked_ns, boot_to_mono_ns_, ticks_per_s_);
  changes_.push_back(std::move(c));
  if (!patch_timer_) patch_timer_ = loop_.add_timer(monotonic_ns() + kPatchDelayNs, [this] { patch(); });
}

void Sampler::patch() {
  patch_timer_ = 0;
  if (!latest_ || changes_.empty()) return;
  std::vector<ProcessInfo> procs = apply_process_changes(latest_->tree->processes(), changes_, getpid());
  changes_.clear();
  // The sample's time stays: its CPU and memory figures are that old. The
  // whole machine's JSON (scope=all) stays the sample's: rendering thousands
  // of processes up to 50 times a second is not worth a fork outside the
  // supervised tree; that scope is sampled only, as before.
  std::shared_ptr<TreeSample> t = render(std::move(procs), latest_->taken_ns, latest_->taken_real_ns, false);
  t->all_scope = latest_->all_scope;
  t->all_json = latest_->all_json;
  latest_ = std::move(t);
  fresh_ = true;
}

bool Sampler::watched() const {
  return monotonic_ns() - counters_.last_watch_ns.load() < kWatchWindowNs;
}

void Sampler::tick() {
  const bool w = watched() || needed();
  if (w) sample(monotonic_ns() < all_until_ns_);
  full_rate_ = w;
  timer_ = loop_.add_timer(monotonic_ns() + (w ? sample_ns_ : std::min(sample_ns_, kIdleCheckNs)),
                           [this] { tick(); });
}

void Sampler::set_observer(std::function<bool()> needed, std::function<void(const TreeSample&)> on_sample) {
  needed_ = std::move(needed);
  on_sample_ = std::move(on_sample);
}

void Sampler::wake() {
  // Only from idling: at the full rate already, a wake must not put the
  // next sample off (a worker restarting often would starve the others).
  if (full_rate_ || !timer_ || !needed()) return;
  loop_.cancel_timer(timer_);
  full_rate_ = true;
  timer_ = loop_.add_timer(monotonic_ns() + sample_ns_, [this] { tick(); });
}

void Sampler::request(bool all) {
  counters_.last_watch_ns = monotonic_ns();
  if (all) all_until_ns_ = monotonic_ns() + kWatchWindowNs;
  sample(all || monotonic_ns() < all_until_ns_);
}

void Sampler::sample(bool all) {
  timespec cpu0{}, cpu1{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
  const pid_t self = getpid();
  ScanOptions opts;
  if (!all) opts.subtree_root = self;
  auto scanned = reader_.scan(opts);
  if (!scanned) {
    log::error("sampling /proc: " + scanned.error().message());
    return;
  }
  cpu_.update(scanned->processes, scanned->monotonic_ns);
  fd_counts_.count(scanned->processes, self);
  // Everything the connector reported until now is in this read of /proc.
  changes_.clear();
  boot_to_mono_ns_ = monotonic_ns() - boottime_ns();
  std::shared_ptr<TreeSample> t = render(std::move(scanned->processes), scanned->monotonic_ns, realtime_ns(), all);
  const ProcessTree& tree = *t->tree;

  // Per-worker totals over the worker's whole subtree, and what changed.
  nlohmann::json workers = nlohmann::json::array();
  std::unordered_map<int64_t, bool> live;
  for (const auto& [pid, tag] : t->tags) {
    const ProcessInfo* main = tree.find(pid);
    if (!main) continue;
    const WorkerFds fds = fd_counts_.worker(tree, pid, tag.id, t->taken_ns);
    SampleHistory::Point pt{t->taken_real_ns, main->cpu_percent, main->rss_bytes, 1,
                            static_cast<int>(main->num_threads), fds.fds, fds.warning};
    for (pid_t d : tree.descendants(pid))
      if (const ProcessInfo* p = tree.find(d)) {
        pt.cpu_percent += p->cpu_percent;
        pt.rss_bytes += p->rss_bytes;
        pt.processes += 1;
        pt.threads += static_cast<int>(p->num_threads);
      }
    history_->add(tag.id, pt);
    live[tag.id] = true;
    workers.push_back({{"id", tag.id}, {"pid", pid}, {"cpu_percent", pt.cpu_percent},
                       {"rss_bytes", pt.rss_bytes}, {"processes", pt.processes}, {"threads", pt.threads},
                       {"fds", fds.fds},
                       {"sockets", {{"listen", fds.sockets.listen}, {"established", fds.sockets.established},
                                    {"time_wait", fds.sockets.time_wait}, {"other", fds.sockets.other}}},
                       {"fd_limit_permille", fds.max_share_permille},
                       {"fd_warning", fds.warning.empty() ? nlohmann::json() : nlohmann::json(fds.warning)}});
  }
  history_->forget_except(live);
  fd_counts_.forget_except(live);

  // Told against the last sample's tree: what is new, gone or changed.
  const ProcessTree* last = sampled_.get();
  nlohmann::json nodes = nlohmann::json::array(), added = nlohmann::json::array(), removed = nlohmann::json::array();
  std::vector<pid_t> supervised = tree.descendants(self);
  supervised.push_back(self);
  for (pid_t pid : supervised) {
    const ProcessInfo* p = tree.find(pid);
    if (!p) continue;
    // (pid, starttime) names the process. A process cannot join the
    // supervised subtree other than by being born in it, so one the last
    // tree holds (in either scope) was supervised then too.
    const ProcessInfo* before = last ? last->find(pid) : nullptr;
    if (before && before->starttime != p->starttime) before = nullptr;
    if (!before) added.push_back(pid);
    nlohmann::json node{{"pid", pid}, {"state", std::string(1, p->state)}, {"cpu_percent", p->cpu_percent},
                        {"rss_bytes", p->rss_bytes}, {"num_threads", thread_count(*p)}};
    if (p->fd_count >= 0) node["fds"] = p->fd_count;
    // What changed in place is sent, so a client patches it rather than
    // refetching the tree: the name and command line after an exec or a
    // rename; the whole thread list when threads came, went or renamed
    // themselves (the daemon's own HTTP threads come and go with
    // connections). A multi-threaded process that uses CPU now, or did last
    // time (so its threads' figures fall back to zero), carries its threads'
    // figures; an idle tree's samples stay small.
    if (before && (before->comm != p->comm || before->cmdline != p->cmdline)) {
      node["comm"] = p->comm;
      node["cmdline"] = join_cmdline(p->cmdline);
    }
    const bool reshaped = before && !same_threads(*before, *p);
    if (reshaped || (p->threads.size() > 1 && (busy(*p) || (before && busy(*before))))) {
      nlohmann::json threads = nlohmann::json::array();
      for (const ThreadInfo& th : p->threads)
        threads.push_back({{"tid", th.tid}, {"name", th.name}, {"state", std::string(1, th.state)},
                           {"cpu_percent", th.cpu_percent},
                           {"wchan", th.wchan.empty() ? nlohmann::json() : nlohmann::json(th.wchan)}});
      node["threads"] = std::move(threads);
    }
    nodes.push_back(std::move(node));
  }
  if (last) {
    std::vector<pid_t> was = last->descendants(self);
    was.push_back(self);
    for (pid_t pid : was) {
      const ProcessInfo* now = tree.find(pid);
      if (!now || now->starttime != last->find(pid)->starttime) removed.push_back(pid);
    }
  }

  sampled_ = t->tree;
  latest_ = std::move(t);
  fresh_ = true;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
  ++counters_.samples;
  counters_.sample_cpu_ns += (cpu1.tv_sec - cpu0.tv_sec) * 1'000'000'000LL + (cpu1.tv_nsec - cpu0.tv_nsec);

  Event e;
  e.kind = EventKind::kSample;
  e.ts_ns = latest_->taken_real_ns;
  e.data_json = dump_json({{"type", "sample"}, {"ts_ns", e.ts_ns}, {"processes", latest_->processes},
                          {"threads", latest_->threads}, {"all_scope", all}, {"added", added},
                          {"removed", removed}, {"workers", workers}, {"nodes", nodes}});
  emit_(std::move(e));
  if (on_sample_) {
    const std::shared_ptr<const TreeSample> taken = latest_;  // what on_sample_ does may patch latest_
    on_sample_(*taken);
  }
}

}  // namespace forkwatch
