#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "process_tree.h"
#include "proc_reader.h"

using namespace forkwatch;
using nlohmann::json;

namespace {

ProcessInfo proc(pid_t pid, pid_t ppid, uint64_t starttime, std::string comm = "p") {
  ProcessInfo p;
  p.pid = pid;
  p.ppid = ppid;
  p.pgid = pid;
  p.sid = pid;
  p.starttime = starttime;
  p.comm = std::move(comm);
  p.state = 'S';
  p.threads.push_back(ThreadInfo{pid, p.comm, 'S', 0, 0, starttime, 0});
  return p;
}

std::vector<pid_t> pids_of(const ProcessTree& t, const std::vector<uint32_t>& idx) {
  std::vector<pid_t> out;
  for (uint32_t i : idx) out.push_back(t.processes()[i].pid);
  return out;
}

std::vector<pid_t> child_pids(const ProcessTree& t, pid_t pid) {
  std::vector<pid_t> out;
  for (uint32_t c : t.children(*t.index_of(pid))) out.push_back(t.processes()[c].pid);
  return out;
}

// Every pid in a rendered forest, depth first; fails on a node seen twice.
void collect(const json& nodes, std::vector<pid_t>& out) {
  for (const auto& n : nodes) {
    out.push_back(n.at("pid").get<pid_t>());
    collect(n.at("children"), out);
  }
}

}  // namespace

TEST_CASE("scope all has pid 1, kthreadd and orphans as roots and children below parents", "[unit]") {
  // Given out of order on purpose.
  ProcessTree t({proc(300, 100, 30), proc(1, 0, 1), proc(2, 0, 1), proc(100, 1, 10),
                 proc(15, 2, 2), proc(200, 100, 20), proc(500, 999, 50)});
  CHECK(pids_of(t, t.roots(TreeScope::kAll)) == std::vector<pid_t>{1, 2, 500});
  CHECK(child_pids(t, 1) == std::vector<pid_t>{100});
  CHECK(child_pids(t, 100) == std::vector<pid_t>{200, 300});
  CHECK(child_pids(t, 2) == std::vector<pid_t>{15});
  CHECK(t.parent(*t.index_of(500)) == -1);  // its parent 999 is not in the sample
  CHECK(t.find(999) == nullptr);
  CHECK(t.descendants(1) == std::vector<pid_t>{100, 200, 300});
  CHECK(t.descendants(4242).empty());
}

TEST_CASE("scope supervised is the given root and its descendants only", "[unit]") {
  ProcessTree t({proc(1, 0, 1), proc(50, 1, 5), proc(60, 50, 6), proc(61, 60, 7),
                 proc(70, 1, 8)});
  CHECK(pids_of(t, t.roots(TreeScope::kSupervised, 50)) == std::vector<pid_t>{50});
  json j = json::parse(tree_json(t, TreeScope::kSupervised, 50, {}));
  std::vector<pid_t> seen;
  collect(j, seen);
  CHECK(seen == std::vector<pid_t>{50, 60, 61});
  CHECK(json::parse(tree_json(t, TreeScope::kSupervised, 4242, {})) == json::array());
}

TEST_CASE("a parent that started after its child is a reused pid, not the parent", "[unit]") {
  // 600's real parent died; pid 700 was then reused by a newer process.
  ProcessTree t({proc(1, 0, 1), proc(600, 700, 1400), proc(700, 1, 1500)});
  CHECK(t.parent(*t.index_of(600)) == -1);
  CHECK(pids_of(t, t.roots(TreeScope::kAll)) == std::vector<pid_t>{1, 600});
  CHECK(t.descendants(700).empty());
}

TEST_CASE("cycles faked by pid reuse are broken and every walk ends", "[unit]") {
  // Equal start times defeat the start-time check; each process names the
  // next as parent. Plus a self-parent and a tail hanging off the cycle.
  std::vector<ProcessInfo> v{proc(10, 30, 5), proc(20, 10, 5), proc(30, 20, 5), proc(40, 40, 5),
                             proc(50, 20, 6)};
  std::vector<int32_t> parents = parent_links(v);
  // Following parents from anywhere reaches a root within n steps.
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t cur = static_cast<int64_t>(i);
    size_t steps = 0;
    while (cur >= 0 && steps <= v.size()) {
      cur = parents[cur];
      ++steps;
    }
    CHECK(cur == -1);
  }
  ProcessTree t(v);
  // The cycle is cut at its smallest pid.
  CHECK(pids_of(t, t.roots(TreeScope::kAll)) == std::vector<pid_t>{10, 40});
  CHECK(t.descendants(10) == std::vector<pid_t>{20, 30, 50});
  std::vector<pid_t> seen;
  collect(json::parse(tree_json(t, TreeScope::kAll, 0, {})), seen);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<pid_t>{10, 20, 30, 40, 50});  // each exactly once
  CHECK(descendants_of(v, 30) == std::vector<pid_t>{});
  CHECK(descendants_of(v, 20) == std::vector<pid_t>{30, 50});
}

TEST_CASE("duplicate pids keep the first entry", "[unit]") {
  ProcessTree t({proc(1, 0, 1, "first"), proc(1, 0, 1, "second"), proc(2, 1, 2)});
  CHECK(t.size() == 2);
  CHECK(t.find(1)->comm == "first");
}

