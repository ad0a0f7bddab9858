// collect(): every row of a prepared statement through a row reader, then a
// reset. Shared by History's queries; the calling thread owns the statement.
#pragma once

#include <vector>

#include "database.h"

namespace forkwatch::db {

// Steps to the end, then resets so the connection holds no read snapshot
// while idle (which would keep the writer from checkpointing the WAL).
template <typename Row, typename ReadRow>
Result<std::vector<Row>> collect(Statement& st, ReadRow read_row) {
  std::vector<Row> rows;
  for (;;) {
    Result<StepResult> r = st.step();
    if (!r) {
      st.reset();
      return r.error();
    }
    if (*r == StepResult::kDone) break;
    rows.push_back(read_row(st));
  }
  st.reset();
  return rows;
}


}  // namespace forkwatch::db
