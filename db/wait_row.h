// Mapping between WaitRecord and the wait_status table, shared by the store
// (insert) and History (select) so both agree on column order. Pure; any thread.
#pragma once

#include <string_view>

#include "database.h"
#include "event.h"

namespace forkwatch::db {

// Every column, in the order read_wait_record() expects them.
inline constexpr std::string_view kWaitColumns =
    "id, ts_ns, pid, worker_id, adopted, raw_status, wifexited, wexitstatus, wifsignaled, "
    "wtermsig, wcoredump, wifstopped, wstopsig, wifcontinued, ru_utime_us, ru_stime_us, "
    "ru_maxrss_kb, ru_minflt, ru_majflt, ru_nvcsw, ru_nivcsw, cause";

// INSERT of every column but id, as parameters ?1..?21 for bind_wait_record().
std::string_view wait_insert_sql();
void bind_wait_record(Statement& insert, const WaitRecord& r);

// The current row of a SELECT of kWaitColumns, starting at column `first`.
WaitRecord read_wait_record(const Statement& row, int first = 0);

}  // namespace forkwatch::db