TEST_CASE("tree JSON has exactly the contract's node fields and annotates workers", "[unit]") {
  ProcessInfo daemon = proc(10, 1, 1, "forkwatchd");
  daemon.cmdline = {"/usr/bin/forkwatchd", "--listen", "127.0.0.1:0"};
  ProcessInfo worker = proc(11, 10, 2, "thread-spawner");
  worker.cmdline = {"thread-spawner", "--threads", "2"};
  worker.state = 'R';
  worker.rss_bytes = 4096 * 3;
  worker.cpu_percent = 12.345;
  worker.threads = {ThreadInfo{11, "main", 'S', 0, 0, 2, 0.04, "futex_wait_queue"},
                    ThreadInfo{12, "w \"1\"\\\n\x01", 'R', 0, 0, 2, 99.96, ""}};
  ProcessInfo bad = proc(12, 11, 3, std::string("bad\xff\xc3(\xe2\x82\xac"));
  WorkerTags tags{{11, WorkerTag{7, "spawner \"seven\""}}};
  ProcessTree t({daemon, worker, bad});

  json roots = json::parse(tree_json(t, TreeScope::kAll, 0, tags));
  REQUIRE(roots.size() == 1);
  const json& d = roots[0];
  std::vector<std::string> keys;
  for (auto it = d.begin(); it != d.end(); ++it) keys.push_back(it.key());
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{"children", "cmdline", "comm", "cpu_percent", "fds", "gid", "pgid",
                                         "pid", "ppid", "rss_bytes", "state", "threads",
                                         "uid", "worker_id", "worker_name"});
  CHECK(d["cmdline"] == "/usr/bin/forkwatchd --listen 127.0.0.1:0");
  CHECK(d["worker_id"].is_null());
  CHECK(d["worker_name"].is_null());
  CHECK(d["state"] == "S");

  const json& w = d["children"].at(0);
  CHECK(w["pid"] == 11);
  CHECK(w["ppid"] == 10);
  CHECK(w["pgid"] == 11);
  CHECK(w["state"] == "R");
  CHECK(w["rss_bytes"] == 4096 * 3);
  CHECK(w["cpu_percent"].get<double>() == Approx(12.3));
  CHECK(w["worker_id"] == 7);
  CHECK(w["worker_name"] == "spawner \"seven\"");
  REQUIRE(w["threads"].size() == 2);
  CHECK(w["threads"][0] == json{{"tid", 11}, {"name", "main"}, {"state", "S"}, {"cpu_percent", 0.0},
                                {"wchan", "futex_wait_queue"}});
  CHECK(w["threads"][1]["wchan"].is_null());  // running: it waits on nothing
  CHECK(w["threads"][1]["name"] == "w \"1\"\\\n\x01");
  CHECK(w["threads"][1]["cpu_percent"].get<double>() == Approx(100.0));

  // Bytes that are not UTF-8 become U+FFFD; valid sequences (the euro sign) stay.
  const json& b = w["children"].at(0);
  CHECK(b["comm"] == "bad\xef\xbf\xbd\xef\xbf\xbd(\xe2\x82\xac");
  CHECK(b["children"] == json::array());
}

TEST_CASE("a fork chain thousands deep renders without recursion", "[unit]") {
  std::vector<ProcessInfo> v;
  for (pid_t pid = 1; pid <= 20000; ++pid) v.push_back(proc(pid, pid - 1, static_cast<uint64_t>(pid)));
  ProcessTree t(std::move(v));
  std::string text = tree_json(t, TreeScope::kAll, 0, {});
  CHECK(text.rfind("[{\"pid\":1,", 0) == 0);
  // Balanced: one "]}" per node closes children and node, plus the outer "]".
  size_t closes = 0;
  for (size_t at = text.find("]}"); at != std::string::npos; at = text.find("]}", at + 1)) ++closes;
  CHECK(closes >= 20000);
  CHECK(t.descendants(19990).size() == 10);
}

TEST_CASE("one process renders with its threads, argv and child pids", "[unit]") {
  ProcessInfo p = proc(11, 10, 2, "srv");
  p.cmdline = {"srv", "a b", ""};
  p.num_threads = 1;
  p.kernel_thread = false;
  p.utime = 5;
  p.stime = 6;
  ProcessTree t({proc(10, 1, 1), p, proc(12, 11, 3), proc(13, 11, 4)});
  auto text = process_json(t, 11, {{11, WorkerTag{3, "srv"}}});
  REQUIRE(text);
  json j = json::parse(*text);
  CHECK(j["pid"] == 11);
  CHECK(j["cmdline"] == "srv a b ");
  CHECK(j["argv"] == json{"srv", "a b", ""});
  CHECK(j["child_pids"] == json{12, 13});
  CHECK(j["worker_id"] == 3);
  CHECK(j["utime_ticks"] == 5);
  CHECK(j["stime_ticks"] == 6);
  CHECK(j["starttime"] == 2);
  CHECK(j["threads"].size() == 1);
  CHECK_FALSE(j.contains("children"));
  CHECK_FALSE(process_json(t, 4242, {}));
}
