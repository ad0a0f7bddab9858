// EventHub: fans the supervisor's events out to server-sent-event clients.
// The loop thread publishes (rendering each event's SSE frame once into a
// bounded ring) and wakes the waiting clients once per loop round (round_done);
// each SSE client's pool thread waits on the hub and copies what is new. A slow
// client only falls behind in the ring: nobody waits for it. A client that
// falls out of the ring (or reconnects with an old Last-Event-ID) is refilled
// from SQLite by the caller.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>

#include "event.h"

namespace forkwatch {

// One server-sent event: "id: ID\nevent: TYPE\ndata: DATA\n\n".
std::string sse_frame(uint64_t id, std::string_view type, std::string_view data);

class EventHub : public EventSink {
 public:
  explicit EventHub(size_t ring_size = 20000, size_t max_clients = 128)
      : ring_size_(ring_size), max_clients_(max_clients) {}

  void publish(const Event& event) override;  // loop thread
  void round_done() override;                  // loop thread: wakes the waiters

  // Appends the frames of events with id > `after`, at most `max`, to `out`
  // and moves `after` to the last one appended. Returns true when the ring no
  // longer holds id after+1 (a gap: the caller must refill from the store).
  bool append_since(uint64_t& after, size_t max, std::string& out) const;
  // Blocks until an entry with id > `after` exists, the timeout passes, or close().
  void wait(uint64_t after, std::chrono::milliseconds timeout) const;
  uint64_t last_id() const;

  // SSE client slots: acquire() fails when max_clients are connected.
  bool acquire();
  void release();
  size_t clients() const;
  size_t max_clients() const { return max_clients_; }

  // Wakes every waiter for good (shutdown).
  void close();
  bool closed() const;

 private:
  const size_t ring_size_;
  const size_t max_clients_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  struct Entry {
    uint64_t id;
    std::string frame;  // sse_frame()
  };
  std::deque<Entry> ring_;     // guarded by mu_; ids ascending
  uint64_t last_id_ = 0;       // guarded by mu_
  size_t clients_ = 0;         // guarded by mu_
  bool closed_ = false;        // guarded by mu_
};

}  // namespace forkwatch
