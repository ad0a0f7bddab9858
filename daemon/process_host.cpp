#include "process_host.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace forkwatch {

Status ProcessGroupHost::prepare() { return spawn_prepare(); }

Result<SpawnedChild> ProcessGroupHost::spawn(int64_t, const SpawnRequest& req) {
  return forkwatch::spawn(req);
}

int ProcessGroupHost::signal_group(pid_t pgid, int sig) { return ::kill(-pgid, sig) == 0 ? 0 : errno; }

std::vector<FamilyMember> ProcessGroupHost::list_tree(const FamilyQuery& q) { return family_pidfds(q); }

void ProcessGroupHost::signal_member(const FamilyMember& m, int sig) {
  syscall(SYS_pidfd_send_signal, m.pidfd.get(), sig, nullptr, 0);
}

bool ProcessGroupHost::group_empty(pid_t pgid) { return ::kill(-pgid, 0) == -1 && errno == ESRCH; }

Status ProcessGroupHost::freeze(int64_t, bool) {
  // SIGSTOP would be seen by the processes (and by their parents' wait); the
  // freezer is invisible, and only a cgroup has one.
  return plain_error("pause needs cgroup containment (this daemon contains workers by process group)");
}

size_t ProcessGroupHost::reap(const std::function<bool(pid_t)>& is_own_child,
                              const std::function<void(const Reaped&)>& on_status) {
  return reap_all(is_own_child, on_status);
}

}  // namespace forkwatch
