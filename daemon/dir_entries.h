// Reads a directory with getdents64 into a caller's buffer, without the
// allocation readdir() does per stream: for procfs listings on hot paths
// (ProcReader's pids and threads, FdReader's descriptors). Any thread.
#pragma once

#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace forkwatch {

// Calls on_name(const char* name) for every entry of the open directory
// (".", ".." included). Returns 0, or -errno of the failed getdents64.
template <typename F>
int for_each_dirent(int dirfd, char* buf, size_t cap, F on_name) {
  while (true) {
    ssize_t n = ::getdents64(dirfd, buf, cap);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return 0;
    for (ssize_t off = 0; off < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + off);
      off += d->d_reclen;
      on_name(static_cast<const char*>(d->d_name));
    }
  }
}

}  // namespace forkwatch
