// OutputLog: a worker's captured stdout and stderr. The loop thread appends
// lines; API threads read the tail. It is the one piece of worker state shared
// across threads, so it guards itself with a mutex. Lines go to a bounded
// ring in memory and to a size-rotated file in the state dir; what cannot be
// kept is counted, never silently lost.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "fd.h"

namespace forkwatch {

enum class Stream { kStdout, kStderr };

struct OutputLine {
  uint64_t seq;  // 1 for the first line a worker ever wrote; for `logs -f`
  int64_t ts_ns;
  Stream stream;
  std::string text;  // without the newline
};

struct OutputStats {
  uint64_t lines = 0;
  uint64_t bytes = 0;
  uint64_t evicted_lines = 0;   // pushed out of the memory ring (still in the file)
  uint64_t dropped_bytes = 0;   // could not be written to the file
};

class OutputLog {
 public:
  static constexpr size_t kRingLines = 2000;
  static constexpr size_t kMaxLineBytes = 16 * 1024;  // longer lines are split
  static constexpr int64_t kRotateBytes = 4 << 20;
  static constexpr int kBackups = 3;

  // `file_path` empty: memory only.
  explicit OutputLog(std::string file_path);

  // Loop thread: the bytes read from a pipe. Completes lines per stream.
  void append(Stream stream, std::string_view bytes, int64_t ts_ns);
  // Loop thread: the pipe closed; a partial last line is kept as a line.
  void finish(Stream stream, int64_t ts_ns);

  // Any thread: the last `n` lines of one or both streams, oldest first.
  // Only lines with seq > `after` (0: all).
  std::vector<OutputLine> tail(size_t n, bool want_stdout, bool want_stderr, uint64_t after = 0) const;
  OutputStats stats() const;
  const std::string& file_path() const { return path_; }

 private:
  void add_line(Stream stream, std::string text, int64_t ts_ns);  // mu_ held
  void write_file(const OutputLine& line);                         // mu_ held

  const std::string path_;
  mutable std::mutex mu_;
  std::deque<OutputLine> ring_;  // guarded by mu_
  std::string partial_[2];       // guarded by mu_; an unfinished line per stream
  OutputStats stats_;            // guarded by mu_
  Fd file_;                      // guarded by mu_; opened lazily, O_APPEND
  int64_t file_bytes_ = 0;       // guarded by mu_
};

}  // namespace forkwatch
