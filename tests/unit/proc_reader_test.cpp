#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "proc_reader.h"

using namespace forkwatch;

namespace {

const std::string kFixtureRoot = std::string(FORKWATCH_FIXTURES_DIR) + "/proc";

const ProcessInfo* by_pid(const std::vector<ProcessInfo>& v, pid_t pid) {
  for (const auto& p : v)
    if (p.pid == pid) return &p;
  return nullptr;
}

}  // namespace

TEST_CASE("a fixture scan returns every well-formed process sorted by pid", "[unit]") {
  ProcReader reader(kFixtureRoot);
  auto sample = reader.scan();
  REQUIRE(sample);
  std::vector<pid_t> pids;
  for (const auto& p : sample->processes) pids.push_back(p.pid);
  // 400 has a truncated stat; README and captured/ are not pids.
  CHECK(pids == std::vector<pid_t>{1, 2, 15, 100, 200, 201, 202, 300, 500, 600, 700});
  CHECK(sample->stats.malformed == 1);
  CHECK(sample->stats.errors == 0);
  CHECK(sample->stats.processes == pids.size());
  CHECK(sample->stats.threads == 13);  // 10 single-threaded + 3 threads of pid 100
}

TEST_CASE("a fixture scan reads threads, names and command lines", "[unit]") {
  ProcReader reader(kFixtureRoot);
  auto sample = reader.scan();
  REQUIRE(sample);
  const auto& procs = sample->processes;

  const ProcessInfo* app = by_pid(procs, 100);
  REQUIRE(app);
  CHECK(app->comm == "a) (b");
  CHECK(app->cmdline == std::vector<std::string>{"/usr/bin/app", "--flag", "x y"});
  CHECK(app->ppid == 1);
  CHECK(app->pgid == 100);
  CHECK(app->sid == 100);
  CHECK(app->utime == 50);
  CHECK(app->stime == 20);
  CHECK(app->starttime == 1000);
  CHECK(app->rss_bytes == 300 * sysconf(_SC_PAGESIZE));
  REQUIRE(app->threads.size() == 3);
  CHECK(app->threads[0].tid == 100);
  CHECK(app->threads[0].name == "a) (b");
  CHECK(app->threads[1].tid == 101);
  CHECK(app->threads[1].name == "x y");
  CHECK(app->threads[1].state == 'R');
  CHECK(app->threads[1].utime == 15);
  CHECK(app->threads[2].name == ")");
  CHECK(app->threads[2].state == 'D');

  // Single-threaded processes have no task/ directory in the fixture: their
  // one thread must come from PID/stat, without reading task/.
  const ProcessInfo* paren = by_pid(procs, 201);
  REQUIRE(paren);
  CHECK(paren->comm == ")");
  REQUIRE(paren->threads.size() == 1);
  CHECK(paren->threads[0].tid == 201);
  CHECK(paren->threads[0].name == ")");
  CHECK(paren->threads[0].utime == 7);

  CHECK(by_pid(procs, 200)->comm == "x y");
  CHECK(by_pid(procs, 202)->comm == "(");
  CHECK(by_pid(procs, 202)->state == 'T');

  const ProcessInfo* zombie = by_pid(procs, 300);
  REQUIRE(zombie);
  CHECK(zombie->state == 'Z');
  CHECK(zombie->cmdline.empty());
  CHECK(zombie->rss_bytes == 0);

  const ProcessInfo* kworker = by_pid(procs, 15);
  REQUIRE(kworker);
  CHECK(kworker->kernel_thread);
  CHECK(kworker->cmdline.empty());
  CHECK(kworker->comm == "kworker/0:1-events");
  CHECK_FALSE(by_pid(procs, 1)->kernel_thread);
}

TEST_CASE("a subtree scan returns just the root and its descendants", "[unit]") {
  ProcReader reader(kFixtureRoot);
  ScanOptions opt;
  opt.subtree_root = 100;
  auto sample = reader.scan(opt);
  REQUIRE(sample);
  std::vector<pid_t> pids;
  for (const auto& p : sample->processes) pids.push_back(p.pid);
  CHECK(pids == std::vector<pid_t>{100, 200, 201, 300});

  opt.subtree_root = 4242;  // absent root: nothing
  auto none = reader.scan(opt);
  REQUIRE(none);
  CHECK(none->processes.empty());
}

TEST_CASE("a scan of given pids skips those that are gone, silently", "[unit]") {
  ProcReader reader(kFixtureRoot);
  ScanOptions opt;
  opt.only_pids = {700, 100, 31337, 100};
  auto sample = reader.scan(opt);
  REQUIRE(sample);
  REQUIRE(sample->processes.size() == 2);
  CHECK(sample->processes[0].pid == 100);
  CHECK(sample->processes[1].pid == 700);
  CHECK(sample->stats.vanished == 1);
  CHECK(sample->stats.errors == 0);
  CHECK_FALSE(sample->stats.first_error);

  CHECK_FALSE(reader.read_process(31337));
  auto one = reader.read_process(100, false);
  REQUIRE(one);
  CHECK(one->threads.empty());
}

