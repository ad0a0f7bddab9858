#include "family.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "proc_parse.h"

namespace forkwatch {
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

namespace {

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

namespace {

// The pids in /proc/PID/task/*/children: the direct children of every thread.
// nullopt when the kernel has no children files (CONFIG_PROC_CHILDREN off).
std::optional<std::vector<pid_t>> children_of(pid_t pid, const std::string& root) {
  const std::string task_dir = root + "/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(task_dir.c_str());
  if (!dir) return std::vector<pid_t>{};  // the process is gone
  std::vector<pid_t> out;
  bool supported = true;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string thread_dir = task_dir + "/" + e->d_name;
    const std::string path = thread_dir + "/children";
    // The thread is there but its children file is not: no such files here.
    if (access(path.c_str(), F_OK) != 0 && access(thread_dir.c_str(), F_OK) == 0) {
      supported = false;
      break;
    }
    const std::string text = read_small(path);
    const char* p = text.c_str();
    for (char* end = nullptr;; p = end) {
      const long v = std::strtol(p, &end, 10);
      if (end == p) break;
      out.push_back(static_cast<pid_t>(v));
    }
  }
  closedir(dir);
  if (!supported) return std::nullopt;
  return out;
}

// The whole-/proc way: every process's stat, parents linked to a fixed point.
// Costs a read per process on the machine, so it is only the fallback.
std::unordered_map<pid_t, uint64_t> scan_family(const FamilyQuery& q, const std::string& root) {
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
  std::unordered_map<pid_t, uint64_t> members;
  for (const auto& [pid, st] : procs) {
    if ((q.pgid > 0 && st.pgrp == q.pgid) || pid == q.main_pid) members.emplace(pid, st.starttime);
    else if (st.ppid == q.daemon_pid && environ_names_worker(pid, q.worker_id, root))
      members.emplace(pid, st.starttime);
  }
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [pid, st] : procs)
      if (!members.contains(pid) && members.contains(st.ppid)) grew = members.emplace(pid, st.starttime).second;
  }
  return members;
}

// The subreaper's way: a family member either descends from the living main
// process or, once its parent died, was re-parented to the daemon. So the
// roots are the main process and those of the daemon's own children that are
// not another worker's main process and belong to this worker (its group, or
// its FORKWATCH_WORKER_ID); below them, the children files. The cost is the
// size of the family plus the daemon's children, not the whole machine.
std::optional<std::unordered_map<pid_t, uint64_t>> walk_family(const FamilyQuery& q, const std::string& root) {
  auto daemon_children = children_of(q.daemon_pid, root);
  if (!daemon_children) return std::nullopt;
  std::unordered_map<pid_t, uint64_t> members;
  std::vector<pid_t> todo;
  auto add = [&](pid_t pid, const ProcStat& st) {
    if (members.emplace(pid, st.starttime).second) todo.push_back(pid);
  };
  for (pid_t c : *daemon_children) {
    if (c != q.main_pid && q.is_worker_main && q.is_worker_main(c)) continue;
    auto st = parse_proc_stat(read_small(root + "/" + std::to_string(c) + "/stat"));
    if (!st) continue;
    if (c == q.main_pid || (q.pgid > 0 && st->pgrp == q.pgid) || environ_names_worker(c, q.worker_id, root))
      add(c, *st);
  }
  while (!todo.empty()) {
    const pid_t pid = todo.back();
    todo.pop_back();
    auto kids = children_of(pid, root);
    if (!kids) return std::nullopt;
    for (pid_t k : *kids)
      if (auto st = parse_proc_stat(read_small(root + "/" + std::to_string(k) + "/stat"))) add(k, *st);
  }
  return members;
}

}  // namespace

std::vector<FamilyMember> family_pidfds(const FamilyQuery& q, const std::string& root) {
  auto walked = walk_family(q, root);
  const auto members = walked ? std::move(*walked) : scan_family(q, root);
  std::vector<FamilyMember> fds;
  for (const auto& [pid, starttime] : members) {
    if (pid == q.daemon_pid) continue;
    Fd fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    // The pidfd names whatever has this pid now; keep it only if that is still
    // the process we found (same start time).
    if (fd && process_start_time(pid, root) == starttime) fds.push_back({pid, std::move(fd)});
  }
  return fds;
}

}  // namespace forkwatch
