#include "event_json.h"

#include <optional>

#include "json_text.h"

namespace forkwatch {
namespace {

using namespace json_text;

void put_wait_record(std::string& out, const WaitRecord& r) {
  const WaitStatus& s = r.status;
  // The row id is null until the store has written the row.
  put_field(out, "{\"id\":", r.id > 0 ? std::optional<int64_t>(r.id) : std::nullopt);
  put_field(out, ",\"ts_ns\":", r.ts_ns);
  put_field(out, ",\"pid\":", r.pid);
  put_field(out, ",\"worker_id\":", r.worker_id);
  put_field(out, ",\"adopted\":", r.adopted);
  put_field(out, ",\"raw_status\":", s.raw);
  put_field(out, ",\"wifexited\":", s.exited);
  put_field(out, ",\"wexitstatus\":", s.exit_status);
  put_field(out, ",\"wifsignaled\":", s.signaled);
  put_field(out, ",\"wtermsig\":", s.term_sig);
  put_field(out, ",\"wcoredump\":", s.core_dumped);
  put_field(out, ",\"wifstopped\":", s.stopped);
  put_field(out, ",\"wstopsig\":", s.stop_sig);
  put_field(out, ",\"wifcontinued\":", s.continued);
  put_field(out, ",\"ru_utime_us\":", r.rusage.utime_us);
  put_field(out, ",\"ru_stime_us\":", r.rusage.stime_us);
  put_field(out, ",\"ru_maxrss_kb\":", r.rusage.maxrss_kb);
  put_field(out, ",\"ru_minflt\":", r.rusage.minflt);
  put_field(out, ",\"ru_majflt\":", r.rusage.majflt);
  put_field(out, ",\"ru_nvcsw\":", r.rusage.nvcsw);
  put_field(out, ",\"ru_nivcsw\":", r.rusage.nivcsw);
  put_field(out, ",\"cause\":", exit_cause_name(r.cause));
  put_field(out, ",\"description\":", std::string_view(describe(s)));
  out += '}';
}

}  // namespace

std::string wait_record_json(const WaitRecord& r) {
  std::string out;
  out.reserve(512);
  put_wait_record(out, r);
  return out;
}

std::string event_json(const Event& e) {
  if ((e.kind == EventKind::kSample || e.kind == EventKind::kProcess) && !e.data_json.empty()) return e.data_json;
  std::string out;
  out.reserve(e.wait ? 640 : 160);
  put_field(out, "{\"id\":", e.id);
  put_field(out, ",\"type\":", event_kind_name(e.kind));
  put_field(out, ",\"ts_ns\":", e.ts_ns);
  put_field(out, ",\"worker_id\":", e.worker_id);
  put_field(out, ",\"pid\":", e.pid);
  if (!e.state.empty()) put_field(out, ",\"state\":", std::string_view(e.state));
  if (!e.detail.empty()) put_field(out, ",\"detail\":", std::string_view(e.detail));
  if (e.wait) {
    put_raw(out, ",\"wait\":");
    put_wait_record(out, *e.wait);
  }
  out += '}';
  return out;
}

}  // namespace forkwatch
