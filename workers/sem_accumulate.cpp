// sem-accumulate: two threads hand numbers over through a one-slot mailbox
// guarded by two semaphores.
//
// `empty` counts free slots (starts at 1), `full` counts filled ones (starts
// at 0). The reader waits on empty, puts a number in the slot, posts full; the
// adder waits on full, takes the number, posts empty. So each number is added
// exactly once and the reader can never overwrite one the adder has not taken:
// the classic producer/consumer hand-over with no mutex and no busy waiting.
// The end of input travels through the same slot, as a flag beside the number.
//
// Numbers come from stdin (whitespace separated integers) or, with
// --numbers N, the reader produces 1..N itself. Prints 'sum S count C'.

#include <poll.h>
#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <thread>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: sem-accumulate [--numbers N] [--delay-ms T]\n"
    "\n"
    "A reader thread hands integers to an adder thread through one slot and two\n"
    "semaphores; prints 'sum S count C' at the end of input.\n"
    "  --numbers N   produce 1..N instead of reading integers from stdin\n"
    "  --delay-ms T  the reader pauses T ms before each number (to watch it run)\n"
    "  --help        show this text\n"
    "SIGTERM or SIGINT prints the sum so far and exits 0. Bad input: exit 1.\n";

// The one-slot mailbox between the two threads.
struct Mailbox {
  sem_t empty;                  // 1 while the slot may be written
  sem_t full;                   // 1 while the slot holds something for the adder
  int64_t value = 0;            // written by the reader between wait(empty) and post(full)
  bool end = false;             // likewise; true for the last hand-over, which carries no number
  const char* error = nullptr;  // set with end when the input was bad

  Mailbox() {
    sem_init(&empty, 0, 1);
    sem_init(&full, 0, 0);
  }
  ~Mailbox() {
    sem_destroy(&empty);
    sem_destroy(&full);
  }
};

void wait(sem_t* sem) {
  while (sem_wait(sem) != 0 && errno == EINTR) {
  }
}

void hand_over(Mailbox& box, int64_t value, bool end, const char* error = nullptr) {
  wait(&box.empty);
  box.value = value;
  box.end = end;
  box.error = error;
  sem_post(&box.full);
}

void pause_ms(long ms) {
  if (ms <= 0) return;
  timespec delay = from_ms(ms);
  while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
  }
}

void read_numbers(Mailbox& box, std::optional<long long> generate, long delay_ms) {
  if (generate) {
    for (long long i = 1; i <= *generate; ++i) {
      pause_ms(delay_ms);
      hand_over(box, i, false);
    }
    return hand_over(box, 0, true);
  }
  for (;;) {
    long long value = 0;
    int got = std::scanf("%lld", &value);
    if (got == EOF) return hand_over(box, 0, true);
    if (got != 1) return hand_over(box, 0, true, "stdin holds something that is not an integer");
    pause_ms(delay_ms);
    hand_over(box, value, false);
  }
}

struct Totals {
  std::atomic<int64_t> sum{0};
  std::atomic<uint64_t> count{0};
  const char* error = nullptr;  // written by the adder before it signals done
};

void add_numbers(Mailbox& box, Totals& totals, int done_fd) {
  for (;;) {
    wait(&box.full);
    int64_t value = box.value;
    bool end = box.end;
    const char* error = box.error;
    sem_post(&box.empty);
    if (end) {
      if (totals.error == nullptr) totals.error = error;
      break;
    }
    if (totals.error != nullptr) continue;  // keep draining so the reader never blocks
    int64_t next = 0;
    if (__builtin_add_overflow(totals.sum.load(), value, &next)) {
      totals.error = "the sum overflows 64 bits";
      continue;
    }
    totals.sum = next;
    ++totals.count;
  }
  uint64_t one = 1;
  (void)!write(done_fd, &one, sizeof one);
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "sem-accumulate";
  std::optional<long long> generate;
  long delay_ms = 0;
  for (ArgReader args(argc, argv, kUsage); args.next();) {
    if (args.is("--numbers")) {
      generate = args.number(0, 1000000000LL);
    } else if (args.is("--delay-ms")) {
      delay_ms = args.number(0, 60000);
    } else {
      args.unknown();
    }
  }

  sigset_t stop_signals = block_stop_signals();  // before the threads start
  int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  int done_fd = eventfd(0, EFD_CLOEXEC);
  if (signal_fd < 0 || done_fd < 0) {
    std::fprintf(stderr, "sem-accumulate: signalfd/eventfd: %s\n", std::strerror(errno));
    return 1;
  }

  // Both live until exit: on SIGTERM the reader may still be blocked in a
  // read of stdin, and the process ends around it.
  static Mailbox box;
  static Totals totals;
  std::thread reader(read_numbers, std::ref(box), generate, delay_ms);
  std::thread adder(add_numbers, std::ref(box), std::ref(totals), done_fd);

  pollfd fds[2] = {{done_fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
  while (poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  if (!(fds[0].revents & POLLIN)) {
    // Stopped early: report what was added and end without joining the
    // reader, which may be blocked on stdin for ever.
    std::printf("sum %" PRId64 " count %" PRIu64 " (stopped)\n", totals.sum.load(),
                totals.count.load());
    std::fflush(stdout);
    _exit(0);
  }
  reader.join();
  adder.join();
  if (totals.error != nullptr) {
    std::fprintf(stderr, "sem-accumulate: %s (after %" PRIu64 " numbers)\n", totals.error,
                 totals.count.load());
    return 1;
  }
  std::printf("sum %" PRId64 " count %" PRIu64 "\n", totals.sum.load(), totals.count.load());
  return 0;
}
