// The supervisor over a fake ProcessHost: its decisions and bookkeeping with
// no process forked, no signal sent and no wait4. A real EventLoop and
// CommandQueue carry commands and timers as in the daemon.
#include <catch2/catch.hpp>
#include <functional>

#include "command.h"
#include "event_loop.h"
#include "fake_process_host.h"
#include "supervisor.h"

namespace fw = forkwatch;
using fw::testing::FakeProcessHost;

namespace {

struct Rig {
  FakeProcessHost host;
  std::unique_ptr<fw::EventLoop> loop = std::move(*fw::EventLoop::create());
  std::unique_ptr<fw::CommandQueue> commands = std::move(*fw::CommandQueue::create());
  fw::SnapshotBox snapshots;
  fw::SupervisorCounters counters;
  fw::Supervisor supervisor{*loop, *commands, snapshots, counters, fw::SupervisorOptions{"", "", 100, -1}, &host};

  Rig() { REQUIRE(supervisor.init()); }

  // Runs loop rounds until `done` holds or 2 s pass.
  bool run_until(const std::function<bool()>& done) {
    const int64_t end = fw::monotonic_ns() + 2'000'000'000;
    bool ok = false;
    std::function<void()> check = [&] {
      if ((ok = done()) || fw::monotonic_ns() > end) return loop->stop();
      loop->add_timer(fw::monotonic_ns() + 1'000'000, check);
    };
    loop->add_timer(fw::monotonic_ns(), check);
    loop->run();
    return ok;
  }
  fw::CommandReply send(fw::Command c) {
    auto ticket = commands->post(std::move(c));
    run_until([&] { return ticket.reply.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
    return ticket.reply.get();
  }
  const fw::WorkerView& worker(int64_t id) {
    const fw::WorkerView* w = snapshots.latest()->find(id);
    REQUIRE(w);
    return *w;
  }
  // The fake process ends; the supervisor reaps it as it would on SIGCHLD.
  void exit(pid_t pid, int raw) {
    host.exit(pid, raw);
    supervisor.reap_now();
    supervisor.publish_now();
  }
};

fw::StartWorker start(fw::RestartPolicy restart, int64_t stop_timeout_ms = 5000) {
  fw::StartWorker s;
  s.spec.name = "t";
  s.spec.command = {"/bin/true", "--flag"};
  s.spec.restart = restart;
  s.spec.restart_delay_ms = 0;
  s.spec.stop_timeout_ms = stop_timeout_ms;
  return s;
}

}  // namespace

TEST_CASE("supervisor over a fake host: a start spawns the resolved command with the worker's id in its env", "[unit]") {
  Rig r;
  auto reply = r.send(start(fw::RestartPolicy::kNo));
  REQUIRE(reply.code == fw::ReplyCode::kOk);
  REQUIRE(r.host.spawned.size() == 1);
  CHECK(r.host.spawned[0].path == "/bin/true");
  CHECK(r.host.spawned[0].argv == std::vector<std::string>{"/bin/true", "--flag"});
  const auto& env = r.host.spawned[0].envp;
  CHECK(std::find(env.begin(), env.end(), "FORKWATCH_WORKER_ID=1") != env.end());
  CHECK(r.worker(1).state == "running");
  CHECK(r.worker(1).pid == 1000);
}

TEST_CASE("supervisor over a fake host: a failed exit is restarted, a clean one under on-failure is not", "[unit]") {
  Rig r;
  r.send(start(fw::RestartPolicy::kOnFailure));
  r.exit(1000, FakeProcessHost::exited(3));
  REQUIRE(r.run_until([&] { return r.host.spawned.size() == 2 && r.worker(1).state == "running"; }));
  CHECK(r.worker(1).restarts == 1);
  CHECK(r.worker(1).pid == 1001);
  REQUIRE(r.worker(1).last_exit);
  CHECK(r.worker(1).last_exit->status.exit_status == 3);
  r.exit(1001, FakeProcessHost::exited(0));
  CHECK(r.worker(1).state == "exited");
  CHECK(r.host.spawned.size() == 2);
}

TEST_CASE("supervisor over a fake host: a stop sends the stop signal, then SIGKILL at the timeout", "[unit]") {
  Rig r;
  r.send(start(fw::RestartPolicy::kAlways, /*stop_timeout_ms=*/0));
  r.send(fw::StopWorker{1});
  // SIGTERM and SIGCONT to the group (a stopped group must be continued to act on it), then SIGKILL.
  REQUIRE(r.run_until([&] { return r.host.signals.size() >= 3; }));
  CHECK(r.host.signals[0].pgid == 1000);
  CHECK(r.host.signals[0].sig == SIGTERM);
  CHECK(r.host.signals[1].sig == SIGCONT);
  CHECK(r.host.signals[2].sig == SIGKILL);
  CHECK(r.worker(1).state == "stopping");
  r.exit(1000, FakeProcessHost::killed(SIGKILL));
  CHECK(r.worker(1).state == "stopped");
  // `always` does not restart what a person stopped.
  CHECK_FALSE(r.run_until([&] { return r.host.spawned.size() > 1; }));
}

TEST_CASE("supervisor over a fake host: an exec failure makes the worker fatal with the reason", "[unit]") {
  Rig r;
  r.host.next_exec_error = "execve(/bin/true): Permission denied";
  fw::Config config;
  config.programs.push_back(start(fw::RestartPolicy::kAlways).spec);
  r.supervisor.apply_config(config);
  r.supervisor.publish_now();
  REQUIRE(r.run_until([&] { return r.snapshots.latest()->find(1) && r.worker(1).state == "fatal"; }));
  CHECK(r.worker(1).fatal_reason == "execve(/bin/true): Permission denied");
  // The child's exit 127 is reaped and recorded, and changes nothing.
  r.supervisor.reap_now();
  r.supervisor.publish_now();
  CHECK(r.worker(1).state == "fatal");
  CHECK(r.host.spawned.size() == 1);
}

TEST_CASE("supervisor over a fake host: removing a stopped worker releases its place", "[unit]") {
  Rig r;
  r.send(start(fw::RestartPolicy::kNo));
  r.exit(1000, FakeProcessHost::exited(0));
  CHECK(r.send(fw::RemoveWorker{1}).code == fw::ReplyCode::kOk);
  CHECK(r.host.released == std::vector<int64_t>{1});
  CHECK(r.snapshots.latest()->find(1) == nullptr);
}

namespace {
fw::ProgramSpec program(const std::string& name, std::vector<fw::Dependency> deps = {}) {
  fw::ProgramSpec p;
  p.name = name;
  p.command = {"/bin/true"};
  p.restart = fw::RestartPolicy::kNo;
  p.depends_on = std::move(deps);
  return p;
}
}  // namespace

TEST_CASE("supervisor over a fake host: a dependent waits, saying why, and starts once its one-shot completed", "[unit]") {
  Rig r;
  fw::Config config;
  config.programs = {program("migrate"), program("app", {{"migrate", fw::DependencyCondition::kCompleted}})};
  r.supervisor.apply_config(config);
  r.supervisor.publish_now();
  REQUIRE(r.run_until([&] { return r.host.spawned.size() == 1 && r.worker(2).state == "waiting"; }));
  CHECK(r.worker(2).waiting_for == "waiting for migrate to complete");
  CHECK(r.worker(2).pid == -1);
  r.exit(1000, FakeProcessHost::exited(1));  // a failed one-shot: still waiting
  CHECK_FALSE(r.run_until([&] { return r.host.spawned.size() > 1; }));
  CHECK(r.worker(2).state == "waiting");
  r.send(fw::RestartWorker{1});
  r.exit(1001, FakeProcessHost::exited(0));
  REQUIRE(r.run_until([&] { return r.host.spawned.size() == 3 && r.worker(2).state == "running"; }));
  CHECK(r.worker(2).waiting_for.empty());
  CHECK(r.worker(2).pid == 1002);
}

TEST_CASE("supervisor over a fake host: shutdown stops a dependent first, its dependency only once it exited", "[unit]") {
  Rig r;
  fw::Config config;
  config.programs = {program("db"), program("api", {{"db", fw::DependencyCondition::kStarted}}),
                     program("web", {{"api", fw::DependencyCondition::kStarted}})};
  r.supervisor.apply_config(config);
  REQUIRE(r.run_until([&] { return r.host.spawned.size() == 3; }));
  // Started in order: db (1000), then api (1001), then web (1002).
  CHECK(r.host.spawned[0].argv[0] == "/bin/true");
  r.host.signals.clear();
  r.supervisor.shutdown();
  auto signalled = [&](pid_t pgid) {
    return std::any_of(r.host.signals.begin(), r.host.signals.end(),
                       [&](const auto& s) { return s.pgid == pgid && s.sig == SIGTERM; });
  };
  CHECK(signalled(1002));
  CHECK_FALSE(signalled(1001));
  CHECK_FALSE(signalled(1000));
  r.exit(1002, FakeProcessHost::killed(SIGTERM));
  CHECK(signalled(1001));
  CHECK_FALSE(signalled(1000));
  r.exit(1001, FakeProcessHost::killed(SIGTERM));
  CHECK(signalled(1000));
  r.exit(1000, FakeProcessHost::killed(SIGTERM));
}

TEST_CASE("supervisor over a fake host: a SIGKILL while the cgroup's oom_kill count grew is cause oom_kill", "[unit]") {
  Rig r;
  r.host.oom[1] = 2;  // two OOM kills before this start: not this process's
  r.send(start(fw::RestartPolicy::kNo));
  r.host.oom[1] = 3;
  r.exit(1000, FakeProcessHost::killed(SIGKILL));
  REQUIRE(r.worker(1).last_exit);
  CHECK(r.worker(1).last_exit->cause == fw::ExitCause::kOomKill);
  // A SIGKILL with no new OOM kill is someone else's.
  r.send(fw::RestartWorker{1});
  r.exit(1001, FakeProcessHost::killed(SIGKILL));
  CHECK(r.worker(1).last_exit->cause == fw::ExitCause::kSignaled);
}
