// Pure parsers for the text of procfs files: /proc/PID/stat (and the same
// format in task/TID/stat), status, statm, cmdline and task/TID/comm. Text in,
// struct out; malformed text gives std::nullopt, never a crash or a throw.
// No I/O here (ProcReader reads the files); safe from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace forkwatch {

// PF_KTHREAD from include/linux/sched.h: the flags bit that marks a kernel thread.
inline constexpr uint64_t kPfKthread = 0x00200000;

// The fields of /proc/PID/stat we use, numbered as in proc(5). The same format
// describes one thread in /proc/PID/task/TID/stat (times then are the thread's own).
struct ProcStat {
  pid_t pid = 0;             // (1)
  std::string comm;          // (2) without the parentheses; may hold spaces, '(' and ')'
  char state = '?';          // (3) R S D Z T t X I ... (fs/proc/array.c task_state_array)
  pid_t ppid = 0;            // (4) 0 for pid 1 and kthreadd
  pid_t pgrp = 0;            // (5)
  pid_t session = 0;         // (6)
  uint64_t flags = 0;        // (9) PF_* bits
  uint64_t utime = 0;        // (14) clock ticks in user mode
  uint64_t stime = 0;        // (15) clock ticks in kernel mode
  int64_t num_threads = 0;   // (20)
  uint64_t starttime = 0;    // (22) clock ticks after boot; with pid, names a process uniquely
  uint64_t vsize = 0;        // (23) bytes
  int64_t rss_pages = 0;     // (24) resident pages

  bool kernel_thread() const { return (flags & kPfKthread) != 0; }
};

// Parses from the last ')' so that any comm is handled, even "a) (b" or ")".
std::optional<ProcStat> parse_proc_stat(std::string_view text);

// The fields of /proc/PID/status we use. Absent optional lines (VmRSS for a
// kernel thread or zombie) stay unset.
struct ProcStatus {
  std::string name;          // "Name:", unescaped ("\n" and "\\" as the kernel escapes them)
  char state = '?';          // first letter of "State:"
  pid_t tgid = 0;
  pid_t pid = 0;
  pid_t ppid = 0;
  int64_t threads = 0;
  uid_t uid_real = 0;
  uid_t uid_effective = 0;
  gid_t gid_real = 0;
  gid_t gid_effective = 0;      // what the kernel checks access with, as the API shows it
  std::optional<uint64_t> vm_rss_kb;
};

// Requires Name, Pid, PPid and Tgid; any present field we read must be well formed.
std::optional<ProcStatus> parse_proc_status(std::string_view text);

// /proc/PID/statm: seven counts in pages (proc(5)).
struct ProcStatm {
  uint64_t size = 0;
  uint64_t resident = 0;
  uint64_t shared = 0;
  uint64_t text = 0;
  uint64_t lib = 0;  // always 0 since Linux 2.6
  uint64_t data = 0;
  uint64_t dt = 0;   // always 0 since Linux 2.6
};

std::optional<ProcStatm> parse_proc_statm(std::string_view text);

// NUL-separated arguments. The trailing NUL is optional (a process that
// rewrote its argv may have none); empty text (kernel thread, zombie) gives an
// empty vector. Empty arguments in the middle are kept.
std::vector<std::string> parse_cmdline(std::string_view text);

// task/TID/comm: the thread's name followed by one '\n'. nullopt without the
// newline (a truncated or foreign file). The name itself may be empty.
std::optional<std::string> parse_comm(std::string_view text);

// Joins arguments with single spaces, as the contract's "cmdline" string.
std::string join_cmdline(const std::vector<std::string>& args);

}  // namespace forkwatch
