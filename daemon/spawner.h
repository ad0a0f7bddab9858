// Spawner: clone(CLONE_VM | CLONE_VFORK) + exec of one worker process, the
// way posix_spawn works. Everything the child needs (path, argv, envp, fds) is
// built before the clone; between clone and exec the child makes only
// async-signal-safe calls. The child leads its own process group,
// reads /dev/null, writes to two pipes, holds only fds 0-2 (and, when asked,
// one more: s6's notification-fd), and starts with an empty signal mask and
// every disposition at its default.
// Then it takes its identity and limits (identity.h), changes directory and
// execs. A failure comes back through a close-on-exec pipe ("stage, errno"),
// read before spawn() returns: the caller knows at once whether the program
// runs. Called on the loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fd.h"
#include "identity.h"
#include "sys_error.h"

namespace forkwatch {

struct SpawnRequest {
  std::string path;               // absolute path to execute
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> envp;  // "NAME=value"
  std::string cwd;                // empty: inherit
  int64_t nofile_soft = -1;       // soft RLIMIT_NOFILE to set in the child; -1: inherit
  bool capture_output = true;     // false: stdout and stderr go to /dev/null, no pipes
  // Applied in the child after the fds and before chdir and exec (identity.h);
  // its limits come after nofile_soft, so a program's own nofile wins.
  IdentityPlan identity;
  // A cgroup v2 directory (O_DIRECTORY) the child is cloned straight into
  // with clone3(CLONE_INTO_CGROUP): it never runs outside it. -1: the
  // daemon's own cgroup (the clone() path). Borrowed, not owned.
  int cgroup_fd = -1;
  // cgroup limits for the cgroup host to write before the clone; -1: none.
  int64_t memory_max = -1, memory_high = -1, pids_max = -1;
  double cpu_max = -1;
  // One more descriptor for the child: the daemon's `pass_fd` (borrowed)
  // becomes the child's fd `pass_fd_as` (3 or above), not close-on-exec, as
  // s6's notification-fd. -1: none.
  int pass_fd = -1, pass_fd_as = -1;
};

struct SpawnedChild {
  pid_t pid = -1;
  Fd out;          // read end of the child's stdout, non-blocking; none when not captured
  Fd err;          // read end of the child's stderr, non-blocking; none when not captured
  // Empty: the child has exec'd. Otherwise why it could not, e.g.
  // "execve(/bin/x): No such file or directory"; the child then exits 127.
  std::string exec_error;
};

// The child reads /dev/null on stdin. The first call opens six fds the
// spawner keeps for the daemon's life (see spawner.cpp); call spawn_prepare()
// early, while fd numbers are still low, so they stay low.
Result<SpawnedChild> spawn(const SpawnRequest& req);
Status spawn_prepare();

// Resolves a bare command name: the workers dir first, then each PATH entry.
// A name with a '/' is taken as is. Fails with a clear message when nothing
// executable is found.
Result<std::string> resolve_command(const std::string& name, const std::string& workers_dir,
                                    const std::string& path_env);

// The child's environment: the daemon's own plus the program's overrides.
std::vector<std::string> build_environment(char** base, const std::map<std::string, std::string>& overrides);

}  // namespace forkwatch
