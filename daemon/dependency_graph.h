// DependencyGraph: the config programs' depends_on edges, checked and put in
// order. Built when a config loads: an unknown program, a dependency on
// itself or a cycle refuses the config with a message that names the
// programs ("a cycle: api -> db -> api"). The supervisor asks it who depends
// on whom, to start in order and to stop in reverse. Pure; loop thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "program_spec.h"
#include "sys_error.h"

namespace forkwatch {

class DependencyGraph {
 public:
  DependencyGraph() = default;
  // `origin` prefixes errors (the config file's path).
  static Result<DependencyGraph> build(const std::vector<ProgramSpec>& programs, const std::string& origin);

  // Every program, each after everything it depends on (ties in config order).
  const std::vector<std::string>& start_order() const { return order_; }
  // The programs that name `program` in their depends_on.
  const std::vector<std::string>& dependents(const std::string& program) const;
  // 0 for a program without dependencies, else 1 + its deepest dependency's.
  int depth(const std::string& program) const;

 private:
  std::vector<std::string> order_;
  std::map<std::string, std::vector<std::string>> dependents_;
  std::map<std::string, int> depth_;
};

}  // namespace forkwatch
