// docs/API.md cannot rot: every curl example in its ```sh blocks is run, in
// document order, with /bin/sh against a live daemon (URL, TOKEN and PID
// exported), and must exit 0 (`curl -sf` fails on any status >= 400). Each
// example is followed by its reply; a JSON reply must parse, and every field
// it shows must still be in what the daemon answers now.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
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

// Runs `command` with /bin/sh, `env` added to ours; stdout captured.
ShellRun sh(const std::string& command, const std::map<std::string, std::string>& env) {
  int p[2];
  REQUIRE(pipe(p) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(p[1]);
  ShellRun r;
  char buf[8192];
  for (ssize_t k; (k = read(p[0], buf, sizeof buf)) > 0;) r.out.append(buf, static_cast<size_t>(k));
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string read_doc() {
  std::ifstream in(std::string(FORKWATCH_SOURCE_DIR) + "/docs/API.md");
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
