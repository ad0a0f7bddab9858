// WorkerTally and the per-worker series, on plain snapshots and events.
#include <catch2/catch.hpp>
#include <string>

#include "exit_cause.h"
#include "worker_metrics.h"

using namespace forkwatch;

namespace {

Event ended(int64_t worker, int64_t ts_ns, int raw_status, int64_t cpu_us, EventKind kind = EventKind::kExit) {
  Event e;
  e.kind = kind;
  e.worker_id = worker;
  WaitRecord r;
  r.ts_ns = ts_ns;
  r.worker_id = worker;
  r.status = decode_wait_status(raw_status);
  r.cause = cause_of_status(r.status);
  r.rusage.utime_us = cpu_us;
  e.wait = r;
  return e;
}

Snapshot with_workers(std::initializer_list<int64_t> ids) {
  Snapshot s;
  for (int64_t id : ids) {
    WorkerView w;
    w.id = id;
    w.name = "w" + std::to_string(id);
    w.program = "p";
    w.state = "running";
    s.workers.push_back(w);
  }
  return s;
}

struct Seen {
  double gone_cpu_s = -1;
  uint64_t exited = 0, signaled = 0;
};

Seen seen(WorkerTally& t, const Snapshot& s, int64_t id, int64_t sample_ns) {
  Seen out;
  t.visit(s, sample_ns, [&](const WorkerView& w, const WorkerTally::Worker& tallied) {
    if (w.id != id) return;
    out.gone_cpu_s = tallied.gone_cpu_s;
    for (const auto& x : tallied.exits) (x.how == "exited" ? out.exited : out.signaled) += x.count;
  });
  return out;
}

}  // namespace

TEST_CASE("the tally counts a worker's exits by how and cause, not its stops nor its orphans' ends", "[unit]") {
  WorkerTally t;
  t.publish(ended(1, 10, 3 << 8, 0));                    // exited 3
  t.publish(ended(1, 20, 9, 0));                         // killed by SIGKILL
  t.publish(ended(1, 30, 9, 0));
  t.publish(ended(1, 40, 0x137f, 0, EventKind::kStop));  // stopped by SIGSTOP
  t.publish(ended(1, 50, 0, 0, EventKind::kAdopt));      // an orphan of its group
  Snapshot s = with_workers({1});
  Seen got = seen(t, s, 1, INT64_MAX);
  CHECK(got.exited == 1);
  CHECK(got.signaled == 2);
  CHECK(exit_cause_label(*ended(1, 0, 9, 0).wait) == "signaled");
}

TEST_CASE("an exit the daemon asked for carries its recorded cause, not a crash's", "[unit]") {
  WorkerTally t;
  Event stop = ended(1, 10, 15, 0);  // SIGTERM, sent for a stop
  stop.wait->cause = ExitCause::kStopRequested;
  t.publish(stop);
  t.publish(ended(1, 20, 9, 0));
  Snapshot s = with_workers({1});
  std::vector<std::pair<std::string, uint64_t>> got;
  t.visit(s, INT64_MAX, [&](const WorkerView&, const WorkerTally::Worker& w) {
    for (const auto& x : w.exits) got.emplace_back(std::string(x.how) + "/" + std::string(x.cause), x.count);
  });
  CHECK(got == std::vector<std::pair<std::string, uint64_t>>{{"signaled/stop_requested", 1}, {"signaled/signaled", 1}});
}

TEST_CASE("a reaped process's CPU counts as gone only after the sample that no longer saw it alive", "[unit]") {
  WorkerTally t;
  Snapshot s = with_workers({1});
  t.publish(ended(1, 1000, 0, 2'000'000));                     // its main process, 2 s CPU
  t.publish(ended(1, 1500, 0, 500'000, EventKind::kAdopt));    // an orphan, 0.5 s
  // A sample taken before the reap still counted it live: not gone yet.
  CHECK(seen(t, s, 1, 900).gone_cpu_s == 0);
  CHECK(seen(t, s, 1, 1200).gone_cpu_s == Approx(2.0));
  CHECK(seen(t, s, 1, 2000).gone_cpu_s == Approx(2.5));
  // Never counted twice, nor taken back by an older sample.
  CHECK(seen(t, s, 1, 2000).gone_cpu_s == Approx(2.5));
  CHECK(seen(t, s, 1, 100).gone_cpu_s == Approx(2.5));
}

TEST_CASE("the tally forgets a removed worker but keeps one newer than the snapshot", "[unit]") {
  WorkerTally t;
  t.publish(ended(1, 10, 0, 0));
  t.publish(ended(2, 10, 0, 0));
  t.publish(ended(3, 10, 0, 0));
  Snapshot older = with_workers({2});  // 1 was removed; 3 is newer than this snapshot
  CHECK(seen(t, older, 2, INT64_MAX).exited == 1);
  // Forgotten also when the snapshot holds more workers than the tally.
  t.publish(ended(9, 10, 0, 0));
  Snapshot bigger = with_workers({2, 3, 4, 5, 6, 7, 8, 10});  // 9 was removed
  CHECK(seen(t, bigger, 3, INT64_MAX).exited == 1);
  CHECK(seen(t, with_workers({2, 3, 9, 10}), 9, INT64_MAX).exited == 0);
  Snapshot later = with_workers({1, 2, 3});  // 1 back would be a new tally: it starts again
  CHECK(seen(t, later, 1, INT64_MAX).exited == 0);
  CHECK(seen(t, later, 3, INT64_MAX).exited == 1);
}

TEST_CASE("per-worker series escape label values, and without a /proc sample leave memory out", "[unit]") {
  Snapshot s = with_workers({7});
  s.workers[0].name = "a\"b\\c\nd";
  std::string out;
  render_worker_metrics(out, s, nullptr);
  const std::string labels = R"(program="p",worker="a\"b\\c\nd",id="7")";
  CHECK(out.find("\nforkwatch_worker_up{" + labels + "} 0\n") != std::string::npos);
  CHECK(out.find("\nforkwatch_worker_state{" + labels + ",state=\"running\"} 1\n") != std::string::npos);
  CHECK(out.find("\nforkwatch_worker_healthy{" + labels + "} 1\n") != std::string::npos);
  CHECK(out.find("forkwatch_worker_resident_bytes{") == std::string::npos);
  CHECK(out.find("# TYPE forkwatch_worker_resident_bytes gauge") != std::string::npos);
}
