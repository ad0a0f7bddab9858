// ProcessTree: one immutable sample of processes plus the parent/child links
// between them, and its JSON forms for GET /api/tree and GET /api/processes/{pid}.
// Pure: built from a flat list, no I/O. Built once per sample by the sampler;
// afterwards read-only, so any number of threads may read it (share it as a
// shared_ptr<const ProcessTree> in the snapshot).
//
// A link child -> parent is trusted only when the parent is in the sample and
// did not start after the child (a pid reuse can fake a parent); cycles left
// over (equal start times) are broken, so every walk terminates.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "proc_reader.h"

namespace forkwatch {

enum class TreeScope {
  kSupervised,  // a given root (the daemon) and all its descendants
  kAll,         // every process; roots are those without a trusted parent (pid 1, pid 2, orphans)
};

// Marks a process as the main process of a worker; the caller supplies pid -> tag.
struct WorkerTag {
  int64_t id = 0;
  std::string name;
};
using WorkerTags = std::unordered_map<pid_t, WorkerTag>;

// For each entry of `procs`, the index of its trusted parent, or -1 for a root.
// The result has no cycles. Pure; used by ProcessTree and ProcReader.
std::vector<int32_t> parent_links(std::span<const ProcessInfo> procs);

// Indices of `root` and every descendant, parents before children (breadth
// first); empty if `root` is not in `procs`. `parents` is parent_links(procs).
std::vector<uint32_t> subtree_indices(std::span<const ProcessInfo> procs,
                                      std::span<const int32_t> parents, pid_t root);

// The descendants of `pid` in this sample (not `pid` itself), parents before
// children. For the supervisor at stop time: what is left below a worker.
std::vector<pid_t> descendants_of(std::span<const ProcessInfo> procs, pid_t pid);

class ProcessTree {
 public:
  // Sorts by pid (a ProcReader sample already is); a duplicate pid keeps its first entry.
  explicit ProcessTree(std::vector<ProcessInfo> processes, int64_t monotonic_ns = 0);

  const std::vector<ProcessInfo>& processes() const { return procs_; }
  int64_t monotonic_ns() const { return monotonic_ns_; }
  size_t size() const { return procs_.size(); }

  std::optional<uint32_t> index_of(pid_t pid) const;
  const ProcessInfo* find(pid_t pid) const;
  // Trusted parent index, or -1 for a root.
  int32_t parent(uint32_t index) const { return parent_[index]; }
  // Children indices, in pid order.
  std::span<const uint32_t> children(uint32_t index) const;

  // Root indices for a scope, in pid order. kSupervised: just `supervised_root`
  // (if present; its own parent is ignored). kAll: every process without a trusted parent.
  std::vector<uint32_t> roots(TreeScope scope, pid_t supervised_root = 0) const;
  std::vector<pid_t> descendants(pid_t pid) const;

 private:
  std::vector<ProcessInfo> procs_;     // sorted by pid, unique
  std::vector<int32_t> parent_;        // per process
  std::vector<uint32_t> child_begin_;  // CSR: children of i are child_list_[begin[i], begin[i+1])
  std::vector<uint32_t> child_list_;
  int64_t monotonic_ns_ = 0;
};

// A JSON array of the scope's root nodes, nested through "children". Each node:
// {"pid","ppid","pgid","comm","cmdline" (args joined by spaces),"state" ("R"),
//  "cpu_percent","rss_bytes","uid","gid" (effective; null unread),"worker_id" (number|null),"worker_name" (string|null),
//  "threads":[{"tid","name","state","cpu_percent"}],"children":[...]}.
// Invalid UTF-8 in names becomes U+FFFD, so the output is always valid JSON.
std::string tree_json(const ProcessTree& tree, TreeScope scope, pid_t supervised_root,
                      const WorkerTags& workers);

// One process as a JSON object: the node fields above without "children", plus
// "sid","starttime","utime_ticks","stime_ticks","num_threads","kernel_thread",
// "argv" (array), "child_pids" (array). nullopt if pid is absent.
std::optional<std::string> process_json(const ProcessTree& tree, pid_t pid,
                                        const WorkerTags& workers);

}  // namespace forkwatch
