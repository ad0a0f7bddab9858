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

std::future<CommandReply> CommandQueue::post(Command command) {
  std::promise<CommandReply> promise;
  auto future = promise.get_future();
  {
    std::lock_guard lock(mu_);
    pending_.push_back(Pending{std::move(command), std::move(promise)});
  }
  uint64_t one = 1;
  ssize_t n = ::write(event_.get(), &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: the loop will wake
  return future;
}

std::deque<CommandQueue::Pending> CommandQueue::take() {
  uint64_t count;
  ssize_t n = ::read(event_.get(), &count, sizeof count);
  (void)n;
  std::lock_guard lock(mu_);
  return std::exchange(pending_, {});
}

}  // namespace forkwatch
