// How the `forkwatch` client shows the daemon's JSON to people: aligned
// tables, durations, sizes, wait statuses in words, SSE events as one line
// each, and the process tree indented like `pstree -p`. Pure functions of
// their arguments (the current time is passed in), so any thread may call
// them. Header-only: the `forkwatch` executable links forkwatch_core, not the
// forkwatch_api library that api/*.cpp files land in.
#pragma once

#include <time.h>

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "exit_cause.h"
#include "json_dump.h"
#include "untrusted_text.h"
#include "wait_status.h"

namespace forkwatch::client {

using nlohmann::json;

// Rows of cells printed in columns two spaces apart; the last column is not padded.
inline std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

// 42s, 3m07s, 2h05m, 3d04h: the two largest units, like `ps -o etime` shortened.
inline std::string format_duration(int64_t secs) {
  if (secs < 0) secs = 0;
  char buf[32];
  if (secs < 60) std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(secs));
  else if (secs < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(secs / 60), static_cast<long long>(secs % 60));
  else if (secs < 86400) std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(secs / 3600), static_cast<long long>(secs % 3600 / 60));
  else std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(secs / 86400), static_cast<long long>(secs % 86400 / 3600));
  return buf;
}

// 512B, 3.4K, 12.1M, 1.0G (powers of 1024, as ps and top count memory).
inline std::string format_bytes(double bytes) {
  static const char* kUnits[] = {"B", "K", "M", "G", "T"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f%s", bytes, kUnits[u]);
  else std::snprintf(buf, sizeof buf, "%.1f%s", bytes, kUnits[u]);
  return buf;
}

// Local wall-clock time of a CLOCK_REALTIME nanosecond stamp; with_date adds the day.
inline std::string format_time(int64_t ns, bool with_date) {
  if (ns <= 0) return "-";
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  struct tm tm{};
  localtime_r(&secs, &tm);
  char buf[48];
  size_t n = strftime(buf, sizeof buf, with_date ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03d", static_cast<int>(ns % 1'000'000'000 / 1'000'000));
  return buf;
}

inline int64_t int_or(const json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

inline std::string str_or(const json& j, const char* key, const std::string& fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty() ? it->get<std::string>()
                                                                                          : fallback;
}

// Text that came from outside the daemon (names, argv, process and thread
// names, output) on its way to a terminal: control characters escaped
// (untrusted_text.h), so no name can set the window title, write the
// clipboard (OSC 52) or reorder a line; `raw` (--raw) passes it unchanged.
inline std::string shown(const std::string& text, bool raw) { return raw ? text : escape_control(text); }

inline std::string text_or(const json& j, const char* key, const std::string& fallback, bool raw) {
  return shown(str_or(j, key, fallback), raw);
}

// A wait-status row in words ("exited 12", "killed by SIGSEGV (core dumped)",
// "killed by SIGKILL after its stop timeout"), decoded here from raw_status
// and cause with the daemon's own decoder.
inline std::string status_words(const json& row) {
  if (!row.is_object() || !row.contains("raw_status")) return "-";
  const WaitStatus st = decode_wait_status(static_cast<int>(int_or(row, "raw_status", 0)));
  // Why it ended, where the row says (older daemons send no cause).
  const auto cause = parse_exit_cause(str_or(row, "cause", ""));
  std::string words = cause ? describe_cause(*cause, st) : describe(st);
  if (row.value("adopted", false)) words += " (adopted)";
  return words;
}

// `forkwatch status`: one line per worker, like `supervisorctl status`.
inline std::string render_workers(const json& workers, int64_t now_ns, bool raw = false) {
  std::vector<std::vector<std::string>> rows{
      {"ID", "NAME", "STATE", "READY", "HEALTH", "PID", "RESTARTS", "UPTIME", "LAST EXIT", "WAITING / STATUS"}};
  for (const auto& w : workers) {
    const std::string state = str_or(w, "state", "?");
    const int64_t pid = int_or(w, "pid", 0);
    const int64_t started = int_or(w, "started_at_ns", 0);
    const bool alive = pid > 0 && (state == "running" || state == "starting" || state == "stopping");
    // Why it waits, else what the worker last said (STATUS=); older daemons send neither.
    std::string note = text_or(w, "waiting_for", "", raw);
    if (note.empty()) note = text_or(w, "status_text", "", raw);
    rows.push_back({std::to_string(int_or(w, "id", 0)), text_or(w, "name", "-", raw), shown(state, raw),
                    alive && w.contains("ready") ? (w.value("ready", false) ? "yes" : "no") : "-",
                    text_or(w, "health", "-", raw),
                    pid > 0 ? std::to_string(pid) : "-", std::to_string(int_or(w, "restarts", 0)),
                    alive && started > 0 ? format_duration((now_ns - started) / 1'000'000'000) : "-",
                    w.contains("last_exit") ? status_words(w["last_exit"]) : "-", note.empty() ? "-" : note});
  }
  return render_table(rows);
}

// `forkwatch history`: wait-status rows, newest first as the daemon sends them.
inline std::string render_history(const json& rows_json) {
  std::vector<std::vector<std::string>> rows{{"ROW", "TIME", "PID", "WORKER", "STATUS", "CPU", "MAXRSS"}};
  for (const auto& r : rows_json) {
    const int64_t worker = int_or(r, "worker_id", 0);
    const double cpu_s = static_cast<double>(int_or(r, "ru_utime_us", 0) + int_or(r, "ru_stime_us", 0)) / 1e6;
    char cpu[32];
    std::snprintf(cpu, sizeof cpu, "%.3fs", cpu_s);
    const int64_t rss_kb = int_or(r, "ru_maxrss_kb", 0);
    rows.push_back({std::to_string(int_or(r, "id", 0)), format_time(int_or(r, "ts_ns", 0), true),
                    std::to_string(int_or(r, "pid", 0)), worker > 0 ? std::to_string(worker) : "-", status_words(r),
                    cpu, rss_kb > 0 ? format_bytes(static_cast<double>(rss_kb) * 1024) : "-"});
  }
  return render_table(rows);
}

// `forkwatch programs`: the catalogue.
inline std::string render_programs(const json& programs, bool raw = false) {
  std::vector<std::vector<std::string>> rows{{"NAME", "KIND", "COMMAND"}};
  for (const auto& p : programs) {
    std::string cmd;
    if (p.contains("command") && p["command"].is_array())
      for (const auto& a : p["command"]) cmd += (cmd.empty() ? "" : " ") + (a.is_string() ? a.get<std::string>() : dump_json(a));
    rows.push_back({text_or(p, "name", "?", raw), p.value("builtin", false) ? "built-in" : "configured",
                    shown(cmd, raw)});
  }
  return render_table(rows);
}

// One SSE event as one line: "10:00:01.123  #42  exit      worker 3  pid 1234  exited 12".
inline std::string render_event(const std::string& type, const std::string& id, const json& data,
                                bool raw = false) {
  char head[64];
  std::snprintf(head, sizeof head, "#%-5s %-8s", shown(id, raw).c_str(), shown(type, raw).c_str());
  std::string line = format_time(int_or(data, "ts_ns", 0), false) + "  " + head;
  if (data.contains("worker_id") && data["worker_id"].is_number_integer())
    line += "  worker " + std::to_string(data["worker_id"].get<int64_t>());
  if (int64_t pid = int_or(data, "pid", 0); pid > 0) line += "  pid " + std::to_string(pid);
  std::string words;
  if (data.contains("wait")) line += "  " + (words = status_words(data["wait"]));
  if (auto s = text_or(data, "state", "", raw); !s.empty()) line += "  " + s;
  // The detail of an exit repeats the decoded status; show only what is new.
  if (auto d = text_or(data, "detail", "", raw); !d.empty() && words.rfind(d, 0) != 0) line += "  (" + d + ")";
  if (type == "sample")
    line += "  " + std::to_string(int_or(data, "processes", 0)) + " processes, " +
            std::to_string(int_or(data, "threads", 0)) + " threads";
  return line;
}

// One process line of the tree: "exit-with(1240) S  cpu 0.0%  rss 1.1M  [worker 3 demo]".
inline std::string tree_node_line(const json& n, bool raw = false) {
  char cpu[32];
  std::snprintf(cpu, sizeof cpu, "%.1f%%", n.value("cpu_percent", 0.0));
  std::string line = text_or(n, "comm", "?", raw) + "(" + std::to_string(int_or(n, "pid", 0)) + ") " +
                     text_or(n, "state", "?", raw) + "  cpu " + cpu + "  rss " + format_bytes(n.value("rss_bytes", 0.0));
  if (n.contains("worker_id") && n["worker_id"].is_number_integer())
    line += "  [worker " + std::to_string(n["worker_id"].get<int64_t>()) +
            (n.contains("worker_name") && n["worker_name"].is_string() ? " " + shown(n["worker_name"].get<std::string>(), raw) : "") + "]";
  return line;
}

// Appends node `n` and its subtree. Threads other than the main one come
// first, as `{name}(tid)` the way pstree shows them, then child processes.
inline void render_tree_node(const json& n, const std::string& prefix, bool last, bool root, std::string& out,
                             bool raw = false) {
  out += prefix + (root ? "" : last ? "└─ " : "├─ ") + tree_node_line(n, raw) + "\n";
  const std::string inner = root ? prefix : prefix + (last ? "   " : "│  ");
  std::vector<const json*> threads;
  if (n.contains("threads") && n["threads"].is_array())
    for (const auto& t : n["threads"])
      if (int_or(t, "tid", 0) != int_or(n, "pid", 0)) threads.push_back(&t);
  const size_t kids = n.contains("children") && n["children"].is_array() ? n["children"].size() : 0;
  for (size_t i = 0; i < threads.size(); ++i) {
    const json& t = *threads[i];
    char cpu[32];
    std::snprintf(cpu, sizeof cpu, "%.1f%%", t.value("cpu_percent", 0.0));
    const bool last_line = i + 1 == threads.size() && kids == 0;
    out += inner + (last_line ? "└─ " : "├─ ") + "{" + text_or(t, "name", "?", raw) + "}(" +
           std::to_string(int_or(t, "tid", 0)) + ") " + text_or(t, "state", "?", raw) + "  cpu " + cpu + "\n";
  }
  for (size_t i = 0; i < kids; ++i) render_tree_node(n["children"][i], inner, i + 1 == kids, false, out, raw);
}

// `forkwatch tree`: the daemon's array of root nodes.
inline std::string render_tree(const json& roots, bool raw = false) {
  std::string out;
  for (const auto& r : roots) render_tree_node(r, "", true, true, out, raw);
  return out;
}

}  // namespace forkwatch::client
