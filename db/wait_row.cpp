#include "wait_row.h"

namespace forkwatch::db {

std::string_view wait_insert_sql() {
  return "INSERT INTO wait_status (ts_ns, pid, worker_id, adopted, raw_status, wifexited, "
         "wexitstatus, wifsignaled, wtermsig, wcoredump, wifstopped, wstopsig, wifcontinued, "
         "ru_utime_us, ru_stime_us, ru_maxrss_kb, ru_minflt, ru_majflt, ru_nvcsw, ru_nivcsw, cause) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
         "?18, ?19, ?20, ?21)";
}

void bind_wait_record(Statement& st, const WaitRecord& r) {
  const WaitStatus& s = r.status;
  st.bind(1, r.ts_ns)
      .bind(2, int64_t{r.pid})
      .bind(3, r.worker_id)
      .bind(4, int64_t{r.adopted})
      .bind(5, int64_t{s.raw})
      .bind(6, int64_t{s.exited})
      .bind(7, int64_t{s.exit_status})
      .bind(8, int64_t{s.signaled})
      .bind(9, int64_t{s.term_sig})
      .bind(10, int64_t{s.core_dumped})
      .bind(11, int64_t{s.stopped})
      .bind(12, int64_t{s.stop_sig})
      .bind(13, int64_t{s.continued})
      .bind(14, r.rusage.utime_us)
      .bind(15, r.rusage.stime_us)
      .bind(16, r.rusage.maxrss_kb)
      .bind(17, r.rusage.minflt)
      .bind(18, r.rusage.majflt)
      .bind(19, r.rusage.nvcsw)
      .bind(20, r.rusage.nivcsw)
      .bind(21, exit_cause_name(r.cause));
}

WaitRecord read_wait_record(const Statement& row, int first) {
  WaitRecord r;
  r.id = row.int64(first + 0);
  r.ts_ns = row.int64(first + 1);
  r.pid = static_cast<pid_t>(row.int64(first + 2));
  r.worker_id = row.optional_int64(first + 3);
  r.adopted = row.int64(first + 4) != 0;
  WaitStatus& s = r.status;
  s.raw = static_cast<int>(row.int64(first + 5));
  s.exited = row.int64(first + 6) != 0;
  s.exit_status = static_cast<int>(row.int64(first + 7));
  s.signaled = row.int64(first + 8) != 0;
  s.term_sig = static_cast<int>(row.int64(first + 9));
  s.core_dumped = row.int64(first + 10) != 0;
  s.stopped = row.int64(first + 11) != 0;
  s.stop_sig = static_cast<int>(row.int64(first + 12));
  s.continued = row.int64(first + 13) != 0;
  r.rusage.utime_us = row.int64(first + 14);
  r.rusage.stime_us = row.int64(first + 15);
  r.rusage.maxrss_kb = row.int64(first + 16);
  r.rusage.minflt = row.int64(first + 17);
  r.rusage.majflt = row.int64(first + 18);
  r.rusage.nvcsw = row.int64(first + 19);
  r.rusage.nivcsw = row.int64(first + 20);
  // A name this forkwatchd does not know (a newer one wrote it) reads as what the status says.
  r.cause = parse_exit_cause(row.text(first + 21)).value_or(cause_of_status(s));
  return r;
}

}  // namespace forkwatch::db
