#include "event_json.h"

#include <nlohmann/json.hpp>

namespace forkwatch {
namespace {

nlohmann::json wait_record_object(const WaitRecord& r) {
  const WaitStatus& s = r.status;
  nlohmann::json j = {
      {"id", r.id > 0 ? nlohmann::json(r.id) : nlohmann::json(nullptr)},  // null until stored
      {"ts_ns", r.ts_ns},
      {"pid", r.pid},
      {"worker_id", r.worker_id ? nlohmann::json(*r.worker_id) : nlohmann::json(nullptr)},
      {"adopted", r.adopted},
      {"raw_status", s.raw},
      {"wifexited", s.exited},
      {"wexitstatus", s.exit_status},
      {"wifsignaled", s.signaled},
      {"wtermsig", s.term_sig},
      {"wcoredump", s.core_dumped},
      {"wifstopped", s.stopped},
      {"wstopsig", s.stop_sig},
      {"wifcontinued", s.continued},
      {"ru_utime_us", r.rusage.utime_us},
      {"ru_stime_us", r.rusage.stime_us},
      {"ru_maxrss_kb", r.rusage.maxrss_kb},
      {"ru_minflt", r.rusage.minflt},
      {"ru_majflt", r.rusage.majflt},
      {"ru_nvcsw", r.rusage.nvcsw},
      {"ru_nivcsw", r.rusage.nivcsw},
      {"description", describe(s)},
  };
  return j;
}

}  // namespace

std::string wait_record_json(const WaitRecord& r) { return wait_record_object(r).dump(); }

std::string event_json(const Event& e) {
  if (e.kind == EventKind::kSample && !e.data_json.empty()) return e.data_json;
  nlohmann::json j = {
      {"id", e.id},
      {"type", event_kind_name(e.kind)},
      {"ts_ns", e.ts_ns},
      {"worker_id", e.worker_id ? nlohmann::json(*e.worker_id) : nlohmann::json(nullptr)},
      {"pid", e.pid},
  };
  if (e.wait) j["wait"] = wait_record_object(*e.wait);
  if (!e.state.empty()) j["state"] = e.state;
  if (!e.detail.empty()) j["detail"] = e.detail;
  return j.dump();
}

}  // namespace forkwatch
