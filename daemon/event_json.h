// JSON forms of events and wait records, shared by the store (event replay
// column) and the API (history rows, SSE data). Keeps json.hpp out of headers.
#pragma once

#include <string>

#include "event.h"

namespace forkwatch {

// {"id","ts_ns","pid","worker_id","adopted","raw_status","wifexited",...,"ru_nivcsw","description"}
// Field names are the wait_status column names of the contract; flags are JSON booleans.
std::string wait_record_json(const WaitRecord& r);

// {"id","type","ts_ns","worker_id","pid", ["wait":{...}], ["state"], ["detail"]}
// A kSample event's data is its data_json as given.
std::string event_json(const Event& e);

}  // namespace forkwatch
