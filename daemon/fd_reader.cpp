#include "fd_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "dir_entries.h"
#include "fd.h"

namespace forkwatch {
namespace {

// A link is at most PATH_MAX plus the " (deleted)" mark.
constexpr size_t kLinkBuf = 4096 + 64;
// fdinfo is small, but an epoll set lists one line per watched fd.
constexpr size_t kFdinfoMax = 256 * 1024;
// The socket tables grow with the machine; a reply does not need more.
constexpr size_t kNetTableMax = 64 * 1024 * 1024;

std::string pid_path(pid_t pid, const char* tail) { return std::to_string(pid) + tail; }

// Reads a whole file relative to dirfd, up to cap bytes. 0 or -errno.
int read_file_at(int dirfd, const char* path, std::string& out, size_t cap) {
  out.clear();
  Fd fd(::openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return -errno;
  char buf[16384];
  while (out.size() < cap) {
    ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, cap - out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return 0;
}

// Non-negative integer names of an open directory ("0" included). 0 or -errno.
int list_fd_names(int dirfd, std::vector<int>& out) {
  char buf[16384];
  return for_each_dirent(dirfd, buf, sizeof buf, [&](const char* name) {
    const char* end = name + std::strlen(name);
    int v = -1;
    auto [ptr, ec] = std::from_chars(name, end, v);
    if (ec == std::errc() && ptr == end && ptr != name && v >= 0) out.push_back(v);
  });
}

}  // namespace

bool fd_error_gone(const SysError& e) { return e.err == ENOENT || e.err == ESRCH; }

FdReader::FdReader(std::string root) : root_(std::move(root)) {
  struct statfs fs {};
  struct stat st {};
  procfs_sizes_ = ::statfs(root_.c_str(), &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC &&
                  ::stat((root_ + "/self/fd").c_str(), &st) == 0 && st.st_size > 0;
}

Result<std::vector<FdItem>> FdReader::list(pid_t pid, bool with_info) const {
  const std::string base = root_ + "/" + std::to_string(pid);
  Fd dir(::open((base + "/fd").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return sys_error("open(" + base + "/fd)");
  std::vector<int> fds;
  if (int err = list_fd_names(dir.get(), fds); err < 0) {
    errno = -err;
    return sys_error("getdents64(" + base + "/fd)");
  }
  std::sort(fds.begin(), fds.end());
  Fd info_dir;
  if (with_info) info_dir.reset(::open((base + "/fdinfo").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));

  std::vector<FdItem> out;
  out.reserve(fds.size());
  char link[kLinkBuf];
  std::string text;
  for (int fd : fds) {
    char name[16];
    *std::to_chars(name, name + sizeof name - 1, fd).ptr = '\0';
    ssize_t n = ::readlinkat(dir.get(), name, link, sizeof link);
    if (n < 0) continue;  // closed since the listing (or the process ended)
    FdItem item;
    item.fd = fd;
    item.target.assign(link, static_cast<size_t>(n));
    FdLink l = classify_fd_link(item.target);
    item.kind = l.kind;
    item.inode = l.inode;
    item.deleted = l.deleted;
    // fdinfo may describe a different file if the fd was closed and reused
    // between the two reads: its "ino" is not compared, the link stays the truth.
    if (info_dir && read_file_at(info_dir.get(), name, text, kFdinfoMax) == 0) {
      item.info = parse_fdinfo(text);
      if (item.info) item.kind = refine_kind(item.kind, *item.info);
    }
    out.push_back(std::move(item));
  }
  return out;
}

SocketTable FdReader::sockets(pid_t pid, std::vector<SocketEntry>* unowned) const {
  SocketTable table;
  Fd net(::open((root_ + "/" + pid_path(pid, "/net")).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!net) return table;
  std::string text;
  for (auto [file, proto] : {std::pair{"tcp", NetProto::kTcp}, {"tcp6", NetProto::kTcp6},
                             {"udp", NetProto::kUdp}, {"udp6", NetProto::kUdp6}})
    if (read_file_at(net.get(), file, text, kNetTableMax) == 0) parse_net_inet(text, proto, table, unowned);
  if (read_file_at(net.get(), "unix", text, kNetTableMax) == 0) parse_net_unix(text, table);
  return table;
}

int64_t FdReader::count(pid_t pid) const {
  const std::string path = root_ + "/" + pid_path(pid, "/fd");
  if (procfs_sizes_) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return -errno;
    return st.st_size;
  }
  Fd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return -errno;
  std::vector<int> fds;
  if (int err = list_fd_names(dir.get(), fds); err < 0) return err;
  return static_cast<int64_t>(fds.size());
}

std::optional<uint64_t> FdReader::nofile_limit(pid_t pid) const {
  Fd root(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::string text;
  if (!root || read_file_at(root.get(), pid_path(pid, "/limits").c_str(), text, 16384) != 0)
    return std::nullopt;
  return parse_limits_nofile(text);
}

Result<ProcessFds> read_process_fds(const FdReader& reader, pid_t pid, std::span<const pid_t> watched) {
  auto fds = reader.list(pid, true);
  if (!fds) return fds.error();
  ProcessFds out;
  out.pid = pid;
  out.fds = std::move(*fds);

  bool any_socket = false, any_shared = false;
  for (const FdItem& f : out.fds) {
    any_socket |= f.kind == FdKind::kSocket;
    any_shared |= f.inode != 0;
  }
  if (any_socket) {
    SocketTable table = reader.sockets(pid);
    for (FdItem& f : out.fds)
      if (f.kind == FdKind::kSocket)
        if (auto it = table.find(f.inode); it != table.end()) f.socket = it->second;
  }
  if (any_shared) {
    InodeHolders holders;
    for (pid_t other : watched) {
      if (other == pid) continue;
      auto theirs = reader.list(other, false);
      if (!theirs) {
        if (theirs.error().err == EACCES) out.unreadable.push_back(other);
        continue;  // gone meanwhile: it holds nothing now
      }
      for (const FdItem& f : *theirs)
        if (f.inode != 0) holders.add(other, f.inode);
    }
    for (FdItem& f : out.fds)
      if (f.inode != 0) f.peers = holders.peers(f.inode, pid);
  }
  return out;
}

}  // namespace forkwatch
