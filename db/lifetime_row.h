// Mapping between Lifetime and the lifetimes table, shared by the store
// (upsert) and History (select, the tree at an instant) so both agree on
// column order. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "database.h"
#include "lifetime.h"

namespace forkwatch::db {

inline constexpr std::string_view kLifetimeColumns =
    "id, pid, ppid, worker_id, comm, argv, argv_lost, forked_ns, exec_ns, execs, exited_ns, raw_status, "
    "reaped_by_daemon, core_dumped, from_scan, threads";

// Upsert of every column, ?1..?17 (span_class last), for bind_lifetime().
std::string_view lifetime_upsert_sql();
void bind_lifetime(Statement& upsert, const Lifetime& l);
// The current row of a SELECT of kLifetimeColumns, starting at column `first`.
Lifetime read_lifetime(const Statement& row, int first = 0);

// The same for ThreadLifetime and the thread_lifetimes table (schema v6).
inline constexpr std::string_view kThreadColumns = "id, lifetime_id, pid, tid, first_name, name, created_ns, exited_ns";
std::string_view thread_upsert_sql();  // ?1..?8 in kThreadColumns' order
void bind_thread(Statement& upsert, const ThreadLifetime& t);
ThreadLifetime read_thread(const Statement& row);

// argv as /proc/PID/cmdline holds it (each argument ends in a NUL): read back
// with parse_cmdline() without a JSON parse per row (issue 15's tree?at= figure).
std::string argv_text(const std::vector<std::string>& argv);
// -1 while alive; else the bit width of (exited - forked) >> 20 (schema v4).
int span_class(const Lifetime& l);
// The classes that exist: -1 and 0..kMaxSpanClass.
inline constexpr int kMaxSpanClass = 44;
// A lifetime of class k >= 0 lasted less than this.
inline int64_t span_class_bound_ns(int k) { return k >= 42 ? INT64_MAX : int64_t{1} << (k + 20); }

}  // namespace forkwatch::db
