// The database schema as an ordered list of migrations, tracked with
// PRAGMA user_version: a file at version N gets steps N+1.. applied, each in
// its own transaction together with its new version number. A file from a
// newer forkwatchd (version beyond the list) is refused, never guessed at.
// Called on whichever thread owns the Database (the store's, at open).
#pragma once

#include <span>

#include "database.h"

namespace forkwatch::db {

struct Migration {
  int version;      // 1, 2, ...: the user_version after this step
  const char* sql;  // statements run in one transaction
};

// forkwatch's migrations, oldest first.
std::span<const Migration> migrations();
// The version a fully migrated file has.
int schema_version();

// Brings the file up to the last step of `steps` (default: forkwatch's).
Status migrate(Database& db, std::span<const Migration> steps = migrations());

}  // namespace forkwatch::db
