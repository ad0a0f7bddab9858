// Fleet-ready (issue 17): every worker's series in /metrics, as Prometheus
// text and OpenMetrics, checked by promtool; the shipped rules and their
// promtool fixtures; the Grafana dashboard's queries against real series;
// and a real Prometheus scraping two daemons.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <httplib.h>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

const std::string kContrib = std::string(FORKWATCH_SOURCE_DIR) + "/contrib";

struct Ran {
  int status = -1;  // exit code, -1 if it did not exit
  std::string output;  // stdout and stderr
};

// Runs a shell command with `input` on its stdin; output and exit code.
Ran run(const std::string& command, const std::string& input = "") {
  const std::string dir = make_temp_dir("fw-fleet-run");
  {
    std::ofstream(dir + "/in") << input;
  }
  Ran r;
  FILE* p = popen(("(" + command + ") < '" + dir + "/in' 2>&1").c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::filesystem::remove_all(dir);
  return r;
}

// The value of one sample line "series value", or nullopt.
std::optional<double> sample(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::stod(text.substr(at + series.size() + 2));
}

std::string labels(const Json& w) {
  return "program=\"" + w["program"].get<std::string>() + "\",worker=\"" + w["name"].get<std::string>() +
         "\",id=\"" + std::to_string(w["id"].get<int64_t>()) + "\"";
}

// Every sample name in a text exposition (histograms' _bucket, _sum, _count included).
std::set<std::string> sample_names(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') out.insert(line.substr(0, line.find_first_of("{ ")));
  return out;
}

// Debian's prometheus on loopback, with its own storage; stopped at the end.
class Prometheus {
 public:
  Prometheus(const std::string& dir, const std::string& config) : port_(free_port()) {
    std::ofstream(dir + "/prometheus.yml") << config;
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    const std::string cfg = "--config.file=" + dir + "/prometheus.yml";
    const std::string tsdb = "--storage.tsdb.path=" + dir + "/data";
    log_ = dir + "/prometheus.log";
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 1);
      dup2(fd, 2);
      execlp("prometheus", "prometheus", cfg.c_str(), tsdb.c_str(), listen.c_str(), nullptr);
      _exit(127);
    }
  }
  ~Prometheus() {
    kill(pid_, SIGTERM);
    int st;
    if (!wait_until([&] { return waitpid(pid_, &st, WNOHANG) == pid_; }, 10s)) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &st, 0);
    }
  }
  // data of GET /api/v1/PATH, or null.
  Json api(const std::string& path, const httplib::Params& params = {}) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(2);
    auto r = c.Get(("/api/v1/" + path).c_str(), params, httplib::Headers{});
    if (!r || r->status != 200) return nullptr;
    Json j = Json::parse(r->body, nullptr, false);
    return j.is_object() && j.value("status", "") == "success" ? j["data"] : Json();
  }
  Json query(const std::string& promql) const {
    Json d = api("query", {{"query", promql}});
    return d.is_object() ? d["result"] : Json();
  }
  bool ready() const {
    httplib::Client c("127.0.0.1", port_);
    auto r = c.Get("/-/ready");
    return r && r->status == 200;
  }
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  int port_;
  pid_t pid_ = -1;
  std::string log_;
};

}  // namespace

