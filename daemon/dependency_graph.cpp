#include "dependency_graph.h"

#include <algorithm>
#include <functional>

namespace forkwatch {

Result<DependencyGraph> DependencyGraph::build(const std::vector<ProgramSpec>& programs,
                                               const std::string& origin) {
  std::map<std::string, const ProgramSpec*> by_name;
  for (const ProgramSpec& p : programs) by_name[p.name] = &p;
  for (const ProgramSpec& p : programs)
    for (const Dependency& d : p.depends_on) {
      if (d.program == p.name)
        return plain_error(origin + ": program " + p.name + ": depends_on: depends on itself");
      if (!by_name.contains(d.program))
        return plain_error(origin + ": program " + p.name + ": depends_on: no program named " + d.program);
    }
  DependencyGraph g;
  // Depth-first, in config order; `path` is the chain being visited, so a
  // back edge names the whole cycle.
  enum class Mark { kNew, kOnPath, kDone };
  std::map<std::string, Mark> mark;
  std::vector<std::string> path;
  std::string cycle;
  std::function<bool(const ProgramSpec&)> visit = [&](const ProgramSpec& p) -> bool {
    Mark& m = mark[p.name];
    if (m == Mark::kDone) return true;
    if (m == Mark::kOnPath) {
      auto from = std::find(path.begin(), path.end(), p.name);
      for (auto it = from; it != path.end(); ++it) cycle += *it + " -> ";
      cycle += p.name;
      return false;
    }
    m = Mark::kOnPath;
    path.push_back(p.name);
    int depth = 0;
    for (const Dependency& d : p.depends_on) {
      if (!visit(*by_name.at(d.program))) return false;
      depth = std::max(depth, g.depth_[d.program] + 1);
    }
    path.pop_back();
    mark[p.name] = Mark::kDone;
    g.depth_[p.name] = depth;
    g.order_.push_back(p.name);
    return true;
  };
  for (const ProgramSpec& p : programs)
    if (!visit(p)) return plain_error(origin + ": depends_on: a dependency cycle: " + cycle);
  for (const ProgramSpec& p : programs)
    for (const Dependency& d : p.depends_on) {
      auto& list = g.dependents_[d.program];
      if (std::find(list.begin(), list.end(), p.name) == list.end()) list.push_back(p.name);
    }
  return g;
}

const std::vector<std::string>& DependencyGraph::dependents(const std::string& program) const {
  static const std::vector<std::string> kNone;
  auto it = dependents_.find(program);
  return it == dependents_.end() ? kNone : it->second;
}

int DependencyGraph::depth(const std::string& program) const {
  auto it = depth_.find(program);
  return it == depth_.end() ? 0 : it->second;
}

}  // namespace forkwatch
