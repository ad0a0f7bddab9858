#include "lifetime_row.h"

#include <bit>

#include "proc_parse.h"

namespace forkwatch::db {

std::string_view lifetime_upsert_sql() {
  return "INSERT INTO lifetimes (id, pid, ppid, worker_id, comm, argv, argv_lost, forked_ns, exec_ns, execs, "
         "exited_ns, raw_status, reaped_by_daemon, core_dumped, from_scan, threads, span_class) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) "
         "ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, ppid = excluded.ppid, worker_id = excluded.worker_id, "
         "comm = excluded.comm, argv = excluded.argv, argv_lost = excluded.argv_lost, "
         "forked_ns = excluded.forked_ns, exec_ns = excluded.exec_ns, execs = excluded.execs, "
         "exited_ns = excluded.exited_ns, raw_status = excluded.raw_status, "
         "reaped_by_daemon = excluded.reaped_by_daemon, core_dumped = excluded.core_dumped, "
         "from_scan = excluded.from_scan, threads = excluded.threads, span_class = excluded.span_class";
}

std::string argv_text(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    out += a;
    out += '\0';
  }
  return out;
}

int span_class(const Lifetime& l) {
  if (l.exited_ns == 0) return -1;
  const uint64_t d = l.exited_ns > l.forked_ns ? static_cast<uint64_t>(l.exited_ns - l.forked_ns) : 0;
  return std::min(kMaxSpanClass, static_cast<int>(std::bit_width(d >> 20)));
}

void bind_lifetime(Statement& st, const Lifetime& l) {
  const auto opt = [](int64_t v) { return v ? std::optional<int64_t>(v) : std::nullopt; };
  st.bind(1, l.id)
      .bind(2, int64_t{l.pid})
      .bind(3, int64_t{l.ppid})
      .bind(4, l.worker_id)
      .bind(5, l.comm)
      .bind(6, argv_text(l.argv))
      .bind(7, int64_t{l.argv_lost})
      .bind(8, l.forked_ns)
      .bind(9, opt(l.exec_ns))
      .bind(10, int64_t{l.execs})
      .bind(11, opt(l.exited_ns))
      .bind(12, l.raw_status ? std::optional<int64_t>(*l.raw_status) : std::nullopt)
      .bind(13, int64_t{l.reaped_by_daemon})
      .bind(14, int64_t{l.core_dumped})
      .bind(15, int64_t{l.from_scan})
      .bind(16, int64_t{l.threads})
      .bind(17, int64_t{span_class(l)});
}

std::string_view thread_upsert_sql() {
  return "INSERT INTO thread_lifetimes (id, lifetime_id, pid, tid, first_name, name, created_ns, exited_ns) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
         "exited_ns = excluded.exited_ns";
}

void bind_thread(Statement& st, const ThreadLifetime& t) {
  st.bind(1, t.id)
      .bind(2, t.lifetime_id)
      .bind(3, int64_t{t.pid})
      .bind(4, int64_t{t.tid})
      .bind(5, t.first_name)
      .bind(6, t.name)
      .bind(7, t.created_ns)
      .bind(8, t.exited_ns ? std::optional<int64_t>(t.exited_ns) : std::nullopt);
}

ThreadLifetime read_thread(const Statement& row) {
  ThreadLifetime t;
  t.id = row.int64(0);
  t.lifetime_id = row.int64(1);
  t.pid = static_cast<pid_t>(row.int64(2));
  t.tid = static_cast<pid_t>(row.int64(3));
  t.first_name = row.text(4);
  t.name = row.text(5);
  t.created_ns = row.int64(6);
  t.exited_ns = row.optional_int64(7).value_or(0);
  return t;
}

Lifetime read_lifetime(const Statement& row, int c) {
  Lifetime l;
  l.id = row.int64(c + 0);
  l.pid = static_cast<pid_t>(row.int64(c + 1));
  l.ppid = static_cast<pid_t>(row.int64(c + 2));
  l.worker_id = row.int64(c + 3);
  l.comm = row.text(c + 4);
  l.argv = parse_cmdline(row.text(c + 5));
  l.argv_lost = row.int64(c + 6) != 0;
  l.forked_ns = row.int64(c + 7);
  l.exec_ns = row.optional_int64(c + 8).value_or(0);
  l.execs = static_cast<int>(row.int64(c + 9));
  l.exited_ns = row.optional_int64(c + 10).value_or(0);
  if (auto s = row.optional_int64(c + 11)) l.raw_status = static_cast<int>(*s);
  l.reaped_by_daemon = row.int64(c + 12) != 0;
  l.core_dumped = row.int64(c + 13) != 0;
  l.from_scan = row.int64(c + 14) != 0;
  l.threads = static_cast<int>(row.int64(c + 15));
  return l;
}

}  // namespace forkwatch::db
