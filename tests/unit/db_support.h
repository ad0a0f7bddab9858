// Helpers for tests of db/: open a store or a connection and query one
// integer, FAILing the test with SQLite's own words when that goes wrong.
#pragma once

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <string>

#include "database.h"
#include "store.h"

namespace fwtest {

inline std::unique_ptr<forkwatch::db::Store> open_store(const std::string& path,
                                                        const forkwatch::db::StoreOptions& options = {}) {
  forkwatch::Result<std::unique_ptr<forkwatch::db::Store>> store = forkwatch::db::Store::open(path, options);
  if (!store) FAIL(store.error().message());
  return std::move(*store);
}

inline forkwatch::db::Database open_db(const std::string& path) {
  forkwatch::Result<forkwatch::db::Database> db = forkwatch::db::Database::open(path);
  if (!db) FAIL(db.error().message());
  return std::move(*db);
}

inline int64_t int_of(forkwatch::db::Database& db, const std::string& sql) {
  forkwatch::Result<int64_t> n = db.query_int64(sql);
  if (!n) FAIL(n.error().message());
  return *n;
}

// Polls `pred` (the store's writer thread works on its own) until it holds
// or `timeout` passes; the 5 ms between looks is the poll, not a wait for
// anything in particular.
inline bool wait_for(const std::function<bool()>& pred, std::chrono::seconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace fwtest