TEST_CASE("a missing root directory is an error value", "[unit]") {
  ProcReader reader(kFixtureRoot + "/does-not-exist");
  auto sample = reader.scan();
  REQUIRE_FALSE(sample);
  CHECK(sample.error().err == ENOENT);
  CHECK(sample.error().message().find("does-not-exist") != std::string::npos);
}

TEST_CASE("the real /proc shows this process with its named threads", "[unit]") {
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    pthread_setname_np(pthread_self(), "fw-probe-A");
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::thread other([&] {
    pthread_setname_np(pthread_self(), "fw probe) B");
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });

  ProcReader reader;  // "/proc"
  ScanOptions opt;
  opt.only_pids = {getpid()};
  std::set<std::string> names;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto sample = reader.scan(opt);
    REQUIRE(sample);
    REQUIRE(sample->processes.size() == 1);
    names.clear();
    for (const auto& t : sample->processes[0].threads) names.insert(t.name);
    if (names.count("fw-probe-A") && names.count("fw probe) B")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the poll's interval, under the deadline above
  }
  stop = true;
  worker.join();
  other.join();
  CHECK(names.count("fw-probe-A") == 1);
  CHECK(names.count("fw probe) B") == 1);

  // A whole-machine scan contains pid 1 and this process with its command line.
  auto all = reader.scan();
  REQUIRE(all);
  const ProcessInfo* init = by_pid(all->processes, 1);
  REQUIRE(init);
  CHECK(init->ppid == 0);
  const ProcessInfo* self = by_pid(all->processes, getpid());
  REQUIRE(self);
  CHECK(self->ppid == getppid());
  REQUIRE_FALSE(self->cmdline.empty());
  CHECK(self->cmdline[0].find("forkwatch_unit_tests") != std::string::npos);
  CHECK(self->rss_bytes > 0);
}

TEST_CASE("kept files and a zero file budget give the same fixture sample", "[unit]") {
  ProcReader kept(kFixtureRoot, 1000);
  ProcReader unkept(kFixtureRoot, 0);
  for (int round = 0; round < 3; ++round) {  // later rounds read through kept fds
    auto a = kept.scan();
    auto b = unkept.scan();
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(a->processes.size() == b->processes.size());
    for (size_t i = 0; i < a->processes.size(); ++i) {
      const ProcessInfo& x = a->processes[i];
      const ProcessInfo& y = b->processes[i];
      CHECK(x.pid == y.pid);
      CHECK(x.comm == y.comm);
      CHECK(x.cmdline == y.cmdline);
      CHECK(x.utime == y.utime);
      REQUIRE(x.threads.size() == y.threads.size());
      for (size_t t = 0; t < x.threads.size(); ++t) CHECK(x.threads[t].name == y.threads[t].name);
    }
    // The fixture is no procfs: without a CPU clock every thread is read each time.
    CHECK(kept.threads_read() == 3);
  }
  CHECK(kept.open_files() == 11 + 3);  // every stat and task/TID/stat of pid 100
  CHECK(unkept.open_files() == 0);
}

namespace {

void* pause_forever(void* name) {
  pthread_setname_np(pthread_self(), static_cast<const char*>(name));
  for (;;) pause();
  return nullptr;
}

}  // namespace

TEST_CASE("an idle process's threads are reused, a dead one is skipped silently", "[unit]") {
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  const pid_t parent = getpid();
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    static const char* names[] = {"idle-one", "idle-two", "idle-three"};
    for (const char* n : names) {
      pthread_t t;
      if (pthread_create(&t, nullptr, pause_forever, const_cast<char*>(n)) != 0) _exit(1);
    }
    char c = 'r';
    (void)!write(ready[1], &c, 1);
    for (;;) pause();
  }
  close(ready[1]);
  char c = 0;
  REQUIRE(read(ready[0], &c, 1) == 1);
  close(ready[0]);

  ProcReader reader;
  ScanOptions opt;
  opt.subtree_root = getpid();
  std::set<std::string> names;
  bool all_asleep = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // Until the names are set and every thread sleeps: a thread has its name a
  // moment before it blocks in pause(), and while it runs on, the process's
  // CPU clock moves (under ASan, ctest caught a scan in that moment).
  while (std::chrono::steady_clock::now() < deadline) {
    auto s = reader.scan(opt);
    REQUIRE(s);
    names.clear();
    all_asleep = true;
    if (const ProcessInfo* p = by_pid(s->processes, child))
      for (const auto& t : p->threads) {
        names.insert(t.name);
        all_asleep = all_asleep && t.state == 'S';
      }
    if (names.size() == 4 && names.count("idle-three") && all_asleep) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the poll's interval, under the deadline above
  }
  CHECK(names.count("idle-one") == 1);
  CHECK(names.count("idle-two") == 1);
  CHECK(names.count("idle-three") == 1);
  REQUIRE(all_asleep);

  // Nothing in the child runs now: after one scan of just the child (its CPU
  // clock taken once all slept), the next reads no thread file.
  opt.subtree_root = 0;
  opt.only_pids = {child};
  REQUIRE(reader.scan(opt));
  auto again = reader.scan(opt);
  REQUIRE(again);
  REQUIRE(again->processes.size() == 1);
  CHECK(again->processes[0].threads.size() == 4);
  CHECK(reader.threads_read() == 0);
  reader.set_always_read_threads(true);
  REQUIRE(reader.scan(opt));
  CHECK(reader.threads_read() == 4);

  kill(child, SIGKILL);
  REQUIRE(waitpid(child, nullptr, 0) == child);
  auto gone = reader.scan(opt);
  REQUIRE(gone);
  CHECK(gone->processes.empty());
  CHECK(gone->stats.vanished == 1);
  CHECK(gone->stats.errors == 0);
}

