#include "process_tree.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "json_text.h"

namespace forkwatch {
namespace {

using namespace json_text;

// (pid, index) pairs sorted by pid, for lookups in a list of any order.
std::vector<std::pair<pid_t, uint32_t>> pid_index(std::span<const ProcessInfo> procs) {
  std::vector<std::pair<pid_t, uint32_t>> idx;
  idx.reserve(procs.size());
  for (uint32_t i = 0; i < procs.size(); ++i) idx.emplace_back(procs[i].pid, i);
  if (!std::is_sorted(idx.begin(), idx.end())) std::sort(idx.begin(), idx.end());
  return idx;
}

int64_t lookup(const std::vector<std::pair<pid_t, uint32_t>>& idx, pid_t pid) {
  auto it = std::lower_bound(idx.begin(), idx.end(), std::make_pair(pid, uint32_t{0}));
  if (it == idx.end() || it->first != pid) return -1;
  return it->second;
}

// Children in compressed rows: children of i are list[begin[i], begin[i+1]), in index order.
void build_children(std::span<const int32_t> parents, std::vector<uint32_t>& begin,
                    std::vector<uint32_t>& list) {
  size_t n = parents.size();
  begin.assign(n + 1, 0);
  for (int32_t p : parents)
    if (p >= 0) ++begin[p + 1];
  for (size_t i = 0; i < n; ++i) begin[i + 1] += begin[i];
  list.assign(begin[n], 0);
  std::vector<uint32_t> fill(begin.begin(), begin.end() - 1);
  for (uint32_t i = 0; i < n; ++i)
    if (parents[i] >= 0) list[fill[parents[i]]++] = i;
}

// JSON text is written by hand (json_text.h): a sample of 10,000 threads
// renders in about a millisecond this way, several times faster than
// building a json value.

void put_percent(std::string& out, double v) {
  if (!std::isfinite(v) || v < 0) v = 0;
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 1);
  if (ec != std::errc()) {
    out += '0';
    return;
  }
  out.append(buf, end);
}

// The arguments joined by spaces (join_cmdline), escaped straight into out.
void put_cmdline(std::string& out, const std::vector<std::string>& args) {
  out += '"';
  for (size_t i = 0; i < args.size(); ++i) {
    if (i) out += ' ';
    put_string_body(out, args[i]);
  }
  out += '"';
}

void put_state(std::string& out, char state) { put_string(out, std::string_view(&state, 1)); }

void put_state_field(std::string& out, std::string_view key, char state) {
  put_raw(out, key);
  put_state(out, state);
}
void put_cmdline_field(std::string& out, std::string_view key, const std::vector<std::string>& args) {
  put_raw(out, key);
  put_cmdline(out, args);
}

// The node fields shared by tree nodes and the single-process view, up to and
// including "threads":[...], without the closing brace.
void put_node_fields(std::string& out, const ProcessInfo& p, const WorkerTags& workers) {
  put_field(out, "{\"pid\":", p.pid);
  put_field(out, ",\"ppid\":", p.ppid);
  put_field(out, ",\"pgid\":", p.pgid);
  put_field(out, ",\"comm\":", p.comm);
  put_cmdline_field(out, ",\"cmdline\":", p.cmdline);
  put_state_field(out, ",\"state\":", p.state);
  put_raw(out, ",\"cpu_percent\":");
  put_percent(out, p.cpu_percent);
  put_field(out, ",\"rss_bytes\":", p.rss_bytes);
  if (p.uid < 0) put_raw(out, ",\"uid\":null,\"gid\":null");
  else {
    put_field(out, ",\"uid\":", p.uid);
    put_field(out, ",\"gid\":", p.gid);
  }
  if (p.fd_count < 0) put_raw(out, ",\"fds\":null");
  else put_field(out, ",\"fds\":", p.fd_count);
  auto w = workers.empty() ? workers.end() : workers.find(p.pid);
  if (w == workers.end()) {
    put_raw(out, ",\"worker_id\":null,\"worker_name\":null");
  } else {
    put_field(out, ",\"worker_id\":", w->second.id);
    put_field(out, ",\"worker_name\":", w->second.name);
  }
  put_raw(out, ",\"threads\":[");
  for (size_t i = 0; i < p.threads.size(); ++i) {
    const ThreadInfo& t = p.threads[i];
    if (i) out += ',';
    put_field(out, "{\"tid\":", t.tid);
    put_field(out, ",\"name\":", t.name);
    put_state_field(out, ",\"state\":", t.state);
    put_raw(out, ",\"cpu_percent\":");
    put_percent(out, t.cpu_percent);
    if (t.wchan.empty()) put_raw(out, ",\"wchan\":null");
    else put_field(out, ",\"wchan\":", std::string_view(t.wchan));
    out += '}';
  }
  out += ']';
}

}  // namespace

