#include "family.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "proc_parse.h"

namespace forkwatch {
namespace {

// Reads a small procfs file whole; empty on any error (the process is gone).
std::string read_small(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return {};
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1u << 20)) break;
  }
  return out;
}

bool environ_names_worker(pid_t pid, int64_t worker_id, const std::string& root) {
  const std::string want = std::string(kWorkerIdEnv) + "=" + std::to_string(worker_id);
  std::string env = read_small(root + "/" + std::to_string(pid) + "/environ");
  size_t start = 0;
  while (start < env.size()) {
    size_t end = env.find('\0', start);
    if (end == std::string::npos) end = env.size();
    if (std::string_view(env).substr(start, end - start) == want) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

uint64_t process_start_time(pid_t pid, const std::string& root) {
  auto st = parse_proc_stat(read_small(root + "/" + std::to_string(pid) + "/stat"));
  return st ? st->starttime : 0;
}

std::vector<FamilyMember> family_pidfds(const FamilyQuery& q, const std::string& root) {
  std::unordered_map<pid_t, ProcStat> procs;
  if (DIR* dir = opendir(root.c_str())) {
    while (dirent* e = readdir(dir)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (*end != '\0' || pid <= 0 || pid == q.daemon_pid) continue;
      auto st = parse_proc_stat(read_small(root + "/" + e->d_name + "/stat"));
      if (st && !st->kernel_thread()) procs.emplace(static_cast<pid_t>(pid), std::move(*st));
    }
    closedir(dir);
  }
  // Members: the group, the main process, the adopted orphans tagged with the
  // worker's id; then everything below any member, to a fixed point.
  std::unordered_set<pid_t> members;
  for (const auto& [pid, st] : procs) {
    if ((q.pgid > 0 && st.pgrp == q.pgid) || pid == q.main_pid) members.insert(pid);
    else if (st.ppid == q.daemon_pid && environ_names_worker(pid, q.worker_id, root))
      members.insert(pid);
  }
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [pid, st] : procs)
      if (!members.contains(pid) && members.contains(st.ppid)) grew = members.insert(pid).second;
  }
  std::vector<FamilyMember> fds;
  for (pid_t pid : members) {
    Fd fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    // The pidfd names whatever has this pid now; keep it only if that is still
    // the process we scanned (same start time).
    if (fd && process_start_time(pid, root) == procs[pid].starttime) fds.push_back({pid, std::move(fd)});
  }
  return fds;
}

}  // namespace forkwatch
