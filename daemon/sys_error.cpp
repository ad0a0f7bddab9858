#include "sys_error.h"

#include <cstring>

namespace forkwatch {

std::string SysError::message() const {
  if (err == 0) return what;
  return what + ": " + std::strerror(err);
}

SysError sys_error(std::string what) { return SysError{std::move(what), errno}; }

SysError plain_error(std::string message) { return SysError{std::move(message), 0}; }

}  // namespace forkwatch
