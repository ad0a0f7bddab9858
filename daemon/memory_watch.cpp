#include "memory_watch.h"

#include <cstdio>
#include <unordered_set>

namespace forkwatch {

MemoryVerdict judge_memory(int samples_over, int64_t tree_rss_bytes, int64_t limit) {
  if (limit <= 0 || tree_rss_bytes <= limit) return {};
  const int n = samples_over + 1;
  return {n, n >= kMemorySamplesOver};
}

std::unordered_map<int64_t, int64_t> tree_rss_by_worker(const ProcessTree& tree, const WorkerTags& tags) {
  std::unordered_map<int64_t, int64_t> rss;
  // A cgroup member below the main process is tagged and a descendant too:
  // each pid is counted once, for the worker that tags it or its ancestor.
  std::unordered_set<pid_t> counted;
  auto add = [&](int64_t id, pid_t pid) {
    const ProcessInfo* p = tree.find(pid);
    if (p && counted.insert(pid).second) rss[id] += p->rss_bytes;
  };
  for (const auto& [pid, tag] : tags) {
    if (!tree.find(pid)) continue;
    rss.try_emplace(tag.id, 0);
    add(tag.id, pid);
    for (pid_t d : tree.descendants(pid)) add(tag.id, d);
  }
  return rss;
}

std::string mib_text(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace forkwatch
