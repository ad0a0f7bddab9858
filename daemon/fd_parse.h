// Pure parsers for what procfs says about open descriptors: the link text of
// /proc/PID/fd/N, the text of /proc/PID/fdinfo/N, the socket tables
// /proc/PID/net/{tcp,tcp6,udp,udp6,unix} and /proc/PID/limits. Text in,
// struct out; malformed text gives std::nullopt or skips the line, never a
// crash or a throw. No I/O here (FdReader reads the files); any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace forkwatch {

// CONTRACT.md "What each process holds": the item's "kind".
enum class FdKind { kFile, kSocket, kPipe, kEventfd, kEpoll, kSignalfd, kTimerfd, kMqueue, kAnon, kOther };

const char* fd_kind_name(FdKind k);

// What readlink(/proc/PID/fd/N) tells alone.
struct FdLink {
  FdKind kind = FdKind::kOther;
  uint64_t inode = 0;    // sockets and pipes: the number in "socket:[N]" / "pipe:[N]"; else 0
  bool deleted = false;  // a path the kernel marked " (deleted)" (the mark stays in the target)
};

// Classifies link text. A POSIX message queue reads as a plain path ("/name");
// only its fdinfo (a QSIZE line) tells it, so refine_kind() does that.
FdLink classify_fd_link(std::string_view link);

// The lines of /proc/PID/fdinfo/N we use (proc(5), fs/proc/fd.c and each
// file type's show_fdinfo). Lines we do not know are ignored.
struct FdInfo {
  uint64_t pos = 0;
  uint32_t flags = 0;                 // octal in the file: O_* | O_CLOEXEC as the kernel keeps them
  std::optional<uint64_t> eventfd_count;  // "eventfd-count:" (hex)
  std::vector<int> epoll_targets;     // one "tfd:" line per watched fd, in file order
  std::optional<std::string> sigmask; // signalfd "sigmask:" (hex text, as written)
  bool mqueue = false;                // a "QSIZE:" line: a POSIX message queue
};

// Requires the "pos:" and "flags:" lines every fdinfo has.
std::optional<FdInfo> parse_fdinfo(std::string_view text);

// The kind once fdinfo is known (a path with a QSIZE line is an mqueue).
FdKind refine_kind(FdKind link_kind, const FdInfo& info);

// One socket as its table row describes it; strings as CONTRACT.md names them.
struct SocketEntry {
  std::string family;  // "inet", "inet6", "unix"
  std::string type;    // "stream", "dgram", "seqpacket"
  std::string state;   // lower case: "listen", "established", "time_wait", ... ; udp "unconnected"
  std::string local;   // "HOST:PORT" ("[::1]:80" for inet6); unix: its path, "@name" if abstract, "" if unnamed
  std::string remote;  // as local; unix: "" (the table does not say)
};

// inode -> socket. Several tables fill one map.
using SocketTable = std::unordered_map<uint64_t, SocketEntry>;

enum class NetProto { kTcp, kTcp6, kUdp, kUdp6 };
// Adds the rows of /proc/net/tcp, tcp6, udp or udp6 (header line skipped).
// Rows without an inode (time-wait: no process holds them) go to `unowned`
// when given.
void parse_net_inet(std::string_view text, NetProto proto, SocketTable& out,
                    std::vector<SocketEntry>* unowned = nullptr);
// Adds the rows of /proc/net/unix.
void parse_net_unix(std::string_view text, SocketTable& out);

// The soft "Max open files" of /proc/PID/limits; nullopt when absent or
// "unlimited".
std::optional<uint64_t> parse_limits_nofile(std::string_view text);

// Who holds each pipe or socket inode, for pairing pipe ends and spotting a
// listener that more than one process kept. Pure; fill, then read.
class InodeHolders {
 public:
  void add(pid_t pid, uint64_t inode);
  // The pids other than `self` that hold `inode`, ascending, each once.
  std::vector<pid_t> peers(uint64_t inode, pid_t self) const;

 private:
  std::unordered_map<uint64_t, std::vector<pid_t>> holders_;  // unsorted, may repeat a pid
};

}  // namespace forkwatch