TEST_CASE("a sleeping thread carries its wait channel, a running one none", "[unit]") {
  ProcReader r(kFixtureRoot);
  auto p = r.read_process(100);
  REQUIRE(p);
  REQUIRE(p->threads.size() == 3);
  CHECK(p->threads[0].wchan == "futex_wait_queue");  // S
  CHECK(p->threads[1].wchan.empty());                // R: its file's stale text is not read
  CHECK(p->threads[2].wchan == "pipe_read");         // D
  ScanOptions no_wchan;
  no_wchan.only_pids = {100};
  no_wchan.wchan = false;
  ProcReader r2(kFixtureRoot);
  auto s = r2.scan(no_wchan);
  REQUIRE(s);
  CHECK(s->processes.at(0).threads.at(0).wchan.empty());
}

TEST_CASE("this process's sleeping thread shows the kernel function it waits in", "[unit]") {
  std::atomic<bool> stop{false};
  std::thread sleeper([&] {
    while (!stop) {
      // Sleeping is this thread's job: the test reads the kernel function
      // it waits in (hrtimer_nanosleep), nothing waits on it.
      timespec ts{0, 50'000'000};
      nanosleep(&ts, nullptr);
    }
  });
  ProcReader r;
  std::string wchan;
  const pid_t tid_main = getpid();
  // Until the sleeper is seen asleep: on a loaded machine it may not have
  // run yet, or be between two sleeps, for many reads in a row.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (wchan.find("nanosleep") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    auto p = r.read_process(getpid());
    REQUIRE(p);
    for (const auto& t : p->threads)
      if (t.tid != tid_main && t.state == 'S') wchan = t.wchan;
  }
  stop = true;
  sleeper.join();
  CHECK(wchan.find("nanosleep") != std::string::npos);
}

TEST_CASE("a scan reads effective uid and gid from status, and re-reads them only after the process ran", "[unit]") {
  {
    ProcReader reader(kFixtureRoot);
    auto sample = reader.scan();
    REQUIRE(sample);
    const ProcessInfo* app = by_pid(sample->processes, 100);
    REQUIRE(app);
    CHECK(app->uid == 1001);  // Uid: 1000 1001 1000 1000: the second is the effective one
    CHECK(app->gid == 51);
    const ProcessInfo* init = by_pid(sample->processes, 1);  // no status file in the fixture
    REQUIRE(init);
    CHECK(init->uid == -1);
    CHECK(init->gid == -1);
  }
  // A copy of one process whose files the test rewrites.
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("fw-proc-ids-" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "100");
  const std::string stat = "100 (app) S 1 100 100 0 -1 4194560 120 0 0 0 50 20 0 0 20 0 1 0 1000 20000000 300 0\n";
  auto write = [&](const char* name, const std::string& text) { std::ofstream(root / "100" / name) << text; };
  auto status = [](int uid, int gid) {
    return "Name:\tapp\nState:\tS (sleeping)\nTgid:\t100\nPid:\t100\nPPid:\t1\nUid:\t0\t" + std::to_string(uid) +
           "\t0\t0\nGid:\t0\t" + std::to_string(gid) + "\t0\t0\n";
  };
  write("stat", stat);
  write("status", status(0, 0));
  write("cmdline", std::string("app\0", 4));
  ProcReader reader(root.string());
  ScanOptions opt;
  opt.threads = false;
  auto uid_now = [&] {
    auto s = reader.scan(opt);
    REQUIRE(s);
    REQUIRE(s->processes.size() == 1);
    return s->processes[0].uid;
  };
  CHECK(uid_now() == 0);
  // Changed ids without a tick of CPU: not re-read (a setuid costs a syscall,
  // so a process that never ran cannot have made one)...
  write("status", status(65534, 65534));
  CHECK(uid_now() == 0);
  // ...until it has run: utime 50 -> 51.
  write("stat", "100 (app) S 1 100 100 0 -1 4194560 120 0 0 0 51 20 0 0 20 0 1 0 1000 20000000 300 0\n");
  CHECK(uid_now() == 65534);
  fs::remove_all(root);
}
