#include "metrics.h"

#include <sstream>

#include "worker_metrics.h"
#include "worker_state.h"

namespace forkwatch {

std::string render_histogram(const std::string& name, const std::string& help,
                             const db::LatencyHistogram::Snapshot& h) {
  std::ostringstream out;
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
  const auto& bounds = db::LatencyHistogram::kBoundsSeconds;
  for (size_t i = 0; i < bounds.size(); ++i)
    out << name << "_bucket{le=\"" << bounds[i] << "\"} " << h.cumulative[i] << '\n';
  out << name << "_bucket{le=\"+Inf\"} " << h.count << '\n';
  out << name << "_sum " << h.sum_seconds() << '\n';
  out << name << "_count " << h.count << '\n';
  return out.str();
}

namespace {

void counter(std::ostringstream& out, const char* name, const char* help, uint64_t value,
             const std::string& labels = "") {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n"
      << name << labels << ' ' << value << '\n';
}

void gauge(std::ostringstream& out, const char* name, const char* help, double value) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n" << name << ' ' << value << '\n';
}

}  // namespace

std::string render_metrics(const MetricsInputs& in) {
  std::ostringstream out;
  const SupervisorCounters& c = *in.counters;
  counter(out, "forkwatch_spawns_total", "Worker processes forked and exec'd.", c.spawns);
  counter(out, "forkwatch_spawn_failures_total", "Spawns that failed (missing binary, fork error).", c.spawn_failures);
  counter(out, "forkwatch_restarts_total", "Worker restarts, automatic and requested.", c.restarts);
  out << "# HELP forkwatch_exits_total Processes reaped, by how they ended.\n# TYPE forkwatch_exits_total counter\n"
      << "forkwatch_exits_total{kind=\"exited\"} " << c.exited << '\n'
      << "forkwatch_exits_total{kind=\"signaled\"} " << c.signaled << '\n'
      << "forkwatch_exits_total{kind=\"core_dumped\"} " << c.core_dumped << '\n';
  counter(out, "forkwatch_stops_total", "WIFSTOPPED statuses seen.", c.stopped);
  counter(out, "forkwatch_continues_total", "WIFCONTINUED statuses seen.", c.continued);
  counter(out, "forkwatch_adopted_orphans_total", "Orphaned descendants re-parented to the daemon and reaped.", c.adopted);
  counter(out, "forkwatch_wait_statuses_total", "Every status wait4 returned.", c.reaped);
  counter(out, "forkwatch_sigchld_wakeups_total", "SIGCHLD wake-ups (fewer than exits: signals coalesce).", c.sigchld_wakeups);
  counter(out, "forkwatch_loop_wakeups_total", "Event loop wake-ups.", c.loop_wakeups);
  counter(out, "forkwatch_notify_datagrams_total", "sd_notify datagrams read from workers' notify sockets.", c.notify_datagrams);
  counter(out, "forkwatch_notify_dropped_total",
          "sd_notify datagrams refused: from outside the worker's tree, or over 4096 bytes.", c.notify_dropped);
  counter(out, "forkwatch_notify_mainpid_refused_total",
          "sd_notify MAINPID= refused: the pid is not a process of the worker's tree.", c.notify_mainpid_refused);
  counter(out, "forkwatch_samples_total", "/proc samples taken.", c.samples);
  out << "# HELP forkwatch_sample_cpu_seconds_total CPU time spent sampling /proc.\n"
      << "# TYPE forkwatch_sample_cpu_seconds_total counter\nforkwatch_sample_cpu_seconds_total "
      << static_cast<double>(c.sample_cpu_ns.load()) / 1e9 << '\n';

  out << "# HELP forkwatch_workers Workers by state.\n# TYPE forkwatch_workers gauge\n";
  for (auto s : {WorkerState::kStarting, WorkerState::kRunning, WorkerState::kStopping, WorkerState::kStopped,
                 WorkerState::kExited, WorkerState::kBackoff, WorkerState::kFatal}) {
    size_t n = 0;
    if (in.snapshot)
      for (const auto& w : in.snapshot->workers) n += w.state == worker_state_name(s);
    out << "forkwatch_workers{state=\"" << worker_state_name(s) << "\"} " << n << '\n';
  }
  size_t procs = 0, threads = 0;
  if (in.snapshot && in.snapshot->tree) {
    procs = in.snapshot->tree->processes;
    threads = in.snapshot->tree->threads;
  }
  out << "# HELP forkwatch_processes_watched Processes in the latest sample.\n"
      << "# TYPE forkwatch_processes_watched gauge\nforkwatch_processes_watched " << procs << '\n'
      << "# HELP forkwatch_threads_watched Threads in the latest sample.\n"
      << "# TYPE forkwatch_threads_watched gauge\nforkwatch_threads_watched " << threads << '\n'
      << "# HELP forkwatch_sse_clients Connected server-sent-event clients.\n"
      << "# TYPE forkwatch_sse_clients gauge\nforkwatch_sse_clients " << in.sse_clients << '\n';
  if (in.request_duration)
    out << render_histogram("forkwatch_api_request_duration_seconds", "Time to answer an API request.",
                            in.request_duration->snapshot());
  if (in.health) {
    out << "# HELP forkwatch_degraded 1 while /api/health says degraded (store cannot write, spawns failing).\n"
        << "# TYPE forkwatch_degraded gauge\nforkwatch_degraded " << (in.health->degraded() ? 1 : 0) << '\n'
        << "# HELP forkwatch_degraded_reason 1 for each reason /api/health gives now.\n"
        << "# TYPE forkwatch_degraded_reason gauge\n";
    for (const char* code : {"store_unwritable", "spawns_failing"}) {
      bool on = false;
      for (const HealthReason& r : in.health->reasons) on = on || r.code == code;
      out << "forkwatch_degraded_reason{reason=\"" << code << "\"} " << (on ? 1 : 0) << '\n';
    }
  }
  if (in.store) out << render_store_metrics(*in.store);
  std::string text = std::move(out).str();
  if (in.snapshot) render_worker_metrics(text, *in.snapshot, in.tally);
  return text;
}

