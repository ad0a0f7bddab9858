// The supervisor core in this process, without HTTP or SQLite: a real
// EventLoop, CommandQueue and Supervisor forking real workers, for what the
// API cannot show (the order of snapshot and events, what the loop drops,
// how its maps shrink). Each case runs in a forked child with the daemon's
// signal mask, so its signalfd and wait4(-1) see only its own children.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <string>

#include "command.h"
#include "event_loop.h"
#include "supervisor.h"

namespace fw = forkwatch;

namespace {

struct Core {
  std::unique_ptr<fw::EventLoop> loop = std::move(*fw::EventLoop::create());
  std::unique_ptr<fw::CommandQueue> commands = std::move(*fw::CommandQueue::create());
  fw::SnapshotBox snapshots;
  fw::SupervisorCounters counters;
  fw::Supervisor supervisor{*loop, *commands, snapshots, counters, fw::SupervisorOptions{FORKWATCH_BIN_DIR, "", 100, -1}};

  // Runs the loop until `done` holds (checked every 10 ms) or `limit_ms` passes.
  bool run_until(const std::function<bool()>& done, int64_t limit_ms = 5000) {
    const int64_t end = fw::monotonic_ns() + limit_ms * 1'000'000;
    bool ok = false;
    std::function<void()> check = [&] {
      if ((ok = done()) || fw::monotonic_ns() > end) return loop->stop();
      loop->add_timer(fw::monotonic_ns() + 10'000'000, check);
    };
    loop->add_timer(fw::monotonic_ns(), check);
    loop->run();
    return ok;
  }
  const fw::WorkerView* worker(int64_t id) { return snapshots.latest()->find(id); }
};

fw::StartWorker start_request(std::vector<std::string> argv, fw::RestartPolicy restart = fw::RestartPolicy::kNo) {
  fw::StartWorker s;
  s.spec.name = "t";
  s.spec.command = std::move(argv);
  s.spec.restart = restart;
  s.spec.restart_delay_ms = 0;
  s.program = "exit-with";
  return s;
}

// Runs `body` in a forked child and returns the failures it reported (one a
// line); "" when it passed. The child blocks the daemon's signals first.
std::string in_child(const std::function<std::string(Core&)>& body) {
  int p[2];
  REQUIRE(pipe(p) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    prctl(PR_SET_CHILD_SUBREAPER, 1);  // as forkwatchd: orphans come back to be reaped
    std::string out;
    {
      Core core;
      if (auto st = core.supervisor.init(); !st) out = "init: " + st.error().message();
      else out = body(core);
      core.supervisor.shutdown();
      core.run_until([&] {
        const auto snap = core.snapshots.latest();
        for (const auto& w : snap->workers)
          if (w.pid > 0) return false;
        return true;
      }, 3000);
    }
    if (out.empty()) out = "ok";
    ssize_t n = write(p[1], out.data(), out.size());
    _exit(n == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  close(p[1]);
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child ended badly (" + std::to_string(status) + "): " + got;
  return got == "ok" ? "" : got;
}

// Checks, for each batch of events handed over together, that the snapshot
// readers could see by then holds each worker's last state in the batch. (An
// earlier event of a batch may be older than the snapshot: one round can take
// a worker through several states.)
struct SnapshotChecker : fw::EventSink {
  fw::SnapshotBox* snapshots = nullptr;
  int checked = 0;
  std::string failures;
  std::shared_ptr<const fw::Snapshot> seen;     // latest() when the batch's events arrived
  std::map<int64_t, std::string> last_state;    // worker -> its last state event in the batch

  void publish(const fw::Event& e) override {
    if (e.kind != fw::EventKind::kState || !e.worker_id) return;
    auto now = snapshots->latest();
    if (now != seen) finish_batch();
    seen = now;
    last_state[*e.worker_id] = e.state;
    ++checked;
  }
  void finish_batch() {
    for (const auto& [id, state] : last_state) {
      const fw::WorkerView* w = seen ? seen->find(id) : nullptr;
      if (w && w->state != state)
        failures += "events said worker " + std::to_string(id) + " is " + state +
                    ", the snapshot readers had then says " + w->state + "\n";
    }
    last_state.clear();
  }
};
}  // namespace

TEST_CASE("a state event reaches the sinks only after a snapshot that shows that state", "[integration]") {
  auto failures = in_child([](Core& c) {
    SnapshotChecker checker;
    checker.snapshots = &c.snapshots;
    c.supervisor.add_sink(&checker);
    // starting -> running -> backoff -> starting ... -> fatal: many state changes.
    auto s = start_request({"exit-with", "--code", "3"}, fw::RestartPolicy::kOnFailure);
    s.spec.max_restarts = 3;
    auto ticket = c.commands->post(s);
    c.run_until([&] {
      auto w = c.snapshots.latest()->find(1);
      return w && w->state == "fatal";
    });
    checker.finish_batch();
    if (checker.checked < 8) checker.failures += "only " + std::to_string(checker.checked) + " state events\n";
    return checker.failures;
  });
  CHECK(failures == "");
}

TEST_CASE("the loop drops a command whose deadline passed or whose caller gave up, and acts on the others",
          "[integration]") {
  auto failures = in_child([](Core& c) {
    std::string out;
    auto started = c.commands->post(start_request({"exit-with", "--sleep"}));
    if (!c.run_until([&] { return c.worker(1) && c.worker(1)->state == "running"; })) return std::string("never ran");
    auto expired = c.commands->post(fw::StopWorker{1}, fw::monotonic_ns() - 1);
    auto abandoned = c.commands->post(fw::StopWorker{1});
    if (!abandoned.claim->abandon()) out += "could not abandon a command the loop had not seen\n";
    auto kept = c.commands->post(fw::SignalWorker{1, SIGCONT});
    c.run_until([&] { return kept.reply.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
    if (kept.reply.get().code != fw::ReplyCode::kOk) out += "the live command failed\n";
    for (auto* t : {&expired, &abandoned}) {
      try {
        t->reply.get();
        out += "a dropped command was answered\n";
      } catch (const std::future_error&) {
      }
    }
    if (c.worker(1)->state != "running") out += "a dropped stop was carried out: " + c.worker(1)->state + "\n";
    return out;
  });
  CHECK(failures == "");
}

TEST_CASE("a worker whose output cannot be watched does not start, says why, and is reaped", "[integration]") {
  auto failures = in_child([](Core& c) {
    std::string out;
    // The signalfd and the command eventfd are watched; room for stdout but not stderr.
    c.loop->set_max_watched(3);
    auto t = c.commands->post(start_request({"exit-with", "--sleep"}));
    c.run_until([&] { return t.reply.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
    auto reply = t.reply.get();
    if (reply.code == fw::ReplyCode::kOk) out += "answered ok for a worker whose stderr nobody reads\n";
    if (reply.message.find("cannot watch its output") == std::string::npos) out += "reply: " + reply.message + "\n";
    // Its process was killed and reaped, then the worker went.
    if (!c.run_until([&] { return c.counters.signaled == 1 && c.snapshots.latest()->workers.empty(); }))
      out += "the unwatched child was not killed, reaped and forgotten\n";
    return out;
  });
  CHECK(failures == "");
}

// Counts adopted orphans attributed to each worker.
struct AdoptCounter : fw::EventSink {
  std::map<int64_t, int> by_worker;
  void publish(const fw::Event& e) override {
    if (e.kind == fw::EventKind::kAdopt) ++by_worker[e.worker_id.value_or(0)];
  }
};

TEST_CASE("process groups are forgotten once nothing is left in them", "[integration]") {
  auto failures = in_child([](Core& c) {
    std::string out;
    AdoptCounter adopted;
    c.supervisor.add_sink(&adopted);
    // Five starts (the start limit), each its own group, each gone at once.
    auto t = c.commands->post(start_request({"exit-with", "--code", "1"}, fw::RestartPolicy::kAlways));
    c.run_until([&] { return c.worker(1) && c.worker(1)->state == "fatal"; });
    if (c.counters.exited != 5) out += "exits: " + std::to_string(c.counters.exited) + "\n";
    if (c.supervisor.tracked_groups() != 0)
      out += "still tracking " + std::to_string(c.supervisor.tracked_groups()) + " empty groups\n";
    // A group with a member left (orphan-maker's lingering children) stays until they are reaped.
    auto o = c.commands->post(start_request({"orphan-maker", "--children", "3", "--linger-ms", "2000"}));
    c.run_until([&] { return c.worker(2) && c.worker(2)->state == "exited"; });
    if (c.supervisor.tracked_groups() != 1) out += "the orphans' group was forgotten while they lived\n";
    c.run_until([&] { return c.counters.adopted == 3; });
    if (c.supervisor.tracked_groups() != 0) out += "the orphans' group outlived them\n";
    // Orphans of one group reaped in one drain are all still attributed.
    if (adopted.by_worker[2] != 3) out += std::to_string(adopted.by_worker[2]) + " of 3 orphans attributed\n";
    return out;
  });
  CHECK(failures == "");
}

TEST_CASE("starts queued together are answered after one snapshot that holds every one of them", "[integration]") {
  auto failures = in_child([](Core& c) {
    std::string out;
    std::vector<fw::CommandTicket> tickets;
    for (int i = 0; i < 8; ++i) tickets.push_back(c.commands->post(start_request({"exit-with", "--sleep"})));
    const uint64_t seq_before = c.snapshots.latest() ? c.snapshots.latest()->seq : 0;
    c.run_until([&] {
      for (auto& t : tickets)
        if (t.reply.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return false;
      return true;
    });
    // A snapshot per start copied every worker's view per spawn (issue 17): one serves the batch.
    const auto s = c.snapshots.latest();
    if (s->seq - seq_before != 1) out += "snapshots published for 8 queued starts: " + std::to_string(s->seq - seq_before) + "\n";
    for (auto& t : tickets) {
      fw::CommandReply r = t.reply.get();
      if (r.code != fw::ReplyCode::kOk || !r.worker) {
        out += "a start failed: " + r.message + "\n";
        continue;
      }
      const fw::WorkerView* w = s->find(r.worker->id);
      if (!w || w->state != "running") out += "worker " + std::to_string(r.worker->id) + " not running in the snapshot\n";
    }
    return out;
  });
  INFO(failures);
  CHECK(failures.empty());
}

TEST_CASE("sinks hear a loop round's events together, then one flush that wakes their readers", "[integration]") {
  auto failures = in_child([](Core& c) {
    struct Counting : fw::EventSink {
      int events = 0, flushes = 0;
      bool last_was_flush = false;
      void publish(const fw::Event&) override {
        ++events;
        last_was_flush = false;
      }
      void round_done() override {
        ++flushes;
        last_was_flush = true;
      }
    } sink;
    c.supervisor.add_sink(&sink);
    std::vector<fw::CommandTicket> tickets;
    for (int i = 0; i < 8; ++i) tickets.push_back(c.commands->post(start_request({"exit-with", "--code", "0"})));
    c.run_until([&] {
      const auto snap = c.snapshots.latest();
      for (const auto& w : snap->workers)
        if (w.state != "exited") return false;
      return snap->workers.size() == 8;
    });
    std::string out;
    // A wake per event woke 1,000 SSE clients for each of a round's events (issue 17).
    if (sink.flushes == 0 || sink.flushes * 2 > sink.events)
      out += std::to_string(sink.events) + " events, " + std::to_string(sink.flushes) + " flushes\n";
    if (!sink.last_was_flush) out += "events after the last flush\n";
    return out;
  });
  INFO(failures);
  CHECK(failures.empty());
}
