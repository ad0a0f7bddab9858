#include "identity.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include "env_file.h"
#include "program_fields.h"

namespace forkwatch {
namespace {

// Step codes the child reports: the step in the low byte, the index of the
// limit above it.
enum Step : int32_t { kRlimit = 1, kNice, kOom, kSetgroups, kSetgid, kSetuid, kNoNewPrivs };

struct LimitName {
  std::string_view name;
  int resource;
};
constexpr LimitName kLimits[] = {
    {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC},   {"core", RLIMIT_CORE},
    {"memlock", RLIMIT_MEMLOCK}, {"stack", RLIMIT_STACK}, {"as", RLIMIT_AS},
    {"cpu", RLIMIT_CPU},       {"fsize", RLIMIT_FSIZE},
};

std::string_view rlimit_macro(int resource) {
  switch (resource) {
    case RLIMIT_NOFILE: return "RLIMIT_NOFILE";
    case RLIMIT_NPROC: return "RLIMIT_NPROC";
    case RLIMIT_CORE: return "RLIMIT_CORE";
    case RLIMIT_MEMLOCK: return "RLIMIT_MEMLOCK";
    case RLIMIT_STACK: return "RLIMIT_STACK";
    case RLIMIT_AS: return "RLIMIT_AS";
    case RLIMIT_CPU: return "RLIMIT_CPU";
    case RLIMIT_FSIZE: return "RLIMIT_FSIZE";
  }
  return "RLIMIT_?";
}

std::optional<uint32_t> all_digits(const std::string& s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// One passwd entry copied out of getpw*_r's buffer.
struct UserEntry {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name, home, shell;
};

// getpw*_r / getgr*_r want a buffer; ERANGE asks for a bigger one.
template <typename Fn>
int with_buffer(Fn fn) {
  std::vector<char> buf(4096);
  while (true) {
    int rc = fn(buf);
    if (rc != ERANGE || buf.size() > (1u << 20)) return rc;
    buf.resize(buf.size() * 4);
  }
}

// ENOENT, ESRCH, EBADF and EPERM also mean "not found" (getpwnam_r(3)).
bool lookup_failed(int rc) { return rc != 0 && rc != ENOENT && rc != ESRCH && rc != EBADF && rc != EPERM; }
SysError lookup_error(int rc, std::string what) {
  errno = rc;
  return sys_error(std::move(what));
}

// nullopt: no entry; an error: the lookup itself failed.
Result<std::optional<UserEntry>> find_user(const std::string& name_or_id) {
  std::optional<UserEntry> out;
  const auto id = all_digits(name_or_id);
  int rc = with_buffer([&](std::vector<char>& buf) {
    passwd pw{}, *found = nullptr;
    int r = id ? getpwuid_r(*id, &pw, buf.data(), buf.size(), &found)
               : getpwnam_r(name_or_id.c_str(), &pw, buf.data(), buf.size(), &found);
    if (r == 0 && found) out = UserEntry{pw.pw_uid, pw.pw_gid, pw.pw_name, pw.pw_dir, pw.pw_shell};
    return r;
  });
  if (lookup_failed(rc)) return lookup_error(rc, "getpwnam_r(" + name_or_id + ")");
  return out;
}

Result<std::optional<gid_t>> find_group(const std::string& name_or_id) {
  std::optional<gid_t> out;
  const auto id = all_digits(name_or_id);
  int rc = with_buffer([&](std::vector<char>& buf) {
    group gr{}, *found = nullptr;
    int r = id ? getgrgid_r(*id, &gr, buf.data(), buf.size(), &found)
               : getgrnam_r(name_or_id.c_str(), &gr, buf.data(), buf.size(), &found);
    if (r == 0 && found) out = gr.gr_gid;
    return r;
  });
  if (lookup_failed(rc)) return lookup_error(rc, "getgrnam_r(" + name_or_id + ")");
  if (!out && id) out = *id;  // a number needs no entry
  return out;
}

// The user's supplementary groups from the group database, `gid` included.
std::vector<gid_t> groups_of(const std::string& user, gid_t gid) {
  int n = 64;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  while (getgrouplist(user.c_str(), gid, groups.data(), &n) < 0) groups.resize(static_cast<size_t>(n));
  groups.resize(static_cast<size_t>(n));
  return groups;
}

// Read once: an administrator rarely changes fs.nr_open, and a spawn should
// not pay a file read for it.
uint64_t nr_open() {
  static const uint64_t value = [] {
    std::ifstream in("/proc/sys/fs/nr_open");
    uint64_t v = 1u << 20;  // the kernel's default (fs/file.c sysctl_nr_open)
    in >> v;
    return v;
  }();
  return value;
}

std::string limit_text(uint64_t v) { return v == kLimitInfinity ? "unlimited" : std::to_string(v); }

Status plan_ids(const ProgramSpec& spec, const std::string& where, const Credentials& self,
                IdentityPlan& plan) {
  plan.effective_uid = self.euid;
  plan.effective_gid = self.egid;
  std::optional<UserEntry> entry;
  if (!spec.user.empty()) {
    auto u = find_user(spec.user);
    if (!u) return field_error(where, "user", u.error().message());
    entry = *u;
    if (!entry) {
      auto id = all_digits(spec.user);
      if (!id) return field_error(where, "user", "no such user: \"" + spec.user + "\"");
      if (spec.group.empty())
        return field_error(where, "user", "uid " + spec.user + " has no passwd entry, so `group` must be given");
      plan.uid = *id;
    } else {
      plan.uid = entry->uid;
      plan.gid = entry->gid;
      plan.env = {{"HOME", entry->home}, {"USER", entry->name}, {"LOGNAME", entry->name},
                  {"SHELL", entry->shell}};
    }
    plan.set_uid = true;
    plan.set_gid = true;
  }
  if (!spec.group.empty()) {
    auto g = find_group(spec.group);
    if (!g) return field_error(where, "group", g.error().message());
    if (!*g) return field_error(where, "group", "no such group: \"" + spec.group + "\"");
    plan.gid = **g;
    plan.set_gid = true;
  }
  if (plan.set_gid) plan.groups = entry ? groups_of(entry->name, plan.gid) : std::vector<gid_t>{plan.gid};
  if (plan.set_uid) plan.effective_uid = plan.uid;
  if (plan.set_gid) plan.effective_gid = plan.gid;

  if (!self.can_set_ids()) {
    // Without root the kernel lets us keep only our own ids: say so now,
    // not at every start.
    const std::string why = self.euid != 0 ? ", not root," : " without CAP_SETUID and CAP_SETGID,";
    if (plan.set_uid && plan.uid != self.euid)
      return field_error(where, "user",
                         "the daemon runs as uid " + std::to_string(self.euid) + why +
                             " so it cannot run a worker as \"" + spec.user + "\" (uid " +
                             std::to_string(plan.uid) + ")");
    if (plan.set_gid && plan.gid != self.egid)
      return field_error(where, spec.group.empty() ? "user" : "group",
                         "the daemon runs as gid " + std::to_string(self.egid) + why +
                             " so it cannot run a worker with gid " + std::to_string(plan.gid));
    plan.set_uid = plan.set_gid = false;  // already who we are; setgroups would need root
    plan.groups.clear();
  }
  return Ok{};
}

Status plan_limits(const ProgramSpec& spec, const std::string& where, const Credentials& self,
                   IdentityPlan& plan) {
  for (const auto& [name, value] : spec.limits) {
    const int res = limit_resource(name);
    const std::string field = "limits." + name;
    if (res < 0) return field_error(where, field, "is not a known limit");
    auto [soft, hard] = value;
    if (soft > hard)
      return field_error(where, field, "soft limit " + limit_text(soft) + " is above its hard limit " + limit_text(hard));
    rlimit cur{};
    getrlimit(res, &cur);
    if (!self.can_raise_limits() && hard > cur.rlim_max)
      return field_error(where, field,
                         "hard limit " + limit_text(hard) + " is above the daemon's hard limit " +
                             limit_text(cur.rlim_max) + "; raising it needs CAP_SYS_RESOURCE, which the daemon lacks");
    if (res == RLIMIT_NOFILE && hard > nr_open())
      return field_error(where, field,
                         "hard limit " + limit_text(hard) + " is above fs.nr_open (" + std::to_string(nr_open()) +
                             "), which the kernel never exceeds");
    plan.limits.push_back({res, rlimit{static_cast<rlim_t>(soft), static_cast<rlim_t>(hard)}});
  }
  return Ok{};
}

}  // namespace

const std::vector<std::string_view>& limit_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const LimitName& l : kLimits) v.push_back(l.name);
    return v;
  }();
  return names;
}

