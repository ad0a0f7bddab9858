// ProcConnector: the kernel's process events (fork, exec, exit, comm, setsid,
// ptrace, coredump) from a netlink proc-connector socket, as one more fd in the
// loop. Parsing is pure (bytes in, ProcEvents out) and unit-tested on crafted
// datagrams; the socket itself needs CAP_NET_ADMIN in the initial PID and
// network namespaces (FIELD-NOTES.md). Loss is never silent: SeqTracker finds
// every gap in the kernel's per-CPU sequence numbers, and a receive-buffer
// overrun (ENOBUFS) is reported so the caller can re-read /proc.
// Owned and called by the loop thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "fd.h"
#include "sys_error.h"

namespace forkwatch {

enum class ProcOp { kAck, kFork, kExec, kExit, kComm, kSid, kPtrace, kCoredump, kUid, kGid, kOther };

// One event as the kernel sent it (linux/cn_proc.h). pid is the task (thread
// id), tgid its process; for a fork, pid/tgid are the child's.
struct ProcEvent {
  ProcOp op = ProcOp::kOther;
  uint32_t cpu = 0;
  uint32_t seq = 0;           // cn_msg.seq: per CPU, +1 for each event the kernel sent
  int64_t mono_ns = 0;        // the kernel's ktime_get_ns(): CLOCK_MONOTONIC
  pid_t pid = 0, tgid = 0;
  pid_t parent_pid = 0, parent_tgid = 0;  // fork: the parent; exit/coredump: the parent at that moment
  int exit_code = 0;          // exit: the raw wait status (task->exit_code)
  int exit_signal = 0;        // exit: the signal the parent gets (SIGCHLD, or 0 for a thread)
  pid_t tracer_tgid = 0;      // ptrace: 0 on detach
  std::string comm;           // comm: the new name (at most 15 bytes)
  uint32_t ack_err = 0;       // ack: the subscription's errno (0: listening)

  // A fork that made a thread (CLONE_THREAD), or the exit of a thread that is
  // not the process's leader.
  bool is_thread() const { return pid != tgid; }
};

// What one datagram held: its events in order, and how many netlink messages
// in it were not proc events or did not parse (truncated, garbage).
struct ParsedDatagram {
  std::vector<ProcEvent> events;
  size_t malformed = 0;
};

// Pure: parses every netlink message in `bytes` (a recv() result).
ParsedDatagram parse_proc_datagram(std::span<const uint8_t> bytes);

// Builds the datagram the kernel would send for `e` (tests and benchmarks).
std::vector<uint8_t> encode_proc_event(const ProcEvent& e);

// Gaps in the per-CPU sequence numbers: each CPU's events are numbered
// consecutively by the kernel for every listener, so a jump is lost events.
// The first event seen on a CPU starts its count.
class SeqTracker {
 public:
  // How many events of e.cpu were lost before e (0 when none). Acks carry the
  // subscription's own numbering and are not counted.
  uint64_t observe(const ProcEvent& e);
  uint64_t lost() const { return lost_; }

 private:
  std::vector<int64_t> next_;  // by CPU: the seq expected next, -1 before the first
  uint64_t lost_ = 0;
};

class ProcConnector {
 public:
  // Opens, binds and subscribes (PROC_CN_MCAST_LISTEN); fails with the reason
  // when the kernel refuses (EPERM without CAP_NET_ADMIN, ECONNREFUSED or
  // EPROTONOSUPPORT without the connector). rcvbuf_bytes > 0 sets the receive
  // buffer (SO_RCVBUFFORCE as root, else SO_RCVBUF).
  static Result<ProcConnector> open(int rcvbuf_bytes = 0);

  int fd() const { return fd_.get(); }

  struct Drain {
    size_t datagrams = 0;
    size_t malformed = 0;
    bool overrun = false;  // ENOBUFS: the kernel dropped events; re-read /proc
  };
  // Reads every datagram that is waiting (non-blocking), handing each parsed
  // event to `on_event`, at most max_datagrams so one round cannot starve
  // the loop (the fd stays readable; epoll brings us back).
  Drain drain(const std::function<void(const ProcEvent&)>& on_event, size_t max_datagrams = 4096);

  // Doubles the receive buffer up to max_bytes; returns the new size (the
  // kernel's figure, which counts its bookkeeping twice).
  int enlarge(int max_bytes);
  int rcvbuf() const;

 private:
  explicit ProcConnector(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

std::string_view proc_op_name(ProcOp op);

}  // namespace forkwatch
