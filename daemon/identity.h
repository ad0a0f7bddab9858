// Identity and limits of one worker process: who it runs as (user, group,
// the user's supplementary groups), its umask, resource limits, nice,
// oom_score_adj and no_new_privs. plan_identity() runs in the parent before
// the clone: it resolves names (getpwnam_r, getgrnam_r, getgrouplist), reads
// the env_file, checks what the daemon may grant, and returns an
// IdentityPlan of plain values. apply_identity() runs in the child between
// clone and exec and makes only raw, async-signal-safe syscalls. The config
// load and the API call plan_identity() too, so a bad value is refused there
// and not at the first start. Plan on the loop thread (or any thread for a
// check); apply only in a spawned child.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "program_spec.h"
#include "sys_error.h"

namespace forkwatch {

// The names `limits` takes, in the order docs list them: nofile, nproc,
// core, memlock, stack, as, cpu, fsize.
const std::vector<std::string_view>& limit_names();
// RLIMIT_* for a name of limit_names(); -1 for any other.
int limit_resource(std::string_view name);

// Whose powers the daemon has; the plan refuses what it could not do. Root
// is not enough: a container's root may lack CAP_SYS_RESOURCE (this test
// machine's does), so the effective capabilities decide.
struct Credentials {
  uid_t euid = 0;
  gid_t egid = 0;
  uint64_t caps = ~uint64_t{0};  // effective capability bits (capget)
  bool has(int cap) const { return (caps >> cap) & 1; }
  bool can_set_ids() const;          // CAP_SETUID and CAP_SETGID
  bool can_raise_limits() const;     // CAP_SYS_RESOURCE
  bool can_raise_priority() const;   // CAP_SYS_NICE
  static Credentials current();
};

struct IdentityPlan {
  struct Limit {
    int resource = -1;
    rlimit value{};
  };
  std::vector<Limit> limits;    // applied first, while the child may still raise a hard limit
  bool set_nice = false;
  int nice = 0;
  char oom_text[16] = {};       // "-500\n"; empty: leave oom_score_adj alone
  int umask = -1;               // -1: inherit
  bool set_gid = false;         // setgroups(groups) + setresgid(gid)
  std::vector<gid_t> groups;    // supplementary groups, gid included
  gid_t gid = 0;
  bool set_uid = false;         // setresuid(uid), after the groups
  uid_t uid = 0;
  bool no_new_privs = false;

  // For the parent: what the worker runs as, and the variables that follow
  // `user` (HOME, USER, LOGNAME, SHELL) merged with the env_file's.
  uid_t effective_uid = 0;
  gid_t effective_gid = 0;
  std::map<std::string, std::string> env;

  bool empty() const;  // nothing to do in the child
};

// Errors read "<where>: <field>: <why>" (program_fields.h's field_error).
Result<IdentityPlan> plan_identity(const ProgramSpec& spec, const std::string& where,
                                   const Credentials& self);

// In the child, between clone and exec. 0 when every step passed; else the
// failed step (identity_step_name() renders it) with errno set.
int32_t apply_identity(const IdentityPlan& plan);
// "setresuid(999)", "setrlimit(RLIMIT_NOFILE)": the call a step code names.
std::string identity_step_name(int32_t step, const IdentityPlan& plan);

// User and group names for ids (cached; "" when there is no entry). For the
// worker views and the tree; loop thread or any thread (locked).
std::string user_name(uid_t uid);
std::string group_name(gid_t gid);

}  // namespace forkwatch