int limit_resource(std::string_view name) {
  for (const LimitName& l : kLimits)
    if (l.name == name) return l.resource;
  return -1;
}

bool Credentials::can_set_ids() const { return has(CAP_SETUID) && has(CAP_SETGID); }
bool Credentials::can_raise_limits() const { return has(CAP_SYS_RESOURCE); }
bool Credentials::can_raise_priority() const { return has(CAP_SYS_NICE); }

Credentials Credentials::current() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  uint64_t caps = 0;
  if (syscall(SYS_capget, &header, data) == 0)
    caps = uint64_t{data[0].effective} | (uint64_t{data[1].effective} << 32);
  return Credentials{geteuid(), getegid(), caps};
}

bool IdentityPlan::empty() const {
  return limits.empty() && !set_nice && oom_text[0] == 0 && umask < 0 && !set_gid && !set_uid &&
         !no_new_privs;
}

Result<IdentityPlan> plan_identity(const ProgramSpec& spec, const std::string& where, const Credentials& self) {
  IdentityPlan plan;
  if (auto st = plan_ids(spec, where, self, plan); !st) return st.error();
  if (auto st = plan_limits(spec, where, self, plan); !st) return st.error();
  if (spec.nice) {
    errno = 0;
    const int current = getpriority(PRIO_PROCESS, 0);
    if (!self.can_raise_priority() && *spec.nice < current)
      return field_error(where, "nice",
                         std::to_string(*spec.nice) + " is below the daemon's own nice " + std::to_string(current) +
                             "; raising a priority needs CAP_SYS_NICE, which the daemon lacks");
    plan.set_nice = true;
    plan.nice = *spec.nice;
  }
  if (spec.oom_score_adj)
    std::snprintf(plan.oom_text, sizeof plan.oom_text, "%d\n", *spec.oom_score_adj);
  plan.umask = spec.umask;
  plan.no_new_privs = spec.no_new_privs;
  if (!spec.env_file.empty()) {
    auto vars = read_env_file(spec.env_file);
    if (!vars) return field_error(where, "env_file", vars.error().message());
    for (auto& [k, v] : *vars) plan.env[k] = std::move(v);
  }
  return plan;
}

