#include "worker_metrics.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <climits>

#include "cgroup.h"
#include "exit_cause.h"
#include "worker_state.h"

namespace forkwatch {

std::string_view exit_how(const WaitStatus& s) { return s.signaled ? "signaled" : "exited"; }

// exit_cause_name's strings are static: the tally keeps the view.
std::string_view exit_cause_label(const WaitRecord& r) { return exit_cause_name(r.cause); }

void WorkerTally::publish(const Event& e) {
  if ((e.kind != EventKind::kExit && e.kind != EventKind::kAdopt) || !e.wait || !e.wait->worker_id) return;
  const WaitRecord& r = *e.wait;
  if (!r.status.terminated()) return;
  const double cpu_s = static_cast<double>(r.rusage.utime_us + r.rusage.stime_us) / 1e6;
  std::lock_guard lock(mu_);
  Worker& w = workers_[*r.worker_id];
  w.pending.emplace_back(r.ts_ns, cpu_s);
  // Bounded: with nobody rendering, the oldest fold at once (a render then
  // sees them as gone, which they are).
  if (w.pending.size() > 256) fold(w, w.pending[w.pending.size() / 2].first);
  if (e.kind != EventKind::kExit) return;  // an orphan's end is not the worker's exit
  const std::string_view how = exit_how(r.status), cause = exit_cause_label(r);
  auto it = std::find_if(w.exits.begin(), w.exits.end(), [&](const Exits& x) { return x.how == how && x.cause == cause; });
  if (it == w.exits.end()) it = w.exits.insert(w.exits.end(), Exits{how, cause, 0});
  ++it->count;
}

void WorkerTally::fold(Worker& w, int64_t upto_ns) {
  if (upto_ns <= w.folded_to_ns) return;
  auto keep = std::stable_partition(w.pending.begin(), w.pending.end(),
                                    [&](const auto& p) { return p.first > upto_ns; });
  for (auto it = keep; it != w.pending.end(); ++it) w.gone_cpu_s += it->second;
  w.pending.erase(keep, w.pending.end());
  w.folded_to_ns = upto_ns;
}

void WorkerTally::forget_absent(const Snapshot& snapshot) {
  const auto& ws = snapshot.workers;  // by id, ascending
  const int64_t newest = ws.empty() ? 0 : ws.back().id;
  std::erase_if(workers_, [&](const auto& kv) {
    auto it = std::lower_bound(ws.begin(), ws.end(), kv.first, [](const WorkerView& w, int64_t id) { return w.id < id; });
    return kv.first <= newest && (it == ws.end() || it->id != kv.first);
  });
}

void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
}