TEST_CASE("/metrics gives every worker its series with escaped labels, and promtool check metrics passes",
          "[integration]") {
  Daemon d;
  auto sleeper = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"name", "we\"ird\\name"}});
  auto coder = d.start({{"program", "exit-with"}, {"args", {"--code", "3"}}, {"restart", "no"}});
  auto killed = d.start({{"program", "exit-with"}, {"args", {"--signal", "SIGKILL"}}, {"restart", "no"}});
  REQUIRE(d.wait_state(sleeper["id"], "running"));
  REQUIRE(d.wait_state(coder["id"], "exited"));
  REQUIRE(d.wait_state(killed["id"], "exited"));
  auto stopped = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"restart", "no"}});
  REQUIRE(d.wait_state(stopped["id"], "running"));
  REQUIRE(d.post("/api/workers/" + std::to_string(stopped["id"].get<int>()) + "/stop", "").status == 200);
  REQUIRE(d.wait_state(stopped["id"], "stopped"));
  auto r = d.request("GET", "/metrics", "", {}, false);
  REQUIRE(r.status == 200);
  CHECK(r.headers["Content-Type"].starts_with("text/plain; version=0.0.4"));
  const std::string& m = r.body;

  // The exposition format escapes \ and " in label values.
  const std::string s = R"(program="exit-with",worker="we\"ird\\name",id=")" + std::to_string(sleeper["id"].get<int>()) + "\"";
  CHECK(sample(m, "forkwatch_worker_up{" + s + "}") == 1);
  CHECK(sample(m, "forkwatch_worker_state{" + s + ",state=\"running\"}") == 1);
  CHECK(sample(m, "forkwatch_worker_state{" + s + ",state=\"exited\"}") == 0);
  CHECK(sample(m, "forkwatch_worker_ready{" + s + "}") == 1);
  CHECK(sample(m, "forkwatch_worker_healthy{" + s + "}") == 1);
  CHECK(sample(m, "forkwatch_worker_processes{" + s + "}") == 1);
  CHECK(sample(m, "forkwatch_worker_threads{" + s + "}") >= 1);
  CHECK(sample(m, "forkwatch_worker_resident_bytes{" + s + "}") > 100'000);
  CHECK(sample(m, "forkwatch_worker_restarts_total{" + s + "}") == 0);
  const double started = sample(m, "forkwatch_worker_start_time_seconds{" + s + "}").value_or(0);
  CHECK(std::abs(started - static_cast<double>(time(nullptr))) < 60);

  const std::string c = labels(coder), k = labels(killed);
  CHECK(sample(m, "forkwatch_worker_up{" + c + "}") == 0);
  CHECK(sample(m, "forkwatch_worker_ready{" + c + "}") == 0);
  CHECK(!sample(m, "forkwatch_worker_healthy{" + c + "}"));  // no health verdict while not running
  CHECK(sample(m, "forkwatch_worker_state{" + c + ",state=\"exited\"}") == 1);
  CHECK(sample(m, "forkwatch_worker_exits_total{" + c + ",how=\"exited\",cause=\"exited\"}") == 1);
  CHECK(sample(m, "forkwatch_worker_exits_total{" + c + ",how=\"signaled\",cause=\"signaled\"}") == 0);
  CHECK(sample(m, "forkwatch_worker_exits_total{" + k + ",how=\"signaled\",cause=\"signaled\"}") == 1);
  CHECK(sample(m, "forkwatch_worker_processes{" + k + "}") == 0);
  // A stop the daemon was asked for is no crash: its recorded cause (issue 13) says so.
  const std::string st = labels(stopped);
  CHECK(sample(m, "forkwatch_worker_exits_total{" + st + ",how=\"signaled\",cause=\"stop_requested\"}") == 1);
  CHECK(sample(m, "forkwatch_worker_exits_total{" + st + ",how=\"signaled\",cause=\"signaled\"}") == 0);
  CHECK(sample(m, "forkwatch_worker_cpu_seconds_total{" + k + "}") >= 0);
  CHECK(m.find("# TYPE forkwatch_worker_exits_total counter") != std::string::npos);

  Ran lint = run("promtool check metrics", m);
  INFO(lint.output);
  CHECK(lint.status == 0);
  CHECK(lint.output.empty());
}

TEST_CASE("a removed worker's series leave /metrics, the others stay", "[integration]") {
  Daemon d;
  auto gone = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}});
  auto kept = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}});
  REQUIRE(d.wait_state(gone["id"], "running"));
  REQUIRE(d.wait_state(kept["id"], "running"));
  const std::string g = labels(gone);
  CHECK(d.get("/metrics").body.find(g) != std::string::npos);
  REQUIRE(d.del("/api/workers/" + std::to_string(gone["id"].get<int>())).status == 200);
  REQUIRE(wait_until([&] { return d.get("/metrics").body.find(g) == std::string::npos; }, 10s));
  CHECK(sample(d.get("/metrics").body, "forkwatch_worker_up{" + labels(kept) + "}") == 1);
}