std::vector<int32_t> parent_links(std::span<const ProcessInfo> procs) {
  const auto idx = pid_index(procs);
  std::vector<int32_t> parent(procs.size(), -1);
  for (uint32_t i = 0; i < procs.size(); ++i) {
    const ProcessInfo& p = procs[i];
    if (p.ppid <= 0 || p.ppid == p.pid) continue;
    int64_t j = lookup(idx, p.ppid);
    // A parent that started after its child is a reused pid, not the parent.
    if (j >= 0 && procs[j].starttime <= p.starttime) parent[i] = static_cast<int32_t>(j);
  }

  // Start times only allow cycles among processes that started in the same
  // tick; break each at its smallest pid so that the result is deterministic.
  enum : uint8_t { kNew, kOnPath, kDone };
  std::vector<uint8_t> mark(procs.size(), kNew);
  std::vector<uint32_t> path;
  for (uint32_t i = 0; i < procs.size(); ++i) {
    if (mark[i] != kNew) continue;
    path.clear();
    int64_t cur = i;
    while (cur >= 0 && mark[cur] == kNew) {
      mark[cur] = kOnPath;
      path.push_back(static_cast<uint32_t>(cur));
      cur = parent[cur];
    }
    if (cur >= 0 && mark[cur] == kOnPath) {
      // The cycle is the tail of `path` from `cur` on.
      auto from = std::find(path.begin(), path.end(), static_cast<uint32_t>(cur));
      uint32_t cut = *std::min_element(from, path.end(), [&](uint32_t a, uint32_t b) {
        return procs[a].pid < procs[b].pid;
      });
      parent[cut] = -1;
    }
    for (uint32_t k : path) mark[k] = kDone;
  }
  return parent;
}

std::vector<uint32_t> subtree_indices(std::span<const ProcessInfo> procs,
                                      std::span<const int32_t> parents, pid_t root) {
  std::vector<uint32_t> out;
  int64_t r = lookup(pid_index(procs), root);
  if (r < 0) return out;
  std::vector<uint32_t> begin, list;
  build_children(parents, begin, list);
  out.push_back(static_cast<uint32_t>(r));
  for (size_t k = 0; k < out.size(); ++k) {
    uint32_t i = out[k];
    for (uint32_t c = begin[i]; c < begin[i + 1]; ++c) out.push_back(list[c]);
  }
  return out;
}

std::vector<pid_t> descendants_of(std::span<const ProcessInfo> procs, pid_t pid) {
  std::vector<int32_t> parents = parent_links(procs);
  std::vector<uint32_t> sub = subtree_indices(procs, parents, pid);
  std::vector<pid_t> out;
  for (size_t k = 1; k < sub.size(); ++k) out.push_back(procs[sub[k]].pid);
  return out;
}

ProcessTree::ProcessTree(std::vector<ProcessInfo> processes, int64_t monotonic_ns)
    : procs_(std::move(processes)), monotonic_ns_(monotonic_ns) {
  auto by_pid = [](const ProcessInfo& a, const ProcessInfo& b) { return a.pid < b.pid; };
  if (!std::is_sorted(procs_.begin(), procs_.end(), by_pid))
    std::stable_sort(procs_.begin(), procs_.end(), by_pid);
  auto dup = std::unique(procs_.begin(), procs_.end(),
                         [](const ProcessInfo& a, const ProcessInfo& b) { return a.pid == b.pid; });
  procs_.erase(dup, procs_.end());
  parent_ = parent_links(procs_);
  build_children(parent_, child_begin_, child_list_);
}