namespace {

void append_number(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_number(std::string& out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ").append(name).append(" ");
  out.append(type).append("\n");
}

// What the latest /proc sample saw of one worker: its main process and every descendant.
struct Live {
  bool sampled = false;
  double cpu_s = 0;
  uint64_t rss = 0, processes = 0, threads = 0;
};

Live live_of(const WorkerView& w, const TreeSample* t, double tick_s) {
  Live l;
  if (!t || !t->tree) return l;
  l.sampled = true;
  const ProcessInfo* main = w.pid > 0 ? t->tree->find(w.pid) : nullptr;
  if (!main) return l;
  auto add = [&](const ProcessInfo& p) {
    l.cpu_s += static_cast<double>(p.utime + p.stime) * tick_s;
    l.rss += static_cast<uint64_t>(std::max<int64_t>(p.rss_bytes, 0));
    l.processes += 1;
    l.threads += static_cast<uint64_t>(std::max<int64_t>(p.num_threads, 1));
  };
  add(*main);
  for (pid_t d : t->tree->descendants(w.pid))
    if (const ProcessInfo* p = t->tree->find(d)) add(*p);
  return l;
}

constexpr WorkerState kStates[] = {WorkerState::kStarting, WorkerState::kRunning, WorkerState::kStopping,
                                   WorkerState::kStopped,  WorkerState::kExited,  WorkerState::kBackoff,
                                   WorkerState::kFatal};

}  // namespace

void render_worker_metrics(std::string& out, const Snapshot& snapshot, WorkerTally* tally) {
  const TreeSample* t = snapshot.tree.get();
  const double tick_s = 1.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  struct Row {
    const WorkerView* w;
    std::string labels;  // program="..",worker="..",id=".."
    Live live;
    double cpu_s;
    std::vector<WorkerTally::Exits> exits;
  };
  std::vector<Row> rows;
  rows.reserve(snapshot.workers.size());
  auto add_row = [&](const WorkerView& w, const WorkerTally::Worker& tallied) {
    Row r{&w, {}, live_of(w, t, tick_s), 0, tallied.exits};
    r.labels.reserve(48 + w.program.size() + w.name.size());
    r.labels.append("program=\"");
    append_label_value(r.labels, w.program);
    r.labels.append("\",worker=\"");
    append_label_value(r.labels, w.name);
    r.labels.append("\",id=\"");
    append_number(r.labels, static_cast<uint64_t>(w.id));
    r.labels.append("\"");
    r.cpu_s = tallied.gone_cpu_s + r.live.cpu_s;
    rows.push_back(std::move(r));
  };
  if (tally) {
    tally->visit(snapshot, t ? t->taken_real_ns : INT64_MAX, add_row);
  } else {
    const WorkerTally::Worker none;
    for (const auto& w : snapshot.workers) add_row(w, none);
  }
  out.reserve(out.size() + rows.size() * 1600);

  // One line: name{labels[,extra]} value
  auto line = [&](std::string_view name, const Row& r, std::string_view extra, auto value) {
    out.append(name).append("{").append(r.labels);
    if (!extra.empty()) out.append(",").append(extra);
    out.append("} ");
    append_number(out, value);
    out += '\n';
  };
  auto per_worker = [&](std::string_view name, std::string_view type, std::string_view help, auto value_of) {
    family(out, name, type, help);
    for (const Row& r : rows) value_of(r);
  };

  per_worker("forkwatch_worker_up", "gauge", "1 while the worker's main process is alive.",
             [&](const Row& r) { line("forkwatch_worker_up", r, "", uint64_t{r.w->pid > 0}); });
  per_worker("forkwatch_worker_state", "gauge", "1 for the worker's current state, 0 for the others.",
             [&](const Row& r) {
               for (WorkerState s : kStates) {
                 const std::string_view name = worker_state_name(s);
                 std::string extra = "state=\"" + std::string(name) + "\"";
                 line("forkwatch_worker_state", r, extra, uint64_t{r.w->state == name});
               }
             });
  per_worker("forkwatch_worker_restarts_total", "counter", "Restarts of the worker, automatic and requested.",
             [&](const Row& r) { line("forkwatch_worker_restarts_total", r, "", static_cast<uint64_t>(r.w->restarts)); });
  per_worker("forkwatch_worker_exits_total", "counter",
             "Ends of the worker's main process, by how (exited, signaled) and cause.", [&](const Row& r) {
               // The two plain outcomes are always there, so a first crash is an increase, not a new series.
               for (std::string_view how : {"exited", "signaled"})
                 if (std::none_of(r.exits.begin(), r.exits.end(),
                                  [&](const auto& x) { return x.how == how && x.cause == how; }))
                   line("forkwatch_worker_exits_total", r,
                        "how=\"" + std::string(how) + "\",cause=\"" + std::string(how) + "\"", uint64_t{0});
               for (const auto& x : r.exits)
                 line("forkwatch_worker_exits_total", r,
                      "how=\"" + std::string(x.how) + "\",cause=\"" + std::string(x.cause) + "\"", x.count);
             });
  per_worker("forkwatch_worker_cpu_seconds_total", "counter",
             "CPU time of the worker's processes: those reaped (their rusage) and those alive at the last sample.",
             [&](const Row& r) { line("forkwatch_worker_cpu_seconds_total", r, "", r.cpu_s); });
  // From each worker's cgroup (issue 13), read at scrape time: only workers
  // in a cgroup have these series.
  {
    std::vector<std::pair<const Row*, CgroupStats>> cg;
    for (const Row& r : rows)
      if (!r.w->cgroup_dir.empty()) cg.emplace_back(&r, read_cgroup_stats(r.w->cgroup_dir));
    family(out, "forkwatch_worker_cgroup_cpu_seconds_total", "counter",
           "CPU time used in the worker's cgroup (cpu.stat usage_usec): every process that ran in it, reaped ones included.");
    for (const auto& [r, s] : cg) line("forkwatch_worker_cgroup_cpu_seconds_total", *r, "", s.cpu_usage_usec / 1e6);
    family(out, "forkwatch_worker_cgroup_cpu_pressure_seconds_total", "counter",
           "Time some task of the worker's cgroup waited for a CPU (cpu.pressure, some total).");
    for (const auto& [r, s] : cg)
      if (s.cpu_pressure_us) line("forkwatch_worker_cgroup_cpu_pressure_seconds_total", *r, "", *s.cpu_pressure_us / 1e6);
    family(out, "forkwatch_worker_cgroup_processes", "gauge", "Processes in the worker's cgroup now (cgroup.procs).");
    for (const auto& [r, s] : cg) line("forkwatch_worker_cgroup_processes", *r, "", static_cast<uint64_t>(s.processes));
  }
  // Without any /proc sample yet these are unknown, not zero: left out.
  auto sampled = [&](std::string_view name, std::string_view help, uint64_t Live::*field) {
    family(out, name, "gauge", help);
    for (const Row& r : rows)
      if (r.live.sampled) line(name, r, "", r.live.*field);
  };
  sampled("forkwatch_worker_resident_bytes", "Resident memory of the worker's whole process tree, at the last sample.",
          &Live::rss);
  sampled("forkwatch_worker_processes", "Processes in the worker's tree, at the last sample.", &Live::processes);
  sampled("forkwatch_worker_threads", "Threads in the worker's tree, at the last sample.", &Live::threads);
  // Ready: its ready check passed (without one: it runs). Healthy: its health
  // check's verdict; a running worker without a check counts as healthy
  // (docs/contract-notes.md).
  per_worker("forkwatch_worker_ready", "gauge", "1 while the worker is ready (its ready check passed).",
             [&](const Row& r) { line("forkwatch_worker_ready", r, "", uint64_t{r.w->ready && r.w->state == "running"}); });
  per_worker("forkwatch_worker_healthy", "gauge",
             "1 while the worker is healthy, 0 while a health check fails; absent while it is not running.",
             [&](const Row& r) {
               if (r.w->state == "running") line("forkwatch_worker_healthy", r, "", uint64_t{r.w->healthy.value_or(true)});
             });
  per_worker("forkwatch_worker_start_time_seconds", "gauge",
             "When the worker's main process was last exec'd (Unix time); absent if never.", [&](const Row& r) {
               if (r.w->started_at_ns > 0)
                 line("forkwatch_worker_start_time_seconds", r, "", static_cast<double>(r.w->started_at_ns) / 1e9);
             });
  // Output each worker could not keep, by why: cut from long lines, deleted by
  // log rotation, refused by the disk (docs/config.md promises the count).
  std::vector<OutputStats> output(rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i].w->output) output[i] = rows[i].w->output->stats();
  family(out, "forkwatch_worker_output_discarded_bytes_total", "counter", "Worker output not kept, by reason.");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].w->output) continue;
    for (auto [extra, bytes] : {std::pair{"reason=\"cut\"", output[i].cut_bytes},
                                {"reason=\"rotated\"", output[i].rotated_bytes},
                                {"reason=\"write_failed\"", output[i].dropped_bytes}})
      line("forkwatch_worker_output_discarded_bytes_total", rows[i], extra, static_cast<uint64_t>(bytes));
  }
  family(out, "forkwatch_worker_output_ring_bytes", "gauge", "Memory held by a worker's output ring.");
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i].w->output) line("forkwatch_worker_output_ring_bytes", rows[i], "", static_cast<uint64_t>(output[i].ring_bytes));
}

}  // namespace forkwatch