TEST_CASE("/metrics answers OpenMetrics to a scraper that asks for it", "[integration]") {
  Daemon d;
  auto w = d.start({{"program", "exit-with"}, {"args", {"--code", "1"}}, {"restart", "no"}});
  REQUIRE(d.wait_state(w["id"], "exited"));
  // Prometheus 2.42's own Accept header.
  auto r = d.request("GET", "/metrics", "",
                     {{"Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                                 "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"}},
                     false);
  REQUIRE(r.status == 200);
  CHECK(r.headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8");
  const std::string& m = r.body;
  CHECK(m.ends_with("\n# EOF\n"));
  // Counter families drop the _total their samples keep.
  CHECK(m.find("# TYPE forkwatch_worker_exits counter\n") != std::string::npos);
  CHECK(m.find("# TYPE forkwatch_worker_exits_total") == std::string::npos);
  CHECK(sample(m, "forkwatch_worker_exits_total{" + labels(w) + ",how=\"exited\",cause=\"exited\"}") == 1);
  CHECK(std::regex_search(m, std::regex("\n# TYPE [a-z_]+_total counter\n")) == false);
  // Plain text is still the default.
  CHECK(d.request("GET", "/metrics", "", {}, false).headers["Content-Type"].starts_with("text/plain"));
}

TEST_CASE("the shipped Prometheus rules pass their promtool tests and the example config checks", "[integration]") {
  Ran rules = run("promtool check rules '" + kContrib + "/prometheus/forkwatch.rules.yml'");
  INFO(rules.output);
  CHECK(rules.status == 0);
  Ran tests = run("cd '" + kContrib + "/prometheus' && promtool test rules forkwatch.rules.test.yml");
  INFO(tests.output);
  CHECK(tests.status == 0);
  CHECK(tests.output.find("SUCCESS") != std::string::npos);
  Ran config = run("promtool check config '" + kContrib + "/prometheus/prometheus.yml'");
  INFO(config.output);
  CHECK(config.status == 0);
}

TEST_CASE("the Grafana dashboard is JSON, its datasource templated, every query naming a series the daemon exports",
          "[integration]") {
  std::ifstream in(kContrib + "/grafana/forkwatch.json");
  REQUIRE(in);
  Json dash = Json::parse(in, nullptr, false);
  REQUIRE(dash.is_object());
  bool ds_variable = false;
  for (const auto& v : dash["templating"]["list"])
    ds_variable = ds_variable || (v["type"] == "datasource" && v["query"] == "prometheus" && v["name"] == "datasource");
  CHECK(ds_variable);

  Daemon d;
  auto w = d.start({{"program", "exit-with"}, {"args", {"--sleep"}}});
  REQUIRE(d.wait_state(w["id"], "running"));
  std::set<std::string> known = sample_names(d.get("/metrics").body);
  known.insert("up");
  const std::regex series("forkwatch_[a-z_]+");
  size_t queries = 0;
  REQUIRE(dash["panels"].size() >= 5);
  for (const auto& p : dash["panels"]) {
    INFO("panel " << p["title"]);
    CHECK(p["datasource"]["uid"] == "${datasource}");
    for (const auto& t : p["targets"]) {
      const std::string expr = t["expr"];
      INFO(expr);
      CHECK(t["datasource"]["uid"] == "${datasource}");
      ++queries;
      size_t names = 0;
      for (std::sregex_iterator it(expr.begin(), expr.end(), series), end; it != end; ++it, ++names)
        CHECK(known.contains(it->str()));
      CHECK((names > 0 || expr.starts_with("up{")));
    }
  }
  CHECK(queries >= 10);
  for (const char* panel : {"Workers up", "Restarts per second", "Exits per second by cause", "CPU (cores)",
                            "Resident memory"}) {
    bool found = false;
    for (const auto& p : dash["panels"]) found = found || p["title"] == panel;
    CHECK(found);
  }
}

TEST_CASE("a real Prometheus scrapes two daemons: both hosts' workers appear, the rules load, and one host's "
          "crash loop shows in the recording rule",
          "[integration][prometheus]") {
  Daemon a, b;
  // Crash-loops for as long as the test runs: an exit every ~2.2 s stays
  // under the start limit (5 in 10 s), so the worker never turns fatal.
  auto looping = a.start({{"program", "exit-with"}, {"args", {"--code", "3", "--after-ms", "2000"}},
                          {"name", "looper"}, {"restart", "always"}, {"restart_delay_ms", 100}, {"max_restarts", 1000}});
  auto steady_a = a.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"name", "steady"}});
  auto steady_b = b.start({{"program", "exit-with"}, {"args", {"--sleep"}}, {"name", "steady"}});
  REQUIRE(b.wait_state(steady_b["id"], "running"));

  const std::string dir = make_temp_dir("fw-prometheus");
  const std::string ta = "127.0.0.1:" + std::to_string(a.port()), tb = "127.0.0.1:" + std::to_string(b.port());
  Prometheus prom(dir, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                       "rule_files:\n  - " + kContrib + "/prometheus/forkwatch.rules.yml\n"
                       "scrape_configs:\n  - job_name: forkwatch\n    static_configs:\n"
                       "      - targets: ['" + ta + "', '" + tb + "']\n");
  INFO(prom.log());
  REQUIRE(wait_until([&] { return prom.ready(); }, 10s));

  // Both hosts' workers, scraped (as OpenMetrics: Prometheus asks for it first).
  REQUIRE(wait_until([&] { return prom.query("forkwatch_worker_up{worker=\"steady\"} == 1").size() == 2; }, 10s));
  Json targets = prom.api("targets");
  REQUIRE(targets["activeTargets"].size() == 2);
  for (const auto& t : targets["activeTargets"]) {
    INFO(t.dump());
    CHECK(t["health"] == "up");
    CHECK(t["lastError"] == "");
  }

  // The shipped rules loaded and evaluate.
  Json groups;
  REQUIRE(wait_until([&] {
    groups = prom.api("rules")["groups"];
    if (groups.size() != 2) return false;
    for (const auto& g : groups)
      for (const auto& r : g["rules"])
        if (r["health"] != "ok") return false;
    return true;
  }, 10s));
  INFO(groups.dump());

  // Host a's crash loop is in the recording rule; host b has none.
  Json looped;
  REQUIRE(wait_until([&] {
    looped = prom.query("instance_program:forkwatch_worker_restarts:rate5m > 0");
    return looped.size() == 1;
  }, 12s));
  CHECK(looped[0]["metric"]["instance"] == ta);
  CHECK(looped[0]["metric"]["program"] == "exit-with");
  CHECK(prom.query("instance_program:forkwatch_worker_restarts:rate5m{instance=\"" + tb + "\"} > 0").empty());
  CHECK(a.worker(looping["id"])["state"] != "fatal");
  (void)steady_a;
  std::filesystem::remove_all(dir);
}