std::string to_openmetrics(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end == std::string_view::npos ? text.size() : end + 1);
    text.remove_prefix(line.size());
    // OpenMetrics names a counter's family without the _total its samples carry.
    for (std::string_view tag : {"# HELP ", "# TYPE "}) {
      if (!line.starts_with(tag)) continue;
      const size_t name_end = line.find(' ', tag.size());
      std::string_view name = line.substr(tag.size(), name_end - tag.size());
      if (name.ends_with("_total") && (tag == "# HELP " || line.substr(name_end + 1).starts_with("counter"))) {
        out.append(line.substr(0, tag.size() + name.size() - 6)).append(line.substr(name_end));
        line = {};
      }
      break;
    }
    out.append(line);
  }
  out.append("# EOF\n");
  return out;
}

std::string render_store_metrics(const db::StoreStats& s) {
  std::ostringstream out;
  counter(out, "forkwatch_store_wait_rows_total", "wait_status rows committed to SQLite.", s.wait_rows);
  counter(out, "forkwatch_store_event_rows_total", "events rows committed to SQLite.", s.event_rows);
  counter(out, "forkwatch_store_batches_total", "Store transactions committed.", s.batches);
  counter(out, "forkwatch_store_write_errors_total", "Failed batch attempts (each retried).", s.write_errors);
  counter(out, "forkwatch_store_dropped_total",
          "Items lost: refused by the full queue while the database could not be written, or abandoned at close.",
          s.items_dropped);
  counter(out, "forkwatch_store_dropped_wait_statuses_total", "wait_status rows among the items lost.",
          s.wait_rows_dropped);
  gauge(out, "forkwatch_store_queue_depth", "Items waiting for the store writer.", static_cast<double>(s.queue_depth));
  gauge(out, "forkwatch_store_queue_limit", "Items the store queue holds at most.", static_cast<double>(s.max_queue_items));
  gauge(out, "forkwatch_store_degraded", "1 while the store cannot write or has not caught up since.",
        s.degraded ? 1 : 0);
  gauge(out, "forkwatch_store_last_outage_seconds", "First failed write to caught up, of the last outage.",
        static_cast<double>(s.last_outage_ns) / 1e9);
  gauge(out, "forkwatch_store_last_catch_up_seconds", "First good write to caught up, of the last outage.",
        static_cast<double>(s.last_catch_up_ns) / 1e9);
  gauge(out, "forkwatch_store_db_bytes", "forkwatch.db's size in pages, at the last retention step.",
        static_cast<double>(s.db_bytes));
  out << "# HELP forkwatch_store_retention_deleted_rows_total History rows deleted by retention.\n"
      << "# TYPE forkwatch_store_retention_deleted_rows_total counter\n"
      << "forkwatch_store_retention_deleted_rows_total{table=\"wait_status\"} " << s.retention_wait_rows << '\n'
      << "forkwatch_store_retention_deleted_rows_total{table=\"events\"} " << s.retention_event_rows << '\n';
  out << render_histogram("forkwatch_reap_to_record_seconds",
                          "From wait4 returning a status to its row being committed.", s.reap_to_record);
  return out.str();
}

}  // namespace forkwatch
