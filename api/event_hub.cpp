#include "event_hub.h"

#include <algorithm>

#include "event_json.h"

namespace forkwatch {

void EventHub::publish(const Event& event) {
  HubEntry entry{event.id, std::string(event_kind_name(event.kind)), event_json(event)};
  {
    std::lock_guard lock(mu_);
    ring_.push_back(std::move(entry));
    if (ring_.size() > ring_size_) ring_.pop_front();
    last_id_ = event.id;
  }
  cv_.notify_all();
}

std::vector<HubEntry> EventHub::since(uint64_t after, size_t max, bool& gap) const {
  std::lock_guard lock(mu_);
  std::vector<HubEntry> out;
  gap = !ring_.empty() ? ring_.front().id > after + 1 : false;
  if (ring_.empty() || ring_.back().id <= after) return out;
  // Ids are ascending but may skip (samples are not stored): binary search.
  auto it = std::upper_bound(ring_.begin(), ring_.end(), after,
                             [](uint64_t id, const HubEntry& e) { return id < e.id; });
  for (; it != ring_.end() && out.size() < max; ++it) out.push_back(*it);
  return out;
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
