// docs/API.md cannot rot: every curl example in its ```sh blocks is run, in
// document order, with /bin/sh against a live daemon (URL, TOKEN and PID
// exported), and must exit 0 (`curl -sf` fails on any status >= 400). Each
// example is followed by its reply; a JSON reply must parse, and every field
// it shows must still be in what the daemon answers now.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

struct Example {
  std::string command;  // one curl command, continuation lines joined
  std::string reply;    // the fenced block that follows it in the doc
  std::string reply_lang;
  int line = 0;         // where it starts in API.md
};

// ```sh blocks: each line starting with `curl` (plus its `\` continuation
// lines) is one example; the next fenced block is the reply of the block's
// last example.
std::vector<Example> extract_examples(const std::string& doc) {
  std::vector<Example> out;
  std::istringstream in(doc);
  std::string line, lang, block;
  bool in_fence = false;
  int n = 0, fence_start = 0;
  std::vector<Example> pending;  // examples of the sh block just closed
  while (std::getline(in, line)) {
    ++n;
    if (line.rfind("```", 0) == 0) {
      if (!in_fence) {
        in_fence = true;
        lang = line.substr(3);
        block.clear();
        fence_start = n;
        continue;
      }
      in_fence = false;
      if (lang == "sh") {
        std::istringstream b(block);
        std::string l;
        int k = fence_start;
        for (Example* cur = nullptr; std::getline(b, l);) {
          ++k;
          if (cur) {
            cur->command += "\n" + l;
          } else if (l.rfind("curl ", 0) == 0) {
            pending.push_back({l, "", "", k});
            cur = &pending.back();
          }
          if (cur && (l.empty() || l.back() != '\\')) cur = nullptr;
        }
      } else if (!pending.empty()) {
        pending.back().reply = block;
        pending.back().reply_lang = lang;
        out.insert(out.end(), pending.begin(), pending.end());
        pending.clear();
      }
      continue;
    }
    if (in_fence) block += line + "\n";
  }
  out.insert(out.end(), pending.begin(), pending.end());
  return out;
}

struct ShellRun {
  int code = -1;
  std::string out;
};

// Runs `command` with `shell` (-c), `env` added to ours; stdout captured.
ShellRun sh(const std::string& command, const std::map<std::string, std::string>& env,
            const char* shell = "/bin/sh") {
  ProgramRun run = run_program({shell, "-c", command}, env, /*with_stderr=*/false, 120s);
  return ShellRun{run.code, run.output};
}

std::string read_doc(const std::string& name = "docs/API.md") {
  std::ifstream in(std::string(FORKWATCH_SOURCE_DIR) + "/" + name);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The object whose keys the doc shows: the reply itself, or its first element.
const Json* keyed(const Json& j) {
  if (j.is_object()) return &j;
  if (j.is_array() && !j.empty() && j[0].is_object()) return &j[0];
  return nullptr;
}

}  // namespace

