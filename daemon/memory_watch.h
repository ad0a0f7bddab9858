// memory_restart (PM2's max_memory_restart, over a worker's whole tree): the
// figure and the decision. A worker's tree RSS is the sum over every process
// a sample attributes to it: each pid its tags name (the main process, and
// under cgroup containment every member of its cgroup, however it got there)
// and all their descendants, each process counted once. A worker above its
// limit for kMemorySamplesOver samples in a row is restarted; a sample at or
// under the limit (or with no process of the worker in it) starts the count
// again, so a single spike is no restart. Pure; the supervisor keeps the
// count per worker run and acts on the verdict.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "process_tree.h"

namespace forkwatch {

inline constexpr int kMemorySamplesOver = 2;

struct MemoryVerdict {
  int samples_over = 0;  // samples in a row above the limit, this one included
  bool restart = false;  // that count reached kMemorySamplesOver
};

// `samples_over` is the count before this sample; `limit` <= 0 means none.
MemoryVerdict judge_memory(int samples_over, int64_t tree_rss_bytes, int64_t limit);

// Worker id -> tree RSS in bytes, for each worker with a tagged process in `tree`.
std::unordered_map<int64_t, int64_t> tree_rss_by_worker(const ProcessTree& tree, const WorkerTags& tags);

// "212.0 MiB": bytes in MiB with one decimal, for log lines.
std::string mib_text(int64_t bytes);

}  // namespace forkwatch
