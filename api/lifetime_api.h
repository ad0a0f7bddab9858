// Validation and JSON for GET /api/lifetimes and GET /api/tree?at= (issue 15).
// Pure: query values in, a filter or an ApiError out; records in, JSON text
// out. Any thread (API pool threads call these).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "api_error.h"
#include "lifetime_query.h"

namespace forkwatch {

// An instant: CLOCK_REALTIME nanoseconds ("1764547200123456789") or ISO 8601
// UTC ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00.250Z"). nullopt: neither.
std::optional<int64_t> parse_instant(const std::string& text);

// The query parameters of /api/lifetimes (worker, pid, since, until, alive,
// limit, before), each validated; since after until is refused.
std::variant<db::LifetimeFilter, ApiError> parse_lifetime_query(const std::map<std::string, std::string>& params);

// The query of /api/lifetimes/{id}/threads (limit 1..1000, before=ID).
std::variant<db::ThreadFilter, ApiError> parse_thread_query(int64_t lifetime_id,
                                                            const std::map<std::string, std::string>& params);
// {"lifetime_id": ID, "rows":[thread…], "next_before": ID|null}
std::string threads_page_json(int64_t lifetime_id, const std::vector<ThreadLifetime>& rows, int limit);

// `at` for /api/tree: parsable, not in the future (beyond a second of clock
// skew), not before the oldest record (`oldest_ns`, nullopt: none kept yet).
std::variant<int64_t, ApiError> parse_tree_at(const std::string& text, int64_t now_ns, std::optional<int64_t> oldest_ns);

// {"rows":[lifetime…], "next_before": ID|null, "gaps":[{"ts_ns","lost","reason"}…]}
std::string lifetimes_page_json(const std::vector<db::LifetimeRecord>& rows, int limit,
                                const std::vector<ProcessGap>& gaps);

// The tree at an instant, as /api/tree's array of root nodes: each node
// {"pid","ppid","comm","cmdline","argv","state":"","worker_id","lifetime_id",
// "forked_ns","exited_ns","raw_status","description","threads":[],"children"}.
// Roots are the processes whose parent was not alive in the tree then.
std::string tree_at_json(const std::vector<db::LifetimeRecord>& alive);

}  // namespace forkwatch
