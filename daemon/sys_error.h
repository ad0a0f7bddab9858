// Errors as values: a failed call carries the call, its target and errno,
// rendered like "waitpid(1234): No child processes". Core code returns these
// instead of throwing; nothing throws across the event loop.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace forkwatch {

struct SysError {
  std::string what;  // "open(/var/lib/x)": the call and its target
  int err = 0;       // errno at the time of the failure; 0 for non-syscall errors
  std::string message() const;
};

// Captures errno now; call right after the failing syscall.
SysError sys_error(std::string what);
// An error that is not an errno (bad data, refused request).
SysError plain_error(std::string message);

// Result<T>: a value or a SysError.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(SysError e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const SysError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, SysError> v_;
};

struct Ok {};
using Status = Result<Ok>;

}  // namespace forkwatch
