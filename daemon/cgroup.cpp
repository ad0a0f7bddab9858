#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "log.h"
#include "event.h"
#include "family.h"

namespace forkwatch {
namespace {

std::string_view next_line(std::string_view& text) {
  const size_t nl = text.find('\n');
  std::string_view line = text.substr(0, nl);
  text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  return line;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && s.size() - i >= 4 && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' &&
        s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<int64_t> to_int(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p == s.data()) return std::nullopt;
  return v;
}

std::string read_file(const std::string& path) { return read_small(path); }

Status write_file(const std::string& path, std::string_view text) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return sys_error("open(" + path + ")");
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return sys_error("write(" + path + ")");
  return Ok{};
}

Status make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return sys_error("mkdir(" + path + ")");
  return Ok{};
}

std::vector<pid_t> read_procs(const std::string& dir) {
  std::vector<pid_t> out;
  std::string_view text;
  std::string buf = read_file(dir + "/cgroup.procs");
  text = buf;
  while (!text.empty()) {
    auto v = to_int(next_line(text));
    if (v && *v > 0) out.push_back(static_cast<pid_t>(*v));
  }
  return out;
}

std::string own_cgroup_of(pid_t pid) {
  auto p = parse_own_cgroup(read_file("/proc/" + std::to_string(pid) + "/cgroup"));
  return p ? *p : std::string();
}

// A forkwatchd-PID subtree left by a daemon that died without close() (a
// SIGKILL, a crash): its processes are killed and its dirs removed, so that
// neither outlives it for long. Only for a PID that no longer exists.
void remove_stale_subtrees(const std::string& parent_dir) {
  DIR* d = opendir(parent_dir.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (!name.starts_with("forkwatchd-")) continue;
    auto pid = to_int(name.substr(11));
    if (!pid || *pid <= 0 || (::kill(static_cast<pid_t>(*pid), 0) == 0 || errno != ESRCH)) continue;
    stale.push_back(parent_dir + "/" + std::string(name));
  }
  closedir(d);
  for (const std::string& dir : stale) {
    DIR* sub = opendir(dir.c_str());
    if (!sub) continue;
    std::vector<std::string> kids;
    while (dirent* e = readdir(sub))
      if (e->d_type == DT_DIR && e->d_name[0] != '.') kids.push_back(dir + "/" + e->d_name);
    closedir(sub);
    for (const std::string& k : kids) {
      if (!read_procs(k).empty()) {
        write_file(k + "/cgroup.kill", "1");
        CgroupHost::wait_events(k, "populated", 0, 1000);
      }
      ::rmdir(k.c_str());
    }
    ::rmdir(dir.c_str());  // quietly: the crash that left it was reported when it happened
  }
}

}  // namespace

std::optional<std::string> find_cgroup2_mount(std::string_view mountinfo) {
  while (!mountinfo.empty()) {
    std::string_view line = next_line(mountinfo);
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL…] - FSTYPE SOURCE SUPER"
    const size_t sep = line.find(" - ");
    if (sep == std::string_view::npos) continue;
    std::string_view after = line.substr(sep + 3);
    if (after.substr(0, after.find(' ')) != "cgroup2") continue;
    std::string_view before = line.substr(0, sep);
    std::string_view fields[5];
    for (auto& f : fields) {
      const size_t sp = before.find(' ');
      f = before.substr(0, sp);
      before = sp == std::string_view::npos ? std::string_view{} : before.substr(sp + 1);
    }
    if (fields[4].empty()) continue;
    return unescape_octal(fields[4]);
  }
  return std::nullopt;
}

std::optional<std::string> parse_own_cgroup(std::string_view text) {
  while (!text.empty()) {
    std::string_view line = next_line(text);
    if (line.starts_with("0::")) return std::string(line.substr(3));
  }
  return std::nullopt;
}

int64_t worker_of_cgroup(std::string_view path, std::string_view subtree_rel) {
  std::string prefix(subtree_rel == "/" ? "" : subtree_rel);
  prefix += "/w-";
  if (!path.starts_with(prefix)) return 0;
  std::string_view rest = path.substr(prefix.size());
  rest = rest.substr(0, rest.find('/'));
  auto v = to_int(rest);
  return v && *v > 0 && std::to_string(*v) == rest ? *v : 0;
}

std::optional<int64_t> keyed_value(std::string_view text, std::string_view key) {
  while (!text.empty()) {
    std::string_view line = next_line(text);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ')
      return to_int(line.substr(key.size() + 1));
  }
  return std::nullopt;
}

