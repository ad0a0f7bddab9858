#include "output_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace forkwatch {

namespace {

size_t ring_cost(const OutputLine& line) {
  return line.text.capacity() + OutputLog::kLineOverheadBytes;
}

}  // namespace

OutputLog::OutputLog(std::string file_path) : path_(std::move(file_path)) {}

void OutputLog::append(Stream stream, std::string_view bytes, int64_t ts_ns) {
  std::lock_guard lock(mu_);
  Partial& partial = partial_[static_cast<int>(stream)];
  stats_.bytes += bytes.size();
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    std::string_view piece = bytes.substr(0, nl);
    bytes.remove_prefix(nl == std::string_view::npos ? bytes.size() : nl + 1);
    // A line is kept up to kMaxLineBytes; the rest of it is counted, not held.
    size_t room = kMaxLineBytes - partial.text.size();
    if (piece.size() > room) {
      partial.text.append(piece.substr(0, room));
      stats_.cut_bytes += piece.size() - room;
      partial.discarding = true;
    } else {
      partial.text.append(piece);
    }
    if (nl != std::string_view::npos) add_line(stream, partial, ts_ns);
  }
}

void OutputLog::finish(Stream stream, int64_t ts_ns) {
  std::lock_guard lock(mu_);
  Partial& partial = partial_[static_cast<int>(stream)];
  if (!partial.text.empty() || partial.discarding) add_line(stream, partial, ts_ns);
}

void OutputLog::add_line(Stream stream, Partial& partial, int64_t ts_ns) {
  ++stats_.lines;
  if (partial.discarding) ++stats_.cut_lines;
  // A copy, so the line holds no more than its text and the partial keeps its buffer.
  ring_.push_back(OutputLine{stats_.lines, ts_ns, stream, partial.text, partial.discarding});
  partial.text.clear();
  partial.discarding = false;
  write_file(ring_.back());
  stats_.ring_bytes += ring_cost(ring_.back());
  ++stats_.ring_lines;
  while (ring_.size() > 1 && (ring_.size() > kRingLines || stats_.ring_bytes > kRingBytes)) {
    stats_.ring_bytes -= ring_cost(ring_.front());
    --stats_.ring_lines;
    ring_.pop_front();
    ++stats_.evicted_lines;
  }
}

void OutputLog::rotate() {
  file_.reset();
  // The oldest backup is deleted by the renames below: what it held is gone.
  struct stat st{};
  const std::string oldest = path_ + "." + std::to_string(kBackups);
  if (::stat(oldest.c_str(), &st) == 0) stats_.rotated_bytes += static_cast<uint64_t>(st.st_size);
  // worker.log.2 -> .3, .1 -> .2, worker.log -> .1
  for (int i = kBackups - 1; i >= 1; --i)
    std::rename((path_ + "." + std::to_string(i)).c_str(), (path_ + "." + std::to_string(i + 1)).c_str());
  std::rename(path_.c_str(), (path_ + ".1").c_str());
  file_bytes_ = 0;
}

void OutputLog::write_file(const OutputLine& line) {
  if (path_.empty()) return;
  if (file_bytes_ >= kRotateBytes) rotate();
  if (!file_) {
    file_ = Fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    struct stat st{};
    if (file_ && fstat(file_.get(), &st) == 0) file_bytes_ = st.st_size;
  }
  // "2026-11-24T10:00:00.123456Z stdout | text"
  char stamp[48];
  time_t secs = static_cast<time_t>(line.ts_ns / 1'000'000'000);
  struct tm tm{};
  gmtime_r(&secs, &tm);
  size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(stamp + n, sizeof stamp - n, ".%06lldZ %s | ",
                static_cast<long long>(line.ts_ns % 1'000'000'000 / 1000),
                line.stream == Stream::kStdout ? "stdout" : "stderr");
  std::string record = stamp + line.text + (line.cut ? " [cut]\n" : "\n");
  ssize_t w = file_ ? ::write(file_.get(), record.data(), record.size()) : -1;
  if (w == static_cast<ssize_t>(record.size())) {
    file_bytes_ += w;
  } else {
    stats_.dropped_bytes += record.size() - (w > 0 ? w : 0);
  }
}

OutputTail OutputLog::tail(size_t n, bool want_stdout, bool want_stderr, uint64_t after,
                           size_t max_bytes) const {
  std::lock_guard lock(mu_);
  OutputTail out;
  size_t bytes = 0;
  for (auto it = ring_.rbegin(); it != ring_.rend() && out.lines.size() < n && it->seq > after; ++it) {
    bool want = it->stream == Stream::kStdout ? want_stdout : want_stderr;
    if (!want) continue;
    if (!out.lines.empty() && bytes + it->text.size() > max_bytes) {
      out.truncated = true;
      break;
    }
    bytes += it->text.size();
    out.lines.push_back(*it);
  }
  std::reverse(out.lines.begin(), out.lines.end());
  return out;
}

OutputStats OutputLog::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace forkwatch
