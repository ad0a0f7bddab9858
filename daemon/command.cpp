#include "command.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace forkwatch {

const WorkerView* Snapshot::find(int64_t id) const {
  for (const auto& w : workers)
    if (w.id == id) return &w;
  return nullptr;
}

Result<std::unique_ptr<CommandQueue>> CommandQueue::create() {
  Fd fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return sys_error("eventfd");
  return std::unique_ptr<CommandQueue>(new CommandQueue(std::move(fd)));
}

bool CommandClaim::take(int64_t now_ns) {
  int expected = kPending;
  const int to = now_ns <= deadline_ns_ ? kTaken : kDropped;
  return state_.compare_exchange_strong(expected, to) && to == kTaken;
}

bool CommandClaim::abandon() {
  int expected = kPending;
  return state_.compare_exchange_strong(expected, kDropped) || expected == kDropped;
}

CommandTicket CommandQueue::post(Command command, int64_t deadline_ns) {
  std::promise<CommandReply> promise;
  CommandTicket ticket{promise.get_future(), std::make_shared<CommandClaim>(deadline_ns)};
  {
    std::lock_guard lock(mu_);
    pending_.push_back(Pending{std::move(command), std::move(promise), ticket.claim});
  }
  uint64_t one = 1;
  ssize_t n = ::write(event_.get(), &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: the loop will wake
  return ticket;
}

std::deque<CommandQueue::Pending> CommandQueue::take() {
  uint64_t count;
  ssize_t n = ::read(event_.get(), &count, sizeof count);
  (void)n;
  std::lock_guard lock(mu_);
  return std::exchange(pending_, {});
}

}  // namespace forkwatch