std::optional<int64_t> psi_some_total(std::string_view text) {
  while (!text.empty()) {
    std::string_view line = next_line(text);
    if (!line.starts_with("some ")) continue;
    const size_t t = line.find("total=");
    if (t == std::string_view::npos) return std::nullopt;
    return to_int(line.substr(t + 6));
  }
  return std::nullopt;
}

// ---- CgroupHost ----

Result<std::unique_ptr<CgroupHost>> CgroupHost::create(std::string mount, std::string subtree_rel,
                                                       std::string leave_to_rel, bool made_subtree) {
  std::unique_ptr<CgroupHost> h(new CgroupHost());
  h->mount_ = std::move(mount);
  h->subtree_rel_ = std::move(subtree_rel);
  h->leave_to_rel_ = std::move(leave_to_rel);
  h->dir_ = h->mount_ + (h->subtree_rel_ == "/" ? "" : h->subtree_rel_);
  h->made_subtree_ = made_subtree;
  if (auto st = make_dir(h->dir_); !st) return st.error();
  // cgroup.kill came with Linux 5.14, the freezer with 5.2; without them a
  // stop could not end a whole tree at once.
  for (const char* f : {"cgroup.kill", "cgroup.freeze", "cgroup.events"})
    if (access((h->dir_ + "/" + f).c_str(), W_OK) != 0 && std::string(f) != "cgroup.events")
      return sys_error("access(" + h->dir_ + "/" + f + ")");
  if (auto st = make_dir(h->dir_ + "/daemon"); !st) return st.error();
  if (auto st = write_file(h->dir_ + "/daemon/cgroup.procs", std::to_string(getpid())); !st) {
    ::rmdir((h->dir_ + "/daemon").c_str());
    if (h->made_subtree_) ::rmdir(h->dir_.c_str());
    return st.error();
  }
  return h;
}

CgroupHost::~CgroupHost() { close(); }

Status CgroupHost::prepare() { return spawn_prepare(); }

Status CgroupHost::ensure_made(int64_t id) {
  if (made_.contains(id)) return Ok{};
  if (auto st = make_dir(worker_dir(id)); !st) return st;
  made_.insert(id);
  return Ok{};
}

Result<SpawnedChild> CgroupHost::spawn(int64_t worker_id, const SpawnRequest& req) {
  // This kernel (6.18) SIGKILLs every child cloned with CLONE_INTO_CGROUP
  // into a cgroup that was once written cgroup.kill (its kill sequence never
  // matches again), so such a cgroup is replaced by a fresh one of the same
  // name before the next spawn.
  if (killed_.erase(worker_id) && made_.contains(worker_id)) {
    const std::string dir = worker_dir(worker_id);
    wait_events(dir, "populated", 0, 1000);
    if (::rmdir(dir.c_str()) == 0) made_.erase(worker_id);
    else log::warning("cgroup " + dir + ": cannot replace it after cgroup.kill: " + std::strerror(errno));
  }
  if (auto st = ensure_made(worker_id); !st) return st.error();
  // Opened for this one clone, not kept: a fd per worker would count
  // against the daemon's fd table (output pipes already take two each).
  const std::string dir = worker_dir(worker_id);
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return sys_error("open(" + dir + ")");
  apply_limits(worker_id, req);
  SpawnRequest r = req;
  r.cgroup_fd = fd.get();
  return forkwatch::spawn(r);
}

void CgroupHost::apply_limits(int64_t worker_id, const SpawnRequest& req) {
  std::vector<std::string>& out = unenforced_[worker_id];
  out.clear();
  const std::string dir = worker_dir(worker_id);
  auto put = [&](const char* field, const char* file, int64_t value, std::string text) {
    if (value < 0) return;
    const std::string path = dir + "/" + file;
    if (access(path.c_str(), F_OK) != 0) {
      out.push_back(std::string(field) + ": not enforced, " + file + " does not exist in " + place(worker_id) +
                    " (its controller is not enabled in the cgroup v2 tree)");
      return;
    }
    if (auto st = write_file(path, text); !st) out.push_back(std::string(field) + ": not enforced, " + st.error().message());
  };
  put("memory_max", "memory.max", req.memory_max, std::to_string(req.memory_max));
  put("memory_high", "memory.high", req.memory_high, std::to_string(req.memory_high));
  put("pids_max", "pids.max", req.pids_max, std::to_string(req.pids_max));
  // cpu.max: "QUOTA PERIOD" in microseconds, with the default 100 ms period.
  const int64_t quota = req.cpu_max < 0 ? -1 : static_cast<int64_t>(req.cpu_max * 100'000 + 0.5);
  put("cpu_max", "cpu.max", quota, std::to_string(quota) + " 100000");
  for (const std::string& why : out) log::warning("worker id " + std::to_string(worker_id) + ": " + why);
}

std::vector<std::string> CgroupHost::unenforced(int64_t worker_id) const {
  auto it = unenforced_.find(worker_id);
  return it == unenforced_.end() ? std::vector<std::string>{} : it->second;
}

int CgroupHost::signal_group(pid_t pgid, int sig) { return ::kill(-pgid, sig) == 0 ? 0 : errno; }

std::vector<FamilyMember> CgroupHost::list_tree(const FamilyQuery& q) {
  std::vector<FamilyMember> out;
  const std::string dir = worker_dir(q.worker_id);
  const std::string rel = dir.substr(mount_.size());
  for (pid_t pid : read_procs(dir)) {
    if (pid == q.daemon_pid) continue;
    Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) continue;  // gone meanwhile
    // The pid may have been reused between the read and the open: the
    // process behind the pidfd must still be in the worker's cgroup.
    if (own_cgroup_of(pid) != rel) continue;
    out.push_back(FamilyMember{pid, std::move(pidfd)});
  }
  return out;
}

