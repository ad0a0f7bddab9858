#include "event_hub.h"

#include <algorithm>

#include "event_json.h"

namespace forkwatch {

std::string sse_frame(uint64_t id, std::string_view type, std::string_view data) {
  std::string out;
  out.reserve(data.size() + type.size() + 40);
  out.append("id: ").append(std::to_string(id)).append("\nevent: ").append(type).append("\ndata: ");
  out.append(data).append("\n\n");
  return out;
}

void EventHub::publish(const Event& event) {
  Entry entry{event.id, sse_frame(event.id, event_kind_name(event.kind), event_json(event))};
  std::lock_guard lock(mu_);
  ring_.push_back(std::move(entry));
  if (ring_.size() > ring_size_) ring_.pop_front();
  last_id_ = event.id;
}

// Once per round, not per event: a wake per event woke every client for
// each of a round's events, and 1,000 clients during an exit storm starved
// the loop of the cores (bench/RESULTS.md, issue 17).
void EventHub::round_done() { cv_.notify_all(); }

bool EventHub::append_since(uint64_t& after, size_t max, std::string& out) const {
  std::lock_guard lock(mu_);
  const bool gap = !ring_.empty() && ring_.front().id > after + 1;
  if (ring_.empty() || ring_.back().id <= after) return gap;
  // Ids are ascending but may skip (samples are not stored): binary search.
  auto it = std::upper_bound(ring_.begin(), ring_.end(), after,
                             [](uint64_t id, const Entry& e) { return id < e.id; });
  for (size_t n = 0; it != ring_.end() && n < max; ++it, ++n) {
    out += it->frame;
    after = it->id;
  }
  return gap;
}

void EventHub::wait(uint64_t after, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return closed_ || last_id_ > after; });
}

uint64_t EventHub::last_id() const {
  std::lock_guard lock(mu_);
  return last_id_;
}

bool EventHub::acquire() {
  std::lock_guard lock(mu_);
  if (clients_ >= max_clients_ || closed_) return false;
  ++clients_;
  return true;
}

void EventHub::release() {
  std::lock_guard lock(mu_);
  --clients_;
}

size_t EventHub::clients() const {
  std::lock_guard lock(mu_);
  return clients_;
}

void EventHub::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool EventHub::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

}  // namespace forkwatch
