// StateLock: one daemon per state dir. An exclusive flock on
// <state-dir>/forkwatchd.lock, held (by its open fd) for the daemon's life;
// the kernel drops it when the daemon dies, however it dies, so a crash never
// leaves a stale lock. The file holds the owner's pid, for the refusal line.
// main() takes it before it opens the store or starts anything.
#pragma once

#include <string>

#include "fd.h"
#include "sys_error.h"

namespace forkwatch {

class StateLock {
 public:
  // Fails with "state dir D is in use by forkwatchd pid P (lock D/forkwatchd.lock)"
  // when another process holds it, or with the failing call otherwise.
  static Result<StateLock> acquire(const std::string& state_dir);

 private:
  explicit StateLock(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;  // open for the daemon's life; close-on-exec, so no worker holds it
};

}  // namespace forkwatch