void CgroupHost::signal_member(const FamilyMember& m, int sig) {
  syscall(SYS_pidfd_send_signal, m.pidfd.get(), sig, nullptr, 0);
}

bool CgroupHost::group_empty(pid_t pgid) { return ::kill(-pgid, 0) == -1 && errno == ESRCH; }

bool CgroupHost::wait_events(const std::string& dir, std::string_view key, int64_t want, int timeout_ms) {
  Fd fd(::open((dir + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  const int64_t deadline = monotonic_ns() + int64_t{timeout_ms} * 1'000'000;
  for (;;) {
    char buf[256];
    ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    if (n < 0) return false;
    if (keyed_value(std::string_view(buf, static_cast<size_t>(n)), key) == want) return true;
    const int64_t left_ms = (deadline - monotonic_ns()) / 1'000'000;
    if (left_ms <= 0) return false;
    // cgroup.events raises POLLPRI on every change (cgroups(7), "cgroup.events").
    pollfd p{fd.get(), POLLPRI, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
  }
}

Status CgroupHost::freeze(int64_t worker_id, bool frozen) {
  if (auto st = ensure_made(worker_id); !st) return st;
  const std::string dir = worker_dir(worker_id);
  if (auto st = write_file(dir + "/cgroup.freeze", frozen ? "1" : "0"); !st) return st;
  // Frozen only once every task has stopped; a thaw is at once.
  if (frozen && !wait_events(dir, "frozen", 1, 1000))
    return plain_error(dir + ": not frozen within 1 s");
  return Ok{};
}

size_t CgroupHost::reap(const std::function<bool(pid_t)>& is_own_child,
                        const std::function<void(const Reaped&)>& on_status) {
  return reap_all(is_own_child, on_status,
                  [this](pid_t pid) { return worker_of_cgroup(own_cgroup_of(pid), subtree_rel_); });
}

bool CgroupHost::kill_all(int64_t worker_id) {
  if (!made_.contains(worker_id)) return false;
  const std::string dir = worker_dir(worker_id);
  // A frozen cgroup must be thawed for its tasks to die (cgroup.kill does
  // deliver SIGKILL to frozen tasks, but be explicit for older kernels).
  killed_.insert(worker_id);
  return write_file(dir + "/cgroup.kill", "1").ok();
}

std::vector<pid_t> CgroupHost::members(int64_t worker_id) {
  if (!made_.contains(worker_id)) return {};
  return read_procs(worker_dir(worker_id));
}

bool CgroupHost::wait_empty(int64_t worker_id, int timeout_ms) {
  if (!made_.contains(worker_id)) return true;
  return wait_events(worker_dir(worker_id), "populated", 0, timeout_ms);
}

std::string CgroupHost::place(int64_t worker_id) const {
  return (subtree_rel_ == "/" ? "" : subtree_rel_) + "/w-" + std::to_string(worker_id);
}

std::optional<int64_t> CgroupHost::oom_kills(int64_t worker_id) {
  std::string text = read_file(worker_dir(worker_id) + "/memory.events");
  if (text.empty()) return std::nullopt;
  return keyed_value(text, "oom_kill");
}

CgroupStats read_cgroup_stats(const std::string& dir) {
  CgroupStats s;
  const std::string cpu = read_file(dir + "/cpu.stat");
  s.cpu_usage_usec = keyed_value(cpu, "usage_usec").value_or(0);
  s.cpu_user_usec = keyed_value(cpu, "user_usec").value_or(0);
  s.cpu_system_usec = keyed_value(cpu, "system_usec").value_or(0);
  s.cpu_pressure_us = psi_some_total(read_file(dir + "/cpu.pressure"));
  s.memory_pressure_us = psi_some_total(read_file(dir + "/memory.pressure"));
  s.io_pressure_us = psi_some_total(read_file(dir + "/io.pressure"));
  if (std::string m = read_file(dir + "/memory.current"); !m.empty()) s.memory_current = to_int(m);
  if (std::string p = read_file(dir + "/pids.current"); !p.empty()) s.pids_current = to_int(p);
  if (std::string e = read_file(dir + "/memory.events"); !e.empty()) s.oom_kills = keyed_value(e, "oom_kill");
  s.processes = static_cast<int64_t>(read_procs(dir).size());
  return s;
}

CgroupStats CgroupHost::stats(int64_t worker_id) { return read_cgroup_stats(worker_dir(worker_id)); }

void CgroupHost::release(int64_t worker_id) {
  auto it = made_.find(worker_id);
  if (it == made_.end()) return;
  const std::string dir = worker_dir(worker_id);
  if (!read_procs(dir).empty()) {
    write_file(dir + "/cgroup.kill", "1");
    wait_events(dir, "populated", 0, 1000);
  }
  made_.erase(it);
  unenforced_.erase(worker_id);
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
    log::warning("cgroup " + dir + ": cannot remove it: " + std::strerror(errno));
}

void CgroupHost::close() {
  if (closed_) return;
  closed_ = true;
  for (int64_t id : made_) {
    const std::string dir = worker_dir(id);
    if (!read_procs(dir).empty()) write_file(dir + "/cgroup.kill", "1");
  }
  for (int64_t id : made_) {
    const std::string dir = worker_dir(id);
    if (!wait_events(dir, "populated", 0, 2000))
      log::warning("cgroup " + dir + ": still populated 2 s after cgroup.kill");
    ::rmdir(dir.c_str());
  }
  made_.clear();
  // Back where we came from, so that the leaf and the subtree can go.
  write_file(mount_ + (leave_to_rel_ == "/" ? "" : leave_to_rel_) + "/cgroup.procs", std::to_string(getpid()));
  ::rmdir((dir_ + "/daemon").c_str());
  if (made_subtree_) ::rmdir(dir_.c_str());
}

std::unique_ptr<ProcessHost> open_process_host(const std::string& root_flag, const std::string& wanted,
                                               Containment& out) {
  auto fallback = [&](std::string why) -> std::unique_ptr<ProcessHost> {
    if (wanted == "cgroup") {  // asked for by name: no quiet fallback
      out.mode = "";
      out.reason = std::move(why);
      return nullptr;
    }
    out.mode = "process-group";
    out.reason = std::move(why);
    return std::make_unique<ProcessGroupHost>();
  };
  if (wanted == "process-group") return fallback("--containment process-group");
  auto mount = find_cgroup2_mount(read_file("/proc/self/mountinfo"));
  if (!mount) return fallback("no cgroup2 file system is mounted (/proc/self/mountinfo)");
  auto own = parse_own_cgroup(read_file("/proc/self/cgroup"));
  if (!own) return fallback("/proc/self/cgroup has no cgroup v2 (0::) line");
  std::string subtree;
  bool made = false;
  if (!root_flag.empty()) {
    // --cgroup-root is a directory in the hierarchy; made here if missing.
    if (root_flag.rfind(*mount, 0) != 0 || (root_flag.size() > mount->size() && root_flag[mount->size()] != '/'))
      return fallback("--cgroup-root " + root_flag + " is not inside the cgroup2 mount " + *mount);
    subtree = root_flag.size() == mount->size() ? "/" : root_flag.substr(mount->size());
    struct stat st{};
    made = ::stat(root_flag.c_str(), &st) != 0;
  } else {
    const std::string own_dir = *mount + (*own == "/" ? "" : *own);
    const std::vector<pid_t> procs = read_procs(own_dir);
    // Alone in a cgroup that is not the root: systemd's Delegate=yes unit.
    // Else (by hand, from a shell) a subtree of our own below it.
    if (*own != "/" && procs.size() == 1 && procs[0] == getpid()) {
      subtree = *own;
    } else {
      subtree = (*own == "/" ? "" : *own) + "/forkwatchd-" + std::to_string(getpid());
      made = true;
      remove_stale_subtrees(own_dir);
    }
  }
  auto host = CgroupHost::create(*mount, subtree, *own, made);
  if (!host) return fallback("cgroup " + *mount + subtree + " is not usable: " + host.error().message());
  out.mode = "cgroup";
  out.reason.clear();
  out.subtree = subtree;
  return std::move(*host);
}

}  // namespace forkwatch
