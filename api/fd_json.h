// The JSON of GET /api/processes/{pid}/fds (CONTRACT.md "What each process
// holds"; docs/API.md). Pure rendering of a ProcessFds; any thread.
#pragma once

#include <string>

#include "fd_reader.h"

namespace forkwatch {

// {"pid":P,"fds":[{"fd","kind","target",...}],"unreadable":[pids]}. Targets
// are any bytes a file name may hold; invalid UTF-8 comes out as U+FFFD.
std::string process_fds_json(const ProcessFds& p);

}  // namespace forkwatch