// Raw syscalls only. glibc's setresuid and friends broadcast the change to
// every thread of the process (nptl's setxid); in a CLONE_VM child the
// "process" glibc sees is the daemon's, so the wrappers would signal the
// daemon's threads. posix_spawn uses raw syscalls for the same reason.
__attribute__((no_sanitize("address", "undefined"))) int32_t apply_identity(const IdentityPlan& p) {
  for (size_t i = 0; i < p.limits.size(); ++i)
    if (syscall(SYS_prlimit64, 0, p.limits[i].resource, &p.limits[i].value, nullptr) != 0)
      return kRlimit | static_cast<int32_t>(i << 8);
  if (p.set_nice && syscall(SYS_setpriority, PRIO_PROCESS, 0, p.nice) != 0) return kNice;
  if (p.oom_text[0]) {
    int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC));
    if (fd < 0) return kOom;
    size_t len = 0;
    while (p.oom_text[len]) ++len;
    const bool ok = syscall(SYS_write, fd, p.oom_text, len) == static_cast<long>(len);
    const int saved = errno;
    syscall(SYS_close, fd);
    if (!ok) return errno = saved, kOom;
  }
  if (p.umask >= 0) syscall(SYS_umask, p.umask);
  // Groups before the uid: once the uid is dropped, changing groups needs a
  // capability the process no longer has.
  if (p.set_gid) {
    if (syscall(SYS_setgroups, p.groups.size(), p.groups.data()) != 0) return kSetgroups;
    if (syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0) return kSetgid;
  }
  if (p.set_uid && syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) return kSetuid;
  if (p.no_new_privs && syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return kNoNewPrivs;
  return 0;
}

std::string identity_step_name(int32_t step, const IdentityPlan& p) {
  const size_t index = static_cast<size_t>(step >> 8);
  switch (step & 0xff) {
    case kRlimit:
      if (index < p.limits.size()) return "setrlimit(" + std::string(rlimit_macro(p.limits[index].resource)) + ")";
      return "setrlimit";
    case kNice: return "setpriority(" + std::to_string(p.nice) + ")";
    case kOom: return "write(/proc/self/oom_score_adj)";
    case kSetgroups: return "setgroups(" + std::to_string(p.groups.size()) + " groups)";
    case kSetgid: return "setresgid(" + std::to_string(p.gid) + ")";
    case kSetuid: return "setresuid(" + std::to_string(p.uid) + ")";
    case kNoNewPrivs: return "prctl(PR_SET_NO_NEW_PRIVS)";
  }
  return "identity step " + std::to_string(step);
}

namespace {
template <typename Id, typename Lookup>
std::string cached_name(Id id, Lookup lookup) {
  static std::mutex mu;
  static std::unordered_map<Id, std::string> cache;  // guarded by mu; a few entries per machine
  std::lock_guard lock(mu);
  if (auto it = cache.find(id); it != cache.end()) return it->second;
  if (cache.size() > 4096) cache.clear();  // bounded, whatever ids a machine shows
  return cache[id] = lookup(id);
}
}  // namespace

std::string user_name(uid_t uid) {
  return cached_name(uid, [](uid_t u) {
    auto e = find_user(std::to_string(u));
    return e && *e ? (*e)->name : std::string();
  });
}

std::string group_name(gid_t gid) {
  return cached_name(gid, [](gid_t g) {
    std::string name;
    with_buffer([&](std::vector<char>& buf) {
      group gr{}, *found = nullptr;
      int r = getgrgid_r(g, &gr, buf.data(), buf.size(), &found);
      if (r == 0 && found) name = gr.gr_name;
      return r;
    });
    return name;
  });
}

}  // namespace forkwatch
