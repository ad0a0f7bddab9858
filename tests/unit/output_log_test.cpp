#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "output_log.h"
#include "temp_dir.h"

using namespace forkwatch;
using fwtest::TempDir;

namespace {

int64_t file_size(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

}  // namespace

TEST_CASE("the output ring holds at most 1 MiB of 16 KiB lines, not 2000 of them", "[unit]") {
  OutputLog log("");
  const std::string line(16 * 1024 - 1, 'x');
  for (int i = 0; i < 2000; ++i) log.append(Stream::kStdout, line + "\n", i);
  OutputStats st = log.stats();
  CHECK(st.lines == 2000);
  CHECK(st.ring_bytes <= OutputLog::kRingBytes);
  CHECK(st.ring_lines >= 50);  // 1 MiB / (16 KiB + overhead)
  CHECK(st.ring_lines <= 64);
  CHECK(st.evicted_lines == 2000 - st.ring_lines);
  OutputTail all = log.tail(2000, true, true);
  CHECK(all.lines.size() == st.ring_lines);
  CHECK(all.lines.back().seq == 2000);
  CHECK_FALSE(all.truncated);
}

TEST_CASE("short lines are still bounded by the ring's 2000 lines", "[unit]") {
  OutputLog log("");
  for (int i = 0; i < 5000; ++i) log.append(Stream::kStderr, "line " + std::to_string(i) + "\n", i);
  CHECK(log.stats().ring_lines == OutputLog::kRingLines);
  OutputTail t = log.tail(3, true, true);
  REQUIRE(t.lines.size() == 3);
  CHECK(t.lines[2].text == "line 4999");
}

TEST_CASE("a line longer than 16 KiB is cut there, marked and counted, in pieces or at once", "[unit]") {
  TempDir dir;
  OutputLog log(dir.file("w.log"));
  const std::string big(40 * 1024, 'y');
  // In three reads, as a pipe hands it over.
  log.append(Stream::kStdout, big.substr(0, 10000), 1);
  log.append(Stream::kStdout, big.substr(10000, 20000), 1);
  log.append(Stream::kStdout, big.substr(30000) + "\nnext\n", 1);
  OutputStats st = log.stats();
  CHECK(st.lines == 2);
  CHECK(st.cut_lines == 1);
  CHECK(st.cut_bytes == big.size() - OutputLog::kMaxLineBytes);
  OutputTail t = log.tail(10, true, true);
  REQUIRE(t.lines.size() == 2);
  CHECK(t.lines[0].text.size() == OutputLog::kMaxLineBytes);
  CHECK(t.lines[0].cut);
  CHECK(t.lines[1].text == "next");
  CHECK_FALSE(t.lines[1].cut);
  // A partial line at the pipe's end is cut the same way.
  log.append(Stream::kStderr, big, 2);
  log.finish(Stream::kStderr, 2);
  CHECK(log.stats().cut_lines == 2);
  CHECK(log.tail(1, false, true).lines.at(0).text.size() == OutputLog::kMaxLineBytes);
}

TEST_CASE("a tail is cut to its byte budget, newest lines kept, and says so", "[unit]") {
  OutputLog log("");
  for (int i = 0; i < 100; ++i) log.append(Stream::kStdout, std::string(1000, 'a' + i % 26) + "\n", i);
  OutputTail t = log.tail(100, true, true, 0, 10'500);
  CHECK(t.truncated);
  REQUIRE(t.lines.size() == 10);
  CHECK(t.lines.back().seq == 100);
  CHECK(t.lines.front().seq == 91);
  // The newest line is given even if it alone is over the budget.
  OutputTail one = log.tail(100, true, true, 0, 10);
  CHECK(one.lines.size() == 1);
  CHECK(one.truncated);
  CHECK_FALSE(log.tail(5, true, true, 0, 10'500).truncated);
}

TEST_CASE("output deleted by log rotation is counted in bytes", "[unit]") {
  TempDir dir;
  const std::string path = dir.file("w.log");
  OutputLog log(path);
  const std::string line(8191, 'r');
  // Enough for the live file and three backups, then two more rotations.
  const int64_t per_file = OutputLog::kRotateBytes;
  int64_t written = 0;
  int64_t deleted_expect = 0;
  while (written < per_file * (OutputLog::kBackups + 3)) {
    int64_t oldest = file_size(path + "." + std::to_string(OutputLog::kBackups));
    int64_t live = file_size(path);
    log.append(Stream::kStdout, line + "\n", 1'700'000'000'000'000'000);
    // A rotation happened on this line if the live file shrank.
    if (live >= per_file && file_size(path) < live && oldest > 0) deleted_expect += oldest;
    written += static_cast<int64_t>(line.size());
  }
  OutputStats st = log.stats();
  CHECK(st.dropped_bytes == 0);
  CHECK(deleted_expect > 0);
  CHECK(st.rotated_bytes == static_cast<uint64_t>(deleted_expect));
}
