// Commands: how API threads ask the loop to change something. A caller posts a
// Command and blocks on the future for the reply; the loop drains the queue
// when the eventfd wakes it. The reply carries no HTTP: the API maps codes.
#pragma once

#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "fd.h"
#include "program_spec.h"
#include "snapshot.h"
#include "sys_error.h"

namespace forkwatch {

struct StartWorker {
  ProgramSpec spec;     // command already includes the request's args
  std::string program;  // the catalogue name, or "" for an arbitrary command
  bool persistent = false;
};
struct StopWorker { int64_t id; };
struct RestartWorker { int64_t id; };
struct RemoveWorker { int64_t id; };
struct SignalWorker { int64_t id; int signal; };
// Ask for a fresh /proc sample (scope all when `all`); replies once it is published.
struct SampleNow { bool all = false; };

using Command = std::variant<StartWorker, StopWorker, RestartWorker, RemoveWorker, SignalWorker, SampleNow>;

enum class ReplyCode { kOk, kNotFound, kConflict, kInvalid, kLimit, kFailed };

struct CommandReply {
  ReplyCode code = ReplyCode::kOk;
  std::string message;
  std::optional<WorkerView> worker;
};

// Thread-safe queue of commands with an eventfd that wakes the loop.
class CommandQueue {
 public:
  static Result<std::unique_ptr<CommandQueue>> create();

  // Any thread.
  std::future<CommandReply> post(Command command);
  // Loop thread: the fd to watch, and the commands queued so far.
  int fd() const { return event_.get(); }
  struct Pending {
    Command command;
    std::promise<CommandReply> reply;
  };
  std::deque<Pending> take();

 private:
  explicit CommandQueue(Fd event) : event_(std::move(event)) {}
  Fd event_;
  std::mutex mu_;
  std::deque<Pending> pending_;  // guarded by mu_
};

}  // namespace forkwatch