TEST_CASE("docs/API.md has a curl example for every endpoint of the contract", "[integration]") {
  auto examples = extract_examples(read_doc());
  REQUIRE(examples.size() >= 18);
  // (method, path) of CONTRACT.md's REST table.
  const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"GET", R"(/api/health\b)"},
      {"GET", R"(/api/programs\b)"},
      {"POST", R"(/api/workers["' ])"},
      {"GET", R"(/api/workers["' ])"},
      {"GET", R"(/api/workers/\d+["' ])"},
      {"POST", R"(/api/workers/\d+/signal\b)"},
      {"POST", R"(/api/workers/\d+/stop\b)"},
      {"POST", R"(/api/workers/\d+/restart\b)"},
      {"DELETE", R"(/api/workers/\d+["' ])"},
      {"GET", R"(/api/workers/\d+/logs\?stream=)"},
      {"GET", R"(/api/tree\?scope=)"},
      {"GET", R"(/api/processes/\$PID\b)"},
      {"GET", R"(/api/workers/\d+/samples\b)"},
      {"GET", R"(/api/history\?)"},
      {"GET", R"(/api/lifetimes/\d+/threads\b)"},
      {"GET", R"(/api/events\b)"},
      {"GET", R"(/metrics\b)"},
      {"GET", R"(/\?token=)"}};
  for (const auto& [method, path] : endpoints) {
    INFO(method << " " << path);
    const std::regex re(path);
    bool found = false;
    for (const auto& e : examples) {
      const bool is_post = e.command.find("-d ") != std::string::npos || e.command.find("-X POST") != std::string::npos;
      const bool is_delete = e.command.find("-X DELETE") != std::string::npos;
      const std::string m = is_delete ? "DELETE" : is_post ? "POST" : "GET";
      if (m == method && std::regex_search(e.command, re)) found = true;
    }
    CHECK(found);
  }
  for (const auto& e : examples) {
    INFO("API.md:" << e.line << ": " << e.command);
    CHECK(e.command.find("$URL") != std::string::npos);  // no hard-coded address
    CHECK_FALSE(e.reply.empty());                        // each shows what came back
    // A body-less POST without Content-Length makes cpp-httplib wait 5 s.
    if (e.command.find("-X POST") != std::string::npos) CHECK(e.command.find("-d ") != std::string::npos);
  }
}

TEST_CASE("every curl example of docs/API.md succeeds against a live daemon", "[integration]") {
  auto examples = extract_examples(read_doc());
  REQUIRE_FALSE(examples.empty());
  // --allow-commands: the doc shows a raw command start too.
  Daemon d({.args = {"--allow-commands", "--sample-ms", "200"}});
  std::map<std::string, std::string> env = {{"URL", d.url()}, {"TOKEN", d.token()}, {"PID", "1"}};
  for (const auto& e : examples) {
    INFO("API.md:" << e.line << ": " << e.command);
    // $PID is the process of worker 1 (the doc's first worker) when it runs.
    auto w1 = d.get("/api/workers/1");
    if (w1.status == 200 && w1.json()["pid"].is_number()) env["PID"] = std::to_string(w1.json()["pid"].get<int>());
    // Some examples read what an earlier one started: let it get going first.
    if (e.command.find("/logs") != std::string::npos)
      wait_until([&] { return d.get("/api/workers/1/logs").json()["lines"].size() > 0; });
    if (e.command.find("/samples") != std::string::npos)
      wait_until([&] { return d.get("/api/workers/1/samples").json()["samples"].size() > 0; });
    if (e.command.find("/api/processes/") != std::string::npos)
      wait_until([&] { return d.get("/api/processes/" + env["PID"]).status == 200; });
    // Lifetime 1 (worker 1's process) is stored once it has lived 100 ms.
    if (e.command.find("/threads") != std::string::npos)
      wait_until([&] { return d.get("/api/lifetimes/1/threads").status == 200; });
    if (e.command.find("/api/history") != std::string::npos)
      wait_until([&] { return d.get("/api/history").json()["rows"].size() > 0; });
    auto r = sh(e.command, env);
    INFO("output: " << r.out.substr(0, 2000));
    if (e.command.find("--max-time") != std::string::npos) {
      // A stream ended by curl's own timer: exit 28, after it printed events.
      CHECK((r.code == 0 || r.code == 28));
      CHECK(r.out.find("id: ") != std::string::npos);
      continue;
    }
    CHECK(r.code == 0);
    if (e.reply_lang != "json") continue;
    auto shown = Json::parse(e.reply, nullptr, false);
    INFO("reply shown in the doc: " << e.reply);
    REQUIRE_FALSE(shown.is_discarded());
    auto real = Json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(real.is_discarded());
    const Json* doc_obj = keyed(shown);
    const Json* real_obj = keyed(real);
    if (!doc_obj) continue;
    REQUIRE(real_obj != nullptr);
    for (const auto& [key, value] : doc_obj->items()) {
      INFO("field " << key);
      CHECK(real_obj->contains(key));
    }
  }
  CHECK(d.get("/api/health").status == 200);
}

namespace {

// The ```sh block under `heading` in `doc`.
std::string sh_block_under(const std::string& doc, const std::string& heading) {
  const size_t h = doc.find("\n" + heading + "\n");
  REQUIRE(h != std::string::npos);
  const size_t open = doc.find("```sh\n", h);
  REQUIRE(open != std::string::npos);
  const size_t close = doc.find("\n```", open + 6);
  REQUIRE(close != std::string::npos);
  return doc.substr(open + 6, close - open - 6 + 1);
}

}  // namespace

TEST_CASE("README.md's curl walk-through runs as written against the example config", "[integration]") {
  // The walk-through reads ~/.local/state/forkwatch/token: the daemon's
  // state dir is exactly there, under a HOME of our own.
  const std::string home = make_temp_dir("fw-readme-home");
  const std::string state = home + "/.local/state/forkwatch";
  std::filesystem::create_directories(state);
  std::ifstream example(std::string(FORKWATCH_SOURCE_DIR) + "/docs/examples/programs.json");
  std::stringstream config;
  config << example.rdbuf();
  Daemon d({.config = config.str(), .state_dir = state});

  // Each command line gets a marker after it, so each step's reply can be
  // told apart; the one change to the text: the port, and a bound on the
  // live event stream (a person ends it with Ctrl-C).
  const std::string block = sh_block_under(read_doc("README.md"), "## A walk-through with curl");
  std::istringstream lines(block);
  std::string script = "set -u\n";
  std::vector<std::string> steps;
  for (std::string line; std::getline(lines, line);) {
    for (size_t at; (at = line.find("http://127.0.0.1:7420")) != std::string::npos;)
      line.replace(at, 21, d.url());
    if (line.find("curl -sN") != std::string::npos) line.replace(line.find("curl -sN"), 8, "curl -sN --max-time 4");
    script += line + "\n";
    if (line.empty() || line[0] == '#') continue;
    steps.push_back(line);
    script += "echo; echo '@@step " + std::to_string(steps.size()) + "'\n";
  }
  auto r = sh(script, {{"HOME", home}}, "/bin/bash");
  INFO("script:\n" << script << "\noutput (head):\n" << r.out.substr(0, 2000));
  CHECK(r.code == 0);
  // The output of step i: what came before its marker, after the one before.
  std::map<std::string, std::string> reply;  // the step's first word or URL part -> its output
  std::vector<std::string> outs;
  size_t from = 0;
  for (size_t i = 1; i <= steps.size(); ++i) {
    const std::string marker = "@@step " + std::to_string(i) + "\n";
    const size_t at = r.out.find(marker, from);
    REQUIRE(at != std::string::npos);
    outs.push_back(r.out.substr(from, at - from));
    from = at + marker.size();
  }
  auto out_of = [&](const std::string& needle) {
    for (size_t i = 0; i < steps.size(); ++i)
      if (steps[i].find(needle) != std::string::npos) return outs[i];
    FAIL("no step of the walk-through has " << needle);
    return std::string();
  };
  auto programs = Json::parse(out_of("/api/programs"));
  std::vector<std::string> names;
  for (const auto& p : programs["programs"]) names.push_back(p["name"]);
  CHECK(std::find(names.begin(), names.end(), "echo") != names.end());
  CHECK(std::find(names.begin(), names.end(), "exit-with") != names.end());
  auto started = Json::parse(out_of("echo \"$reply\""));
  const int64_t id = started["id"];
  CHECK(started["program"] == "exit-with");
  CHECK(id > 3);  // the example config's three programs came first: the walk-through must not assume 2
  for (const char* sig : {"SIGSTOP", "SIGCONT"}) {
    INFO(sig);
    auto j = Json::parse(out_of(sig));
    CHECK_FALSE(j.contains("error"));
    CHECK(j["id"] == id);
  }
  const std::string events = out_of("/api/events");
  CHECK(events.find("event: exit") != std::string::npos);
  auto history = Json::parse(out_of("/api/history"));
  bool stopped = false, continued = false, exited_12 = false;
  for (const auto& row : history["rows"]) {
    CHECK(row["worker_id"] == id);
    stopped |= row["wifstopped"] == true;
    continued |= row["wifcontinued"] == true;
    exited_12 |= row["wifexited"] == true && row["wexitstatus"] == 12;
  }
  CHECK(stopped);
  CHECK(continued);
  CHECK(exited_12);
  CHECK(Json::parse(out_of("/api/tree")).is_array());
  auto stop = Json::parse(out_of("/stop"));
  CHECK(stop["id"] == id);
  CHECK_FALSE(stop.contains("error"));
  REQUIRE(d.wait_state(id, "stopped"));
  d.terminate();
  std::filesystem::remove_all(home);
}