std::optional<uint32_t> ProcessTree::index_of(pid_t pid) const {
  auto it = std::lower_bound(procs_.begin(), procs_.end(), pid,
                             [](const ProcessInfo& p, pid_t v) { return p.pid < v; });
  if (it == procs_.end() || it->pid != pid) return std::nullopt;
  return static_cast<uint32_t>(it - procs_.begin());
}

const ProcessInfo* ProcessTree::find(pid_t pid) const {
  auto i = index_of(pid);
  return i ? &procs_[*i] : nullptr;
}

std::span<const uint32_t> ProcessTree::children(uint32_t index) const {
  return std::span<const uint32_t>(child_list_.data() + child_begin_[index],
                                   child_begin_[index + 1] - child_begin_[index]);
}

std::vector<uint32_t> ProcessTree::roots(TreeScope scope, pid_t supervised_root) const {
  std::vector<uint32_t> out;
  if (scope == TreeScope::kSupervised) {
    if (auto i = index_of(supervised_root)) out.push_back(*i);
    return out;
  }
  for (uint32_t i = 0; i < procs_.size(); ++i)
    if (parent_[i] < 0) out.push_back(i);
  return out;
}

std::vector<pid_t> ProcessTree::descendants(pid_t pid) const {
  std::vector<pid_t> out;
  auto r = index_of(pid);
  if (!r) return out;
  std::vector<uint32_t> queue{*r};
  for (size_t k = 0; k < queue.size(); ++k)
    for (uint32_t c : children(queue[k])) {
      queue.push_back(c);
      out.push_back(procs_[c].pid);
    }
  return out;
}

std::string tree_json(const ProcessTree& tree, TreeScope scope, pid_t supervised_root,
                      const WorkerTags& workers) {
  std::string out;
  size_t threads = 0;
  for (const ProcessInfo& p : tree.processes()) threads += p.threads.size();
  out.reserve(256 + tree.size() * 320 + threads * 72);  // about the rendered size
  out += '[';
  // Iterative depth-first walk: a fork chain thousands deep must not exhaust the stack.
  struct Frame {
    uint32_t index;
    size_t next_child;
  };
  std::vector<Frame> stack;
  bool first_root = true;
  for (uint32_t r : tree.roots(scope, supervised_root)) {
    if (!first_root) out += ',';
    first_root = false;
    put_node_fields(out, tree.processes()[r], workers);
    put_raw(out, ",\"children\":[");
    stack.push_back({r, 0});
    while (!stack.empty()) {
      uint32_t index = stack.back().index;
      size_t next = stack.back().next_child;
      auto kids = tree.children(index);
      if (next == kids.size()) {
        put_raw(out, "]}");
        stack.pop_back();
        continue;
      }
      stack.back().next_child = next + 1;
      if (next > 0) out += ',';
      put_node_fields(out, tree.processes()[kids[next]], workers);
      put_raw(out, ",\"children\":[");
      stack.push_back({kids[next], 0});
    }
  }
  out += ']';
  return out;
}

std::optional<std::string> process_json(const ProcessTree& tree, pid_t pid,
                                        const WorkerTags& workers) {
  auto i = tree.index_of(pid);
  if (!i) return std::nullopt;
  const ProcessInfo& p = tree.processes()[*i];
  std::string out;
  put_node_fields(out, p, workers);
  put_field(out, ",\"sid\":", p.sid);
  put_field(out, ",\"starttime\":", p.starttime);
  put_field(out, ",\"utime_ticks\":", p.utime);
  put_field(out, ",\"stime_ticks\":", p.stime);
  put_field(out, ",\"num_threads\":", p.num_threads);
  put_raw(out, p.kernel_thread ? ",\"kernel_thread\":true" : ",\"kernel_thread\":false");
  put_raw(out, ",\"argv\":[");
  for (size_t k = 0; k < p.cmdline.size(); ++k) {
    if (k) out += ',';
    put_string(out, p.cmdline[k]);
  }
  put_raw(out, "],\"child_pids\":[");
  auto kids = tree.children(*i);
  for (size_t k = 0; k < kids.size(); ++k) {
    if (k) out += ',';
    put_int(out, tree.processes()[kids[k]].pid);
  }
  put_raw(out, "]}");
  return out;
}

}  // namespace forkwatch
