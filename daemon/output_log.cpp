#include "output_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace forkwatch {

OutputLog::OutputLog(std::string file_path) : path_(std::move(file_path)) {}

void OutputLog::append(Stream stream, std::string_view bytes, int64_t ts_ns) {
  std::lock_guard lock(mu_);
  std::string& partial = partial_[static_cast<int>(stream)];
  stats_.bytes += bytes.size();
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      partial.append(bytes);
      bytes = {};
    } else {
      partial.append(bytes.substr(0, nl));
      bytes.remove_prefix(nl + 1);
      add_line(stream, std::move(partial), ts_ns);
      partial.clear();
    }
    // A line with no end in sight is cut so memory stays bounded.
    while (partial.size() >= kMaxLineBytes) {
      add_line(stream, partial.substr(0, kMaxLineBytes), ts_ns);
      partial.erase(0, kMaxLineBytes);
    }
  }
}

void OutputLog::finish(Stream stream, int64_t ts_ns) {
  std::lock_guard lock(mu_);
  std::string& partial = partial_[static_cast<int>(stream)];
  if (!partial.empty()) add_line(stream, std::move(partial), ts_ns);
  partial.clear();
}

void OutputLog::add_line(Stream stream, std::string text, int64_t ts_ns) {
  ++stats_.lines;
  ring_.push_back(OutputLine{stats_.lines, ts_ns, stream, std::move(text)});
  write_file(ring_.back());
  if (ring_.size() > kRingLines) {
    ring_.pop_front();
    ++stats_.evicted_lines;
  }
}

void OutputLog::write_file(const OutputLine& line) {
  if (path_.empty()) return;
  if (file_bytes_ >= kRotateBytes) {
    file_.reset();
    // worker.log.2 -> .3, .1 -> .2, worker.log -> .1
    for (int i = kBackups - 1; i >= 1; --i)
      std::rename((path_ + "." + std::to_string(i)).c_str(),
                  (path_ + "." + std::to_string(i + 1)).c_str());
    std::rename(path_.c_str(), (path_ + ".1").c_str());
    file_bytes_ = 0;
  }
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
  std::string record = stamp + line.text + "\n";
  ssize_t w = file_ ? ::write(file_.get(), record.data(), record.size()) : -1;
  if (w == static_cast<ssize_t>(record.size())) {
    file_bytes_ += w;
  } else {
    stats_.dropped_bytes += record.size() - (w > 0 ? w : 0);
  }
}

std::vector<OutputLine> OutputLog::tail(size_t n, bool want_stdout, bool want_stderr,
                                        uint64_t after) const {
  std::lock_guard lock(mu_);
  std::vector<OutputLine> out;
  for (auto it = ring_.rbegin(); it != ring_.rend() && out.size() < n && it->seq > after; ++it) {
    bool want = it->stream == Stream::kStdout ? want_stdout : want_stderr;
    if (want) out.push_back(*it);
  }
  return {out.rbegin(), out.rend()};
}

OutputStats OutputLog::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace forkwatch
