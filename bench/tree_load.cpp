// bench-tree-load: a supervised program that makes a big, quiet process tree
// for the sampler and /api/tree figures of issue 4.
//   bench-tree-load --procs N [--threads T] [--ready FILE]
// Forks N children; each starts T-1 extra threads that block in pause(), so
// the tree holds N+1 processes and N*T+1 threads, none of which ever wakes.
// Writes "ready N" to FILE (if given) once every child has all its threads,
// then waits for SIGTERM/SIGINT, kills and reaps its children, and exits 0.
// Children die with it (PR_SET_PDEATHSIG) and share its process group, so a
// group stop ends them too.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

void* idle_thread(void* arg) {
  char name[16];
  std::snprintf(name, sizeof name, "load-t%ld", reinterpret_cast<long>(arg));
  pthread_setname_np(pthread_self(), name);
  for (;;) pause();
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  long procs = 0, threads = 1;
  const char* ready_file = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--procs") && i + 1 < argc) procs = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atol(argv[++i]);
    else if (!std::strcmp(argv[i], "--ready") && i + 1 < argc) ready_file = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench-tree-load --procs N [--threads T] [--ready FILE]\n");
      return 2;
    }
  }
  if (procs < 1 || procs > 20000 || threads < 1 || threads > 100) {
    std::fprintf(stderr, "bench-tree-load: --procs 1..20000, --threads 1..100\n");
    return 2;
  }
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigaddset(&term, SIGINT);
  sigprocmask(SIG_BLOCK, &term, nullptr);

  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return 1;
  const pid_t parent = getpid();
  std::vector<pid_t> pids;
  for (long i = 0; i < procs; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      break;
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      sigprocmask(SIG_UNBLOCK, &term, nullptr);
      close(ready[0]);
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, 64 * 1024);
      for (long t = 1; t < threads; ++t) {
        pthread_t th;
        if (pthread_create(&th, &attr, idle_thread, reinterpret_cast<void*>(t)) != 0) _exit(1);
      }
      char c = 'r';
      if (write(ready[1], &c, 1) != 1) _exit(1);
      for (;;) pause();
    }
    pids.push_back(pid);
  }
  close(ready[1]);
  size_t got = 0;
  char buf[4096];
  for (int waited = 0; got < pids.size() && waited < 120; ++waited) {
    pollfd p{ready[0], POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    ssize_t r = read(ready[0], buf, sizeof buf);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  close(ready[0]);
  if (ready_file) {
    FILE* f = std::fopen(ready_file, "w");
    if (f) {
      std::fprintf(f, "ready %zu\n", got);
      std::fclose(f);
    }
  }
  int sig = 0;
  sigwait(&term, &sig);
  for (pid_t p : pids) kill(p, SIGKILL);
  for (pid_t p : pids)
    while (waitpid(p, nullptr, 0) < 0 && errno == EINTR) {
    }
  return 0;
}
