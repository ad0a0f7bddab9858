#include "state_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace forkwatch {

Result<StateLock> StateLock::acquire(const std::string& state_dir) {
  const std::string path = state_dir + "/forkwatchd.lock";
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return sys_error("open(" + path + ")");
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return sys_error("flock(" + path + ")");
    char buf[32] = {};
    ssize_t n = pread(fd.get(), buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return plain_error("state dir " + state_dir + " is in use by forkwatchd pid " +
                       (pid.empty() ? "unknown" : pid) + " (lock " + path + ")");
  }
  // Ours: say who holds it. Written after the lock, so a reader that lost the
  // race reads the winner's pid (or an empty file for an instant).
  const std::string line = std::to_string(getpid()) + "\n";
  if (ftruncate(fd.get(), 0) != 0 || pwrite(fd.get(), line.data(), line.size(), 0) != static_cast<ssize_t>(line.size()))
    return sys_error("write(" + path + ")");
  return StateLock(std::move(fd));
}

}  // namespace forkwatch
