#include "spawner.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <linux/close_range.h>
#include <linux/sched.h>

namespace forkwatch {
namespace {

// Stages the child reports with its errno, so the parent can say which call failed.
// kStageIdentity carries apply_identity()'s step above its low byte.
enum ChildStage : int32_t {
  kStageDup = 1, kStageChdir = 2, kStageExec = 3, kStageSetpgid = 4, kStageFds = 5, kStageIdentity = 6,
  kStagePassFd = 7
};

[[noreturn]] void child_fail(int fd, int32_t stage) {
  int32_t msg[2] = {stage, errno};
  ssize_t n = ::write(fd, msg, sizeof msg);
  (void)n;
  _exit(127);  // the shell's "command not found" status
}

// Five low fd numbers the daemon keeps open for its whole life (on /dev/null
// when idle): the child's stdin, stdout, stderr, exec-status pipe and passed
// fd (SpawnRequest::pass_fd) are placed there for the duration of one clone. The child shares the daemon's
// fd table (CLONE_FILES) and unshares it with close_range(CLOSE_RANGE_UNSHARE)
// from just above the slots, so the kernel copies only the few fds below
// them. Without this every spawn copied the whole table and exec closed
// every copy: with 10,000 workers (30,000 fds) that was most of a spawn.
struct Slots {
  int in = -1, out = -1, err = -1, status = -1, pass = -1;
  int filler = -1;     // /dev/null, put back into a slot after each spawn
  unsigned end = 0;    // one past the highest slot
};

const Slots* slots() {
  static const Slots* prepared = [] () -> const Slots* {
    static Slots s;
    int* fds[] = {&s.in, &s.out, &s.err, &s.status, &s.pass, &s.filler};
    for (int* fd : fds) {
      *fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (*fd < 0) return nullptr;
    }
    s.end = static_cast<unsigned>(std::max({s.in, s.out, s.err, s.status, s.pass})) + 1;
    return &s;
  }();
  return prepared;
}

// The signals whose disposition is not the default in the daemon: ignored
// (SIGPIPE; anything ignored by whoever started us) or caught (the
// sanitizers' handlers). The child must reset these: an ignored signal stays
// ignored across execve, and a handler must not run in a child that shares
// our memory between its unblocking and its exec. Read once, at the first
// spawn_prepare(): main sets the daemon's dispositions before the supervisor
// starts and nothing changes them later, so each child makes a couple of
// sigaction calls instead of one for each of the 62 catchable signals.
struct SignalList {
  int sig[NSIG];
  int count = 0;
};

const SignalList& non_default_signals() {
  static const SignalList list = [] {
    SignalList l;
    for (int sig = 1; sig < NSIG; ++sig) {
      struct sigaction cur{};
      if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, nullptr, &cur) != 0) continue;
      if (cur.sa_handler != SIG_DFL) l.sig[l.count++] = sig;
    }
    return l;
  }();
  return list;
}

// Everything the child needs, built by the parent before the clone.
struct ChildArgs {
  const SpawnRequest* req;
  char* const* argv;
  char* const* envp;
  const Slots* slots;
  const SignalList* signals;
};

// Runs in the child between clone and exec, on its own stack but in the
// parent's memory (CLONE_VM): async-signal-safe calls only, and nothing that
// writes memory the parent reads later, except the errno it reports.
// Not instrumented: the sanitizers' bookkeeping is the parent's, shared.
__attribute__((no_sanitize("address", "undefined"))) int child_exec(void* arg) {
  const ChildArgs& a = *static_cast<const ChildArgs*>(arg);
  const Slots& fd = *a.slots;
  int status = fd.status;  // moves if the passed fd's number is the status slot's
  // A table of our own, copied only up to the slots; from here on nothing we
  // do to fds touches the daemon's.
  if (syscall(SYS_close_range, fd.end, ~0u, CLOSE_RANGE_UNSHARE) != 0) child_fail(status, kStageFds);
  if (setpgid(0, 0) != 0) child_fail(status, kStageSetpgid);
  // Default dispositions for every signal the daemon ignores or catches,
  // then an empty mask: a child must not inherit the daemon's blocked SIGCHLD
  // or ignored SIGPIPE. Without CLONE_SIGHAND the child has its own copy of
  // the handler table, so this does not touch the daemon's.
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  for (int i = 0; i < a.signals->count; ++i) sigaction(a.signals->sig[i], &dfl, nullptr);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);

  if (dup2(fd.in, 0) < 0 || dup2(fd.out, 1) < 0 || dup2(fd.err, 2) < 0) child_fail(status, kStageDup);
  // Everything above 2 closes at exec, the status pipe included; nothing leaks.
  syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
  if (const int as = a.req->pass_fd_as; as >= 0 && a.req->pass_fd >= 0) {
    // The one exception, placed over whatever slot has its number (each is
    // close-on-exec and done with by now, but the status pipe, which moves).
    if (as == status) {
      const int moved = fcntl(status, F_DUPFD_CLOEXEC, 3);
      if (moved < 0) child_fail(status, kStagePassFd);
      status = moved;
    }
    // dup2 onto itself keeps the close-on-exec flag: clear it either way.
    if (dup2(fd.pass, as) < 0 || fcntl(as, F_SETFD, 0) != 0) child_fail(status, kStagePassFd);
  }
  if (a.req->nofile_soft >= 0) {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = static_cast<rlim_t>(a.req->nofile_soft);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  // Identity before chdir, so the directory is entered with the worker's
  // own permissions.
  if (int32_t step = apply_identity(a.req->identity)) child_fail(status, kStageIdentity | (step << 8));
  if (!a.req->cwd.empty() && chdir(a.req->cwd.c_str()) != 0) child_fail(status, kStageChdir);
  execve(a.req->path.c_str(), a.argv, a.envp);
  child_fail(status, kStageExec);
}

