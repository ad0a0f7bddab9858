// Issue 13: what identity and limits add to one spawn, without a daemon's
// scheduling noise. Two figures, plain program vs "user": "nobody" + four
// limits + umask + nice 0 + oom_score_adj + no_new_privs, alternating in the
// same run: plan_identity() in the parent (name lookups, limit checks), and
// the spawner's whole spawn() of /bin/true (clone, child steps, exec),
// which returns once execve has passed its point of no return. Run as root;
// bounded (--rounds batches of --n spawns each), no network.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "identity.h"
#include "spawner.h"

using namespace forkwatch;
using Clock = std::chrono::steady_clock;

namespace {

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int n = 200, rounds = 9;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--n")) n = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench-identity-plan: run as root (children switch to nobody)\n");
    return 2;
  }
  ProgramSpec plain;
  plain.name = "p";
  plain.command = {"/bin/true"};
  ProgramSpec ident = plain;
  ident.user = "nobody";
  ident.umask = 027;
  ident.nice = 0;
  ident.oom_score_adj = 100;
  ident.no_new_privs = true;
  ident.limits = {{"nofile", {1024, 4096}}, {"core", {0, 0}}, {"nproc", {4096, 8192}},
                  {"stack", {8388608, kLimitInfinity}}};
  // --only FIELD: just that part of the identity, to see what costs what.
  for (int i = 1; i + 1 < argc; i += 2)
    if (!std::strcmp(argv[i], "--only")) {
      const std::string f = argv[i + 1];
      ProgramSpec only = plain;
      if (f == "user") only.user = ident.user;
      if (f == "limits") only.limits = ident.limits;
      if (f == "oom") only.oom_score_adj = ident.oom_score_adj;
      if (f == "nnp") only.no_new_privs = true;
      if (f == "nice") only.nice = ident.nice;
      ident = only;
    }
  const Credentials self = Credentials::current();
  if (!spawn_prepare()) return 1;

  std::vector<double> plan_us[2], spawn_us[2];
  for (int r = 0; r < rounds; ++r) {
    for (int k = 0; k < 2; ++k) {
      const int variant = (r % 2 == 0) ? k : 1 - k;  // alternate which goes first
      const ProgramSpec& spec = variant ? ident : plain;
      double plan_total = 0, spawn_total = 0;
      std::vector<pid_t> pids;
      for (int i = 0; i < n; ++i) {
        auto t0 = Clock::now();
        auto plan = plan_identity(spec, "bench", self);
        plan_total += us_since(t0);
        if (!plan) {
          std::fprintf(stderr, "%s\n", plan.error().message().c_str());
          return 1;
        }
        SpawnRequest req{"/bin/true", {"true"}, {"PATH=/usr/bin:/bin"}, "", -1, false, std::move(*plan)};
        t0 = Clock::now();
        auto child = spawn(req);
        spawn_total += us_since(t0);
        if (!child || !child->exec_error.empty()) {
          std::fprintf(stderr, "spawn failed: %s\n", child ? child->exec_error.c_str() : child.error().message().c_str());
          return 1;
        }
        pids.push_back(child->pid);
      }
      for (pid_t p : pids) waitpid(p, nullptr, 0);
      plan_us[variant].push_back(plan_total / n);
      spawn_us[variant].push_back(spawn_total / n);
    }
  }
  const char* names[] = {"plain", "identity"};
  for (int v = 0; v < 2; ++v)
    std::printf("%-8s plan_identity %6.1f us, spawn() %6.1f us per spawn (medians of %d batches of %d)\n", names[v],
                median(plan_us[v]), median(spawn_us[v]), rounds, n);
  const double plain_total = median(plan_us[0]) + median(spawn_us[0]);
  const double ident_total = median(plan_us[1]) + median(spawn_us[1]);
  std::printf("identity adds %.1f us per spawn: %.0f/s vs %.0f/s of the daemon's own spawn work (%.1f %%)\n",
              ident_total - plain_total, 1e6 / ident_total, 1e6 / plain_total, plain_total / ident_total * 100);
}
