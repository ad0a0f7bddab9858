// The hand-written JSON of events and wait records: every field the contract
// names, with its value, valid for any bytes a process can put in its text.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "event_json.h"

using namespace forkwatch;
using nlohmann::json;

namespace {

WaitRecord killed_record() {
  WaitRecord r;
  r.id = 42;
  r.ts_ns = 1'795'000'000'123'456'789;
  r.pid = 4321;
  r.worker_id = 7;
  r.status = decode_wait_status(SIGSEGV | 0x80);  // killed by SIGSEGV, core dumped
  r.rusage = Rusage{1200, 800, 3400, 140, 1, 2, 3};
  return r;
}

}  // namespace

TEST_CASE("a wait record renders every macro and rusage field with its value", "[unit]") {
  json j = json::parse(wait_record_json(killed_record()));
  CHECK(j["id"] == 42);
  CHECK(j["ts_ns"] == 1'795'000'000'123'456'789);
  CHECK(j["pid"] == 4321);
  CHECK(j["worker_id"] == 7);
  CHECK(j["adopted"] == false);
  CHECK(j["raw_status"] == (SIGSEGV | 0x80));
  CHECK(j["wifexited"] == false);
  CHECK(j["wexitstatus"] == 0);
  CHECK(j["wifsignaled"] == true);
  CHECK(j["wtermsig"] == SIGSEGV);
  CHECK(j["wcoredump"] == true);
  CHECK(j["wifstopped"] == false);
  CHECK(j["wstopsig"] == 0);
  CHECK(j["wifcontinued"] == false);
  CHECK(j["ru_utime_us"] == 1200);
  CHECK(j["ru_stime_us"] == 800);
  CHECK(j["ru_maxrss_kb"] == 3400);
  CHECK(j["ru_minflt"] == 140);
  CHECK(j["ru_majflt"] == 1);
  CHECK(j["ru_nvcsw"] == 2);
  CHECK(j["ru_nivcsw"] == 3);
  CHECK(j["description"] == describe(killed_record().status));
  CHECK(j["cause"] == "exited");  // the contract's `cause` column (issue 13)
  CHECK(j.size() == 23);
}

TEST_CASE("a wait record not yet stored, of an orphan without a worker, has null ids", "[unit]") {
  WaitRecord r = killed_record();
  r.id = 0;
  r.worker_id.reset();
  r.adopted = true;
  json j = json::parse(wait_record_json(r));
  CHECK(j["id"].is_null());
  CHECK(j["worker_id"].is_null());
  CHECK(j["adopted"] == true);
}

TEST_CASE("an event carries its wait record, state and detail, absent ones are left out", "[unit]") {
  Event e;
  e.id = 9001;
  e.kind = EventKind::kExit;
  e.ts_ns = 5;
  e.worker_id = 3;
  e.pid = 77;
  e.detail = "exited 12";
  e.wait = killed_record();
  json j = json::parse(event_json(e));
  CHECK(j["id"] == 9001);
  CHECK(j["type"] == "exit");
  CHECK(j["ts_ns"] == 5);
  CHECK(j["worker_id"] == 3);
  CHECK(j["pid"] == 77);
  CHECK(j["detail"] == "exited 12");
  CHECK(j["wait"]["wtermsig"] == SIGSEGV);
  CHECK_FALSE(j.contains("state"));

  Event s;
  s.id = 2;
  s.kind = EventKind::kState;
  s.state = "running";
  json k = json::parse(event_json(s));
  CHECK(k["type"] == "state");
  CHECK(k["state"] == "running");
  CHECK(k["worker_id"].is_null());
  CHECK_FALSE(k.contains("wait"));
  CHECK_FALSE(k.contains("detail"));
}

TEST_CASE("event text is escaped, and bytes that are not UTF-8 become U+FFFD", "[unit]") {
  Event e;
  e.id = 1;
  e.kind = EventKind::kSpawn;
  // Quotes, a backslash, control characters, valid UTF-8 (é, 😀) and two
  // bytes no UTF-8 text holds (a lone continuation byte, an overlong NUL).
  static constexpr char kText[] = "a\"b\\c\n\t\x01 \xC3\xA9 \xF0\x9F\x98\x80 \x80 \xC0\x80";
  e.detail = std::string(kText, sizeof kText - 1);
  std::string text = event_json(e);
  json j = json::parse(text);  // throws on invalid JSON or invalid UTF-8
  CHECK(j["detail"] == "a\"b\\c\n\t\x01 \xC3\xA9 \xF0\x9F\x98\x80 \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(text.find('\n') == std::string::npos);
}
