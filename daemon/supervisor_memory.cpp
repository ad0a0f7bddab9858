// Supervisor: memory_restart. The sampler's /proc samples give each worker's
// tree RSS (memory_watch.h); the second sample in a row above the limit is
// the state table's kMemoryOver input, which stops the worker gracefully
// (stop signal, stop_timeout_ms, SIGKILL) and starts it again.
#include "supervisor_worker.h"

#include "memory_watch.h"
#include "sampler.h"

namespace forkwatch {

void Supervisor::set_sampler(Sampler* sampler) {
  sampler_ = sampler;
  if (!sampler_) return;
  sampler_->set_observer([this] { return watches_memory(); },
                         [this](const TreeSample& t) { check_memory(t); });
}

bool Supervisor::watches_memory() const {
  for (const auto& [id, w] : workers_)
    if (w->spec.memory_restart > 0 && w->pid > 0) return true;
  return false;
}

void Supervisor::check_memory(const TreeSample& sample) {
  if (!sample.tree || !watches_memory()) return;
  const auto rss = tree_rss_by_worker(*sample.tree, sample.tags);
  std::vector<std::pair<int64_t, int64_t>> over;  // (worker id, tree RSS)
  for (auto& [id, w] : workers_) {
    if (w->spec.memory_restart <= 0) continue;
    const bool live = w->pid > 0 && (w->state == WorkerState::kRunning || w->state == WorkerState::kStarting);
    const auto it = rss.find(id);
    const int64_t bytes = live && it != rss.end() ? it->second : 0;
    const MemoryVerdict v = judge_memory(w->memory_samples_over, bytes, w->spec.memory_restart);
    w->memory_samples_over = v.samples_over;
    if (v.restart) over.emplace_back(id, bytes);
  }
  // Acted on after the walk: an input may change the workers.
  for (auto [id, bytes] : over) {
    Worker* w = find(id);
    if (!w) continue;
    log::warning("worker " + w->name + ": its tree's resident memory " + mib_text(bytes) + " (" +
                 std::to_string(bytes) + " bytes) is over its memory_restart of " + mib_text(w->spec.memory_restart) +
                 " for " + std::to_string(kMemorySamplesOver) + " samples in a row, restarting");
    w->memory_samples_over = 0;
    input(*w, WorkerInput::kMemoryOver);
  }
}

}  // namespace forkwatch
