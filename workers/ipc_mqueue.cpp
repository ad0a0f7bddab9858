// ipc-mqueue: a producer and a consumer over a POSIX message queue.
//
// Unlike a pipe, a message queue keeps message boundaries and lives in a
// kernel file system (/dev/mqueue) under a name, independent of any process:
// while this runs, `cat /dev/mqueue/<name>` shows how many bytes wait in it.
// The price of a name is cleanup: a queue nobody unlinks stays until reboot.
// So the parent (producer) unlinks it on every way out it controls, SIGTERM
// and SIGINT included; those only set a flag, and the blocking calls use
// timeouts so the flag is seen within 100 ms.
//
// The parent creates the queue and forks the consumer, sends 1..N and then an
// empty message meaning "the end" (same priority, so it arrives last). The
// consumer sums what it receives and prints 'consumer received C messages,
// sum S'. The parent reaps it and reports its status.

#include <fcntl.h>
#include <mqueue.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: ipc-mqueue [--count N] [--delay-ms T] [--name /NAME]\n"
    "\n"
    "The parent sends 1..N over a POSIX message queue to a child, which prints\n"
    "'consumer received N messages, sum S'. The queue is unlinked on exit.\n"
    "  --count N      how many numbers (default 1000, at most 100000000)\n"
    "  --delay-ms T   the producer pauses T ms between messages (to watch it run)\n"
    "  --name /NAME   queue name (default /forkwatch-mq-PID)\n"
    "  --help         show this text\n"
    "SIGTERM or SIGINT: both stop, the queue is unlinked, exit 0.\n";

constexpr long kMaxMessages = 10;  // the default /proc/sys/fs/mqueue/msg_max
constexpr long kPollMs = 100;      // how soon a stop request is seen while blocked

timespec deadline_in(long ms) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);  // mq_timed* take CLOCK_REALTIME deadlines
  ts.tv_nsec += (ms % 1000) * 1000000L;
  ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
  ts.tv_nsec %= 1000000000L;
  return ts;
}

// The consumer, while it is alive; its status once reaped.
struct Consumer {
  pid_t pid = -1;
  bool reaped = false;
  int status = 0;
};

// 1 sent, 0 stopped, -1 error. A full queue whose consumer died would block
// for ever, so each timeout also checks that the consumer still lives.
int send_message(mqd_t q, const void* data, size_t len, Consumer& consumer) {
  for (;;) {
    if (stop_requested) return 0;
    timespec deadline = deadline_in(kPollMs);
    if (mq_timedsend(q, static_cast<const char*>(data), len, 0, &deadline) == 0) return 1;
    if (errno != ETIMEDOUT && errno != EINTR) {
      std::fprintf(stderr, "ipc-mqueue: mq_send: %s\n", std::strerror(errno));
      return -1;
    }
    if (waitpid(consumer.pid, &consumer.status, WNOHANG) == consumer.pid) {
      consumer.reaped = true;
      std::fprintf(stderr, "ipc-mqueue: the consumer ended before the producer\n");
      return -1;
    }
  }
}

[[noreturn]] void consumer_body(mqd_t q) {
  prctl(PR_SET_NAME, "ipc-mq-consumer", 0, 0, 0);
  mq_attr attr{};
  mq_getattr(q, &attr);
  std::string buf(static_cast<size_t>(attr.mq_msgsize), '\0');
  int64_t sum = 0;
  long received = 0;
  for (;;) {
    if (stop_requested) break;
    timespec deadline = deadline_in(kPollMs);
    ssize_t n = mq_timedreceive(q, buf.data(), buf.size(), nullptr, &deadline);
    if (n < 0) {
      if (errno == ETIMEDOUT || errno == EINTR) continue;
      std::fprintf(stderr, "ipc-mqueue: mq_receive: %s\n", std::strerror(errno));
      _exit(1);
    }
    if (n == 0) break;  // the producer's end marker
    int64_t value = 0;
    if (n != sizeof value) {
      std::fprintf(stderr, "ipc-mqueue: message of %zd bytes, expected %zu\n", n, sizeof value);
      _exit(1);
    }
    std::memcpy(&value, buf.data(), sizeof value);
    sum += value;
    ++received;
  }
  std::printf("consumer received %ld messages, sum %" PRId64 "%s\n", received, sum,
              stop_requested ? " (stopped)" : "");
  std::fflush(stdout);
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "ipc-mqueue";
  long count = 1000;
  long delay_ms = 0;
  std::string name = "/forkwatch-mq-" + std::to_string(getpid());
  for (ArgReader args(argc, argv, kUsage); args.next();) {
    if (args.is("--count")) {
      count = args.number(0, 100000000);
    } else if (args.is("--delay-ms")) {
      delay_ms = args.number(0, 60000);
    } else if (args.is("--name")) {
      name = args.value();
      // mq_overview(7): one leading slash, then up to NAME_MAX characters, no more slashes.
      if (name.size() < 2 || name.size() > 255 || name[0] != '/' ||
          name.find('/', 1) != std::string::npos) {
        usage_error("--name must look like /NAME (one leading slash, no others), got '" + name +
                    "'");
      }
    } else {
      args.unknown();
    }
  }

  // Handlers before the queue exists, so no signal finds it without cleanup.
  // The consumer keeps them: a SIGTERM to the group stops it cleanly too.
  catch_stop_signals();

  mq_attr attr{};
  attr.mq_maxmsg = kMaxMessages;
  attr.mq_msgsize = sizeof(int64_t);
  mqd_t q = mq_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr);
  if (q == static_cast<mqd_t>(-1)) {
    std::fprintf(stderr, "ipc-mqueue: mq_open(%s): %s\n", name.c_str(), std::strerror(errno));
    return 1;
  }
  std::printf("queue %s\n", name.c_str());
  std::fflush(nullptr);

  pid_t child = fork();
  if (child < 0) {
    std::fprintf(stderr, "ipc-mqueue: fork: %s\n", std::strerror(errno));
    mq_close(q);
    mq_unlink(name.c_str());
    return 1;
  }
  if (child == 0) consumer_body(q);  // inherits the open queue descriptor

  Consumer consumer{child};
  int result = 0;
  for (int64_t n = 1; n <= count; ++n) {
    if (delay_ms > 0) {
      timespec delay = from_ms(delay_ms);
      nanosleep(&delay, nullptr);
    }
    int sent = send_message(q, &n, sizeof n, consumer);
    if (sent <= 0) {
      if (sent < 0) result = 1;
      break;
    }
  }
  if (!stop_requested && result == 0 && send_message(q, "", 0, consumer) < 0) result = 1;
  // Not reaped yet, so the pid is still our child's: safe to signal.
  if (!consumer.reaped && (result != 0 || stop_requested)) kill(child, SIGTERM);

  int status = consumer.reaped ? consumer.status : wait_for_child(child);
  mq_close(q);
  mq_unlink(name.c_str());
  if (WIFEXITED(status)) {
    std::printf("consumer %d exited with status %d\n", child, WEXITSTATUS(status));
    if (WEXITSTATUS(status) != 0) result = 1;
  } else if (WIFSIGNALED(status)) {
    std::printf("consumer %d killed by signal %d\n", child, WTERMSIG(status));
    if (!stop_requested) result = 1;
  }
  return result;
}
