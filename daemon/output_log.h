// OutputLog: a worker's captured stdout and stderr. The loop thread appends
// lines; API threads read the tail. It is the one piece of worker state shared
// across threads, so it guards itself with a mutex. Lines go to a ring in
// memory bounded in lines and in bytes, and to a size-rotated file in the
// state dir; what cannot be kept (cut from a long line, rotated out of the
// last backup, refused by the disk) is counted, never silently lost.
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
  std::string text;  // without the newline; at most OutputLog::kMaxLineBytes
  bool cut = false;  // the line was longer; the rest was discarded
};

struct OutputStats {
  uint64_t lines = 0;
  uint64_t bytes = 0;
  uint64_t evicted_lines = 0;   // pushed out of the memory ring (still in the file)
  uint64_t dropped_bytes = 0;   // could not be written to the file
  uint64_t cut_lines = 0;       // lines longer than kMaxLineBytes, kept cut
  uint64_t cut_bytes = 0;       // what was discarded of them (neither ring nor file)
  uint64_t rotated_bytes = 0;   // in the oldest backup when rotation deleted it
  uint64_t ring_lines = 0;      // held in memory now
  uint64_t ring_bytes = 0;      // held in memory now, as accounted against kRingBytes
};

// The last lines of a worker's output, as one reply holds them.
struct OutputTail {
  std::vector<OutputLine> lines;  // oldest first
  bool truncated = false;         // older matching lines were left out to stay within max_bytes
};

class OutputLog {
 public:
  static constexpr size_t kRingLines = 2000;
  // Memory per worker: 20 workers printing 16 KiB lines once held 31 MiB
  // each under a bound in lines alone (issue 20).
  static constexpr size_t kRingBytes = 1 << 20;
  static constexpr size_t kMaxLineBytes = 16 * 1024;  // longer lines are cut there
  // What one line costs beyond its text: the deque slot and the string header.
  static constexpr size_t kLineOverheadBytes = sizeof(OutputLine);
  static constexpr int64_t kRotateBytes = 4 << 20;
  static constexpr int kBackups = 3;

  // `file_path` empty: memory only.
  explicit OutputLog(std::string file_path);

  // Loop thread: the bytes read from a pipe. Completes lines per stream.
  void append(Stream stream, std::string_view bytes, int64_t ts_ns);
  // Loop thread: the pipe closed; a partial last line is kept as a line.
  void finish(Stream stream, int64_t ts_ns);

  // Any thread: the last `n` lines of one or both streams with seq > `after`
  // (0: all), oldest first, whose texts add up to at most `max_bytes` (the
  // newest line is always given, cut lines are at most kMaxLineBytes).
  OutputTail tail(size_t n, bool want_stdout, bool want_stderr, uint64_t after = 0,
                  size_t max_bytes = SIZE_MAX) const;
  OutputStats stats() const;
  const std::string& file_path() const { return path_; }

 private:
  struct Partial {
    std::string text;        // an unfinished line
    bool discarding = false;  // past kMaxLineBytes: the rest of the line is dropped
  };
  void add_line(Stream stream, Partial& partial, int64_t ts_ns);  // mu_ held
  void write_file(const OutputLine& line);                         // mu_ held
  void rotate();                                                    // mu_ held

  const std::string path_;
  mutable std::mutex mu_;
  std::deque<OutputLine> ring_;  // guarded by mu_
  Partial partial_[2];           // guarded by mu_; per stream
  OutputStats stats_;            // guarded by mu_
  Fd file_;                      // guarded by mu_; opened lazily, O_APPEND
  int64_t file_bytes_ = 0;       // guarded by mu_
};

}  // namespace forkwatch
