// Commands: how API threads ask the loop to change something. A caller posts a
// Command with a deadline and blocks on the future for the reply; the loop
// drains the queue when the eventfd wakes it. A command is carried out only if
// the loop claims it before its deadline and before the caller gave up, so a
// caller that answered "timed out" knows nothing happened. The reply carries
// no HTTP: the API maps codes.
#pragma once

#include <atomic>
#include <climits>
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
// Freeze (pause) or thaw (resume) the worker's whole tree: cgroup.freeze.
struct PauseWorker { int64_t id; bool pause; };
// Ask for a fresh /proc sample (scope all when `all`); replies once it is published.
struct SampleNow { bool all = false; };

using Command = std::variant<StartWorker, StopWorker, RestartWorker, RemoveWorker, SignalWorker, PauseWorker, SampleNow>;

enum class ReplyCode { kOk, kNotFound, kConflict, kInvalid, kLimit, kFailed };

struct CommandReply {
  ReplyCode code = ReplyCode::kOk;
  std::string message;
  std::optional<WorkerView> worker;
};

// Who decides a posted command's fate: the loop (it claims it and acts) or
// the caller (it gives up first). Exactly one of them wins.
class CommandClaim {
 public:
  // Loop thread: true when the command is to be carried out now; false once
  // the caller gave up or `now_ns` is past the deadline (then it never will be).
  bool take(int64_t now_ns);
  // Caller: true when the loop had not taken it, and now never will.
  bool abandon();

  explicit CommandClaim(int64_t deadline_ns) : deadline_ns_(deadline_ns) {}

 private:
  enum : int { kPending, kTaken, kDropped };
  std::atomic<int> state_{kPending};
  const int64_t deadline_ns_;  // CLOCK_MONOTONIC
};

// What post() hands the caller.
struct CommandTicket {
  std::future<CommandReply> reply;  // broken (future_error) when the loop dropped it
  std::shared_ptr<CommandClaim> claim;
};

// Thread-safe queue of commands with an eventfd that wakes the loop.
class CommandQueue {
 public:
  static Result<std::unique_ptr<CommandQueue>> create();

  // Any thread. `deadline_ns` (CLOCK_MONOTONIC): past it the loop drops the
  // command unanswered and without effect.
  CommandTicket post(Command command, int64_t deadline_ns = INT64_MAX);
  // Loop thread: the fd to watch, and the commands queued so far.
  int fd() const { return event_.get(); }
  struct Pending {
    Command command;
    std::promise<CommandReply> reply;
    std::shared_ptr<CommandClaim> claim;
  };
  std::deque<Pending> take();

 private:
  explicit CommandQueue(Fd event) : event_(std::move(event)) {}
  Fd event_;
  std::mutex mu_;
  std::deque<Pending> pending_;  // guarded by mu_
};

}  // namespace forkwatch
