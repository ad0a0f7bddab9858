// FdReader: what a process holds, read from a procfs root ("/proc"; tests
// point it at tests/fixtures/proc). Only readlink and fdinfo: a descriptor's
// target is never opened, so a FIFO or a device cannot block the reader. A
// process or descriptor that vanishes mid-read is a normal case: a vanished
// descriptor is left out, a vanished process is a "gone" error.
//
// Stateless after construction: any thread may call it (API threads list
// one process on request; the loop's sampler counts).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fd_parse.h"
#include "sys_error.h"

namespace forkwatch {

// One open descriptor, as GET /api/processes/{pid}/fds shows it.
struct FdItem {
  int fd = -1;
  FdKind kind = FdKind::kOther;
  std::string target;                 // the link text, as the kernel wrote it
  uint64_t inode = 0;                 // sockets and pipes
  bool deleted = false;
  std::optional<FdInfo> info;         // unset when fdinfo was not read or the fd closed meanwhile
  std::optional<SocketEntry> socket;  // a socket found in its namespace's tables
  std::vector<pid_t> peers;           // other watched pids holding the same inode
};

struct ProcessFds {
  pid_t pid = 0;
  std::vector<FdItem> fds;            // by fd
  std::vector<pid_t> unreadable;      // peers we were not allowed to read (EACCES)
};

class FdReader {
 public:
  explicit FdReader(std::string root = "/proc");

  // Every descriptor of `pid` by fd, with fdinfo when `with_info`. Errors:
  // err ENOENT or ESRCH (gone), EACCES (not ours to read), others.
  Result<std::vector<FdItem>> list(pid_t pid, bool with_info) const;
  // The socket tables of pid's network namespace; a missing table is skipped.
  SocketTable sockets(pid_t pid, std::vector<SocketEntry>* unowned = nullptr) const;
  // How many descriptors `pid` has open: one stat of PID/fd on procfs (its
  // size is the count since Linux 6.2), else a directory listing. -errno on failure.
  int64_t count(pid_t pid) const;
  // The soft RLIMIT_NOFILE from PID/limits; nullopt if unreadable or unlimited.
  std::optional<uint64_t> nofile_limit(pid_t pid) const;

  const std::string& root() const { return root_; }

 private:
  std::string root_;
  bool procfs_sizes_ = false;  // root is a procfs whose fd directories report their count as size
};

bool fd_error_gone(const SysError& e);

// `pid`'s descriptors with fdinfo and sockets joined; peers among `watched`
// (the other pids whose pipe and socket inodes are compared; pid itself is
// skipped there). A watched pid that vanished is skipped; one we may not read
// is listed in `unreadable`.
Result<ProcessFds> read_process_fds(const FdReader& reader, pid_t pid, std::span<const pid_t> watched);

}  // namespace forkwatch
