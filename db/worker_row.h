// WorkerRow: one row of the workers table, a worker the daemon brings back
// after a restart. Plain data: the loop thread fills it, the store writes it,
// Store::load_workers() returns the ones not removed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace forkwatch::db {

// What the user last asked for; stored as 'running', 'stopped', 'removed'.
enum class Desired { kRunning, kStopped, kRemoved };

inline std::string_view desired_name(Desired d) {
  switch (d) {
    case Desired::kRunning: return "running";
    case Desired::kStopped: return "stopped";
    case Desired::kRemoved: return "removed";
  }
  return "removed";
}

inline std::optional<Desired> parse_desired(std::string_view s) {
  if (s == "running") return Desired::kRunning;
  if (s == "stopped") return Desired::kStopped;
  if (s == "removed") return Desired::kRemoved;
  return std::nullopt;
}

struct WorkerRow {
  int64_t id = 0;  // the worker id; save_worker() upserts by it
  std::string name;
  std::string program;
  std::string spec;  // the caller's JSON, stored and returned as is
  bool persistent = true;
  Desired desired = Desired::kRunning;
  int64_t created_ns = 0;  // kept from the first save of this id
  int64_t updated_ns = 0;
};

}  // namespace forkwatch::db