// The child's stack: one mapping for the daemon's life. CLONE_VFORK keeps the
// parent (the loop thread, the only caller) suspended until the child has
// exec'd or exited, so one child at a time uses it.
constexpr size_t kChildStackSize = 256 * 1024;
void* child_stack_top() {
  static void* top = [] {
    void* base = mmap(nullptr, kChildStackSize, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    return base == MAP_FAILED ? nullptr : static_cast<char*>(base) + kChildStackSize;
  }();
  return top;
}

// clone3 with CLONE_VM | CLONE_VFORK on the child stack, running fn(arg) in
// the child, as glibc's clone() does for clone: the syscall wrapper cannot,
// since the child would return from it on an empty stack. The child never
// returns from fn (it execs or _exits); exit(2) is there in case.
// Returns the pid, or -errno.
long clone3_run(clone_args* ca, int (*fn)(void*), void* arg) {
#if defined(__x86_64__)
  register long rax asm("rax") = SYS_clone3;
  register clone_args* rdi asm("rdi") = ca;
  register size_t rsi asm("rsi") = sizeof *ca;
  register int (*r12)(void*) asm("r12") = fn;
  register void* r13 asm("r13") = arg;
  asm volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      // The child, on its own stack (16-byte aligned top; call pushes 8).
      "xor %%ebp, %%ebp\n\t"
      "mov %%r13, %%rdi\n\t"
      "call *%%r12\n\t"
      "mov %%eax, %%edi\n\t"
      "mov $60, %%eax\n\t"  // SYS_exit
      "syscall\n\t"
      "hlt\n"
      "1:\n\t"
      : "+r"(rax)
      : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13)
      : "rcx", "r11", "memory");
  return rax;
#else
  // Elsewhere: clone3 as a fork (no shared memory), which the wrapper can do.
  ca->flags &= ~static_cast<uint64_t>(CLONE_VM | CLONE_VFORK);
  ca->stack = 0;
  ca->stack_size = 0;
  long r = syscall(SYS_clone3, ca, sizeof *ca);
  if (r == 0) _exit(fn(arg));
  return r < 0 ? -errno : r;
#endif
}

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

Result<std::pair<Fd, Fd>> make_pipe(int flags) {
  int p[2];
  if (pipe2(p, flags) != 0) return sys_error("pipe2");
  return std::pair<Fd, Fd>{Fd(p[0]), Fd(p[1])};
}

