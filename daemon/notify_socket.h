// NotifySocket: one worker's sd_notify(3) socket. An abstract AF_UNIX
// datagram socket ("@forkwatch/<daemon pid>/<worker id>/<nonce>", so no file
// to clean up and no directory a worker running as another user cannot
// reach), with SO_PASSCRED so each datagram carries its sender's pid. The
// worker gets it as NOTIFY_SOCKET. Owned by the supervisor's Worker, read on
// the loop thread only, never blocking: drain() reads a bounded number of
// datagrams per call, so a flooding worker cannot starve the loop.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "fd.h"
#include "proc_parse.h"
#include "sys_error.h"

namespace forkwatch {

class NotifySocket {
 public:
  // At most this many datagrams per drain(): the loop is back in epoll_wait
  // between batches, where every other fd is seen.
  static constexpr size_t kMaxPerDrain = 64;

  static Result<NotifySocket> open(int64_t worker_id);

  int fd() const { return fd_.get(); }
  // The NOTIFY_SOCKET value: "@forkwatch/…".
  const std::string& address() const { return address_; }

  struct Datagram {
    std::string_view text;  // valid during the callback only
    pid_t sender = 0;       // from SCM_CREDENTIALS; 0 if the kernel could not tell
  };
  struct DrainCounts {
    size_t read = 0;
    size_t oversized = 0;  // longer than kMaxNotifyDatagram: refused whole
  };
  // Reads up to kMaxPerDrain datagrams now (non-blocking).
  DrainCounts drain(const std::function<void(const Datagram&)>& on);

 private:
  Fd fd_;
  std::string address_;
};

// Whether `sender` belongs to the worker whose main process is `main_pid`:
// the main process itself, a descendant (its parent chain reaches main_pid),
// or a member of the group main_pid leads (an orphan re-parented to the
// daemon keeps its group). `stat_of` reads /proc/PID/stat (tests pass a map).
bool sender_in_tree(pid_t sender, pid_t main_pid,
                    const std::function<std::optional<ProcStat>(pid_t)>& stat_of);
// stat_of for the live system.
std::optional<ProcStat> read_proc_stat(pid_t pid);

}  // namespace forkwatch