bool is_executable_file(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

// What the status pipe holds once the child has exec'd or exited. With
// CLONE_VFORK we only resume after one of the two, and a failing child writes
// before it exits, so an empty pipe means execve passed its point of no return.
std::string exec_error(int fd, const SpawnRequest& req) {
  int32_t msg[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(fd, msg, sizeof msg);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return {};  // EOF or EAGAIN (close-on-exec not yet applied): exec'd
  if (n != sizeof msg) return "exec status pipe: short read";
  std::string call;
  switch (msg[0] & 0xff) {
    case kStageChdir: call = "chdir(" + req.cwd + ")"; break;
    case kStageDup: call = "dup2(stdio)"; break;
    case kStageSetpgid: call = "setpgid"; break;
    case kStageFds: call = "close_range(CLOSE_RANGE_UNSHARE)"; break;
    case kStageIdentity: call = identity_step_name(msg[0] >> 8, req.identity); break;
    case kStagePassFd: call = "dup2(fd " + std::to_string(req.pass_fd_as) + ")"; break;
    default: call = "execve(" + req.path + ")"; break;
  }
  return call + ": " + std::strerror(msg[1]);
}

}  // namespace

Status spawn_prepare() {
  non_default_signals();
  if (!slots()) return sys_error("open(/dev/null) for the spawn fd slots");
  return Ok{};
}

Result<SpawnedChild> spawn(const SpawnRequest& req) {
  if (auto st = spawn_prepare(); !st) return st.error();
  const Slots* fd = slots();
  std::pair<Fd, Fd> out, err;  // (read, write); left empty when output is discarded
  if (req.capture_output) {
    auto o = make_pipe(O_CLOEXEC);
    if (!o) return o.error();
    auto e = make_pipe(O_CLOEXEC);
    if (!e) return e.error();
    out = std::move(*o);
    err = std::move(*e);
  }
  auto status = make_pipe(O_CLOEXEC | O_NONBLOCK);
  if (!status) return status.error();
  std::vector<char*> argv = c_strings(req.argv);
  std::vector<char*> envp = c_strings(req.envp);
  void* stack = child_stack_top();
  if (!stack) return sys_error("mmap(child stack)");

  // Into the slots for this one clone (dup3 replaces the filler atomically),
  // and back to the filler after it, which closes the slot's copies.
  const std::pair<int, int> all[] = {
      {req.capture_output ? out.second.get() : fd->in, fd->out},
      {req.capture_output ? err.second.get() : fd->in, fd->err},
      {status->second.get(), fd->status},
      {req.pass_fd, fd->pass}};
  const std::span<const std::pair<int, int>> placed(all, req.pass_fd >= 0 && req.pass_fd_as >= 0 ? 4 : 3);
  auto refill = [&] {
    for (auto [from, slot] : placed) dup3(fd->filler, slot, O_CLOEXEC);
  };
  for (auto [from, slot] : placed)
    if (dup3(from, slot, O_CLOEXEC) < 0) {
      auto err = sys_error("dup3(spawn slot)");
      refill();  // a slot left holding a pipe's write end would keep that pipe open
      return err;
    }
  ChildArgs args{&req, argv.data(), envp.data(), fd, &non_default_signals()};
  // clone(CLONE_VM | CLONE_VFORK), as posix_spawn does: no copy of the
  // daemon's page tables, so no copy-on-write faults (and TLB shootdowns
  // across the HTTP threads) after the fork. We resume once the child has
  // exec'd or exited, so its process group already exists before anyone
  // can signal it.
  pid_t pid;
  int clone_errno;
  if (req.cgroup_fd >= 0) {
    clone_args ca{};
    ca.flags = CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_INTO_CGROUP;
    ca.exit_signal = SIGCHLD;
    ca.stack = reinterpret_cast<uint64_t>(static_cast<char*>(stack) - kChildStackSize);
    ca.stack_size = kChildStackSize;
    ca.cgroup = static_cast<uint64_t>(req.cgroup_fd);
    const long r = clone3_run(&ca, child_exec, &args);
    pid = r < 0 ? -1 : static_cast<pid_t>(r);
    clone_errno = r < 0 ? static_cast<int>(-r) : 0;
  } else {
    pid = clone(child_exec, stack, CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &args);
    clone_errno = errno;
  }
  refill();
  if (pid < 0) {
    errno = clone_errno;
    return sys_error(req.cgroup_fd >= 0 ? "clone3(CLONE_INTO_CGROUP)" : "clone");
  }

  SpawnedChild child;
  child.pid = pid;
  status->second.reset();
  child.exec_error = exec_error(status->first.get(), req);
  child.out = std::move(out.first);
  child.err = std::move(err.first);
  for (const Fd* f : {&child.out, &child.err})
    if (*f) fcntl(f->get(), F_SETFL, fcntl(f->get(), F_GETFL) | O_NONBLOCK);
  return child;  // the write ends close here, so EOF on `out` means every writer is gone
}

Result<std::string> resolve_command(const std::string& name, const std::string& workers_dir,
                                    const std::string& path_env) {
  if (name.find('/') != std::string::npos) {
    if (is_executable_file(name)) return name;
    return plain_error("command not found or not executable: " + name);
  }
  if (!workers_dir.empty() && is_executable_file(workers_dir + "/" + name))
    return workers_dir + "/" + name;
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string::npos) end = path_env.size();
    std::string dir = path_env.substr(start, end - start);
    if (!dir.empty() && is_executable_file(dir + "/" + name)) return dir + "/" + name;
    start = end + 1;
  }
  return plain_error("command not found: " + name + " (looked in " +
                     (workers_dir.empty() ? std::string() : workers_dir + " and ") + "PATH)");
}

std::vector<std::string> build_environment(char** base,
                                           const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = base; e && *e; ++e) {
    std::string_view kv(*e);
    auto name = kv.substr(0, kv.find('='));
    if (!overrides.contains(std::string(name))) env.emplace_back(kv);
  }
  for (const auto& [k, v] : overrides) env.push_back(k + "=" + v);
  return env;
}

}  // namespace forkwatch
