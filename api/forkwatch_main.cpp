// forkwatch: the command-line client of forkwatchd's REST API. Parses the
// command line, sends one request (or follows a stream), and prints a table
// for people or the daemon's JSON for scripts. Exit codes: 0 done, 1 the
// daemon said no, 2 bad usage, 3 the daemon could not be reached.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client_format.h"
#include "client_http.h"
#include "event.h"
#include "parse_number.h"

namespace {

using nlohmann::json;
using namespace forkwatch::client;

constexpr int kExitOk = 0, kExitRefused = 1, kExitUsage = 2, kExitUnreachable = 3;
constexpr const char* kDefaultUrl = "http://127.0.0.1:7420";

constexpr const char* kUsage = R"(usage: forkwatch [OPTIONS] COMMAND [ARGS...]

Talks to forkwatchd over its REST API.

Options (before or after the command, but before start's PROGRAM):
  --socket PATH      the daemon's Unix socket (default $FORKWATCH_SOCKET); the
                     kernel tells the daemon who you are, so no token is needed.
                     Without --url, --socket or either variable, the first of
                     /run/forkwatch/forkwatch.sock and <state dir>/forkwatch.sock
                     that answers is used, else the URL below
  --url URL          the daemon (default $FORKWATCH_URL, else http://127.0.0.1:7420)
  --token T          bearer token (default $FORKWATCH_TOKEN)
  --token-file F     read the token from F (default $XDG_STATE_HOME/forkwatch/token,
                     else ~/.local/state/forkwatch/token, else /var/lib/forkwatch/token)
  --cacert F         for an https:// URL: the certificate (PEM) the daemon must
                     present (default $FORKWATCH_CACERT, else the system's CA store)
  --json             print the daemon's JSON instead of tables
  --raw              print names, argv and output exactly as they are; by default
                     control characters (C0, DEL, C1) and bidi controls in them are
                     shown escaped (\x1b, \u202e) so that nothing a worker prints
                     or is named can drive the terminal; with --json, --raw keeps
                     non-ASCII text as UTF-8 instead of \uXXXX escapes
  -h, --help         this text

Commands:
  status                         every worker: ID NAME STATE PID RESTARTS UPTIME LAST EXIT
  show ID                        one worker with its recent exits (JSON)
  programs                       the catalogue that start picks from
  start [OPTS] PROGRAM [ARGS...] start a worker; everything after PROGRAM is its argv
      --name N  --restart no|on-failure|always  --restart-delay-ms N  --max-restarts N
      --stop-signal SIG  --stop-timeout-ms N  --env K=V (repeatable)  --cwd DIR
      --command          PROGRAM ARGS is a raw argv (the daemon needs --allow-commands)
  stop ID [--no-wait]            stop a worker (and wait until it has); it is not restarted
  restart ID [--no-wait]         stop, then start again
  signal ID SIG                  send SIG (SIGSTOP, STOP, 19) to the worker's process group
  rm ID [--no-wait]              stop a worker and forget it (its history stays)
  logs ID [-f] [--stream stdout|stderr] [--tail N]
                                 captured output; -f follows until Ctrl-C
  history [--worker ID] [--pid P] [--limit N] [--before ROW]
                                 wait statuses, newest first, decoded in words
  events [--since ID] [--samples]
                                 live events, one line each, until Ctrl-C
  tree [--all]                   the process and thread tree (--all: every process)

Exit status: 0 done, 1 the daemon refused (its message is printed), 2 bad usage,
3 the daemon could not be reached.
)";

[[noreturn]] void usage_error(const std::string& line) {
  std::cerr << "forkwatch: " << line << "\nTry 'forkwatch --help'.\n";
  std::exit(kExitUsage);
}

struct Options {
  std::string url;
  std::string token;
  std::string token_file;
  std::string socket;
  std::string cacert;
  bool token_given = false;
  bool json = false;
  bool raw = false;
};

// A cursor over the arguments that recognises the global options wherever
// they appear, so `forkwatch status --json` works as well as `forkwatch --json status`.
class Args {
 public:
  Args(std::vector<std::string> args, Options& opt) : args_(std::move(args)), opt_(opt) {}

  // The next argument that is not a global option, or nullopt at the end.
  std::optional<std::string> next() {
    while (i_ < args_.size()) {
      std::string a = args_[i_++];
      if (!global(a)) return a;
    }
    return std::nullopt;
  }
  // The value of option `name` (`--name V` or `--name=V`).
  std::string value(const std::string& name, const std::string& arg) {
    if (auto eq = arg.find('='); eq != std::string::npos) return arg.substr(eq + 1);
    if (i_ >= args_.size()) usage_error(name + " needs a value");
    return args_[i_++];
  }
  // Everything left, untouched (start's program arguments).
  std::vector<std::string> rest() {
    std::vector<std::string> out(args_.begin() + static_cast<std::ptrdiff_t>(i_), args_.end());
    i_ = args_.size();
    return out;
  }

 private:
  bool global(const std::string& a) {
    auto is = [&](const char* n) { return a == n || a.rfind(std::string(n) + "=", 0) == 0; };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(kExitOk);
    }
    if (a == "--json") opt_.json = true;
    else if (a == "--raw") opt_.raw = true;
    else if (is("--url")) opt_.url = value("--url", a);
    else if (is("--token")) {
      opt_.token = value("--token", a);
      opt_.token_given = true;
    } else if (is("--token-file")) opt_.token_file = value("--token-file", a);
    else if (is("--socket")) opt_.socket = value("--socket", a);
    else if (is("--cacert")) opt_.cacert = value("--cacert", a);
    else return false;
    return true;
  }

  std::vector<std::string> args_;
  size_t i_ = 0;
  Options& opt_;
};

bool is_option(const std::string& a) { return a.size() > 1 && a[0] == '-'; }

std::optional<int64_t> to_int(const std::string& s) { return forkwatch::parse_decimal<int64_t>(s); }

int64_t int_arg(const std::string& what, const std::string& text, int64_t min) {
  auto v = to_int(text);
  if (!v || *v < min)
    usage_error(what + " must be an integer" + (min > 0 ? " >= " + std::to_string(min) : std::string(" >= 0")) +
                ", got '" + text + "'");
  return *v;
}

std::string worker_id_arg(const std::string& command, const std::optional<std::string>& a) {
  if (!a) usage_error(command + ": needs a worker ID (see 'forkwatch status')");
  if (is_option(*a)) usage_error(command + ": unknown option '" + *a + "'");
  return std::to_string(int_arg(command + ": the worker ID", *a, 1));
}

void no_more(Args& args, const std::string& command) {
  if (auto extra = args.next()) usage_error(command + ": unexpected argument '" + *extra + "'");
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::optional<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return trim(line);
}

// --token, else --token-file, else $FORKWATCH_TOKEN, else the daemon's default token file.
std::string resolve_token(const Options& opt) {
  if (opt.token_given) return opt.token;
  if (!opt.token_file.empty()) {
    auto t = read_token_file(opt.token_file);
    if (!t) usage_error("--token-file " + opt.token_file + ": cannot read it");
    return *t;
  }
  if (const char* t = getenv("FORKWATCH_TOKEN"); t && *t) return t;
  std::vector<std::string> candidates;
  if (const char* x = getenv("XDG_STATE_HOME"); x && *x) candidates.push_back(std::string(x) + "/forkwatch/token");
  if (const char* h = getenv("HOME"); h && *h) candidates.push_back(std::string(h) + "/.local/state/forkwatch/token");
  candidates.push_back("/var/lib/forkwatch/token");  // the systemd unit's StateDirectory
  for (const auto& c : candidates)
    if (auto t = read_token_file(c)) return *t;
  return "";
}

// The daemon's Unix socket in its default places (systemd's RuntimeDirectory,
// else the default state dir), if one accepts a connection; else "".
std::string answering_default_socket() {
  std::vector<std::string> candidates{"/run/forkwatch/forkwatch.sock"};
  if (const char* x = getenv("XDG_STATE_HOME"); x && *x) candidates.push_back(std::string(x) + "/forkwatch/forkwatch.sock");
  else if (const char* h = getenv("HOME"); h && *h) candidates.push_back(std::string(h) + "/.local/state/forkwatch/forkwatch.sock");
  for (const auto& path : candidates) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) continue;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok) return path;
  }
  return "";
}

class Session {
 public:
  // An empty `socket`: over TCP at `url`; else over that Unix socket.
  Session(std::string url, std::string token, std::string socket, bool json, bool raw, std::string cacert = "")
      : url_(socket.empty() ? std::move(url) : "unix:" + socket),
        has_token_(!token.empty() || !socket.empty()),
        json_(json),
        raw_(raw),
        api_(socket.empty() ? url_ : socket, std::move(token), !socket.empty(), std::move(cacert)) {}

  bool json_output() const { return json_; }
  bool raw() const { return raw_; }
  // Untrusted text for the terminal (client_format.h's shown()).
  std::string shown(const std::string& text) const { return forkwatch::client::shown(text, raw_); }
  std::string text_of(const json& j, const char* key, const std::string& fallback) const {
    return forkwatch::client::text_or(j, key, fallback, raw_);
  }
  // JSON for the terminal: \uXXXX for everything beyond ASCII (C1 and bidi
  // controls included) unless --raw; the same JSON to any parser.
  std::string dumped(const json& j, int indent = -1) const {
    return j.dump(indent, ' ', !raw_, json::error_handler_t::replace);
  }
  ApiClient& api() { return api_; }

  // A successful reply's JSON, or the process exits 1 or 3 with the reason.
  json expect(const Reply& r) {
    check(r);
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_discarded()) {
      std::cerr << "forkwatch: the daemon answered something that is not JSON (HTTP " << r.status << ")\n";
      std::exit(kExitRefused);
    }
    return j;
  }

  void check(const Reply& r) {
    if (r.status == 0) unreachable(r.transport);
    if (r.ok()) return;
    std::string message = "HTTP " + std::to_string(r.status), code;
    auto j = json::parse(r.body, nullptr, false);
    if (!j.is_discarded() && j.contains("error") && j["error"].is_object()) {
      message = j["error"].value("message", message);
      code = j["error"].value("code", "");
    }
    std::cerr << "forkwatch: " << shown(message) << " (" << r.status << (code.empty() ? "" : " " + shown(code)) << ")\n";
    if (r.status == 401 && !has_token_)
      std::cerr << "forkwatch: no token was given: use --token, --token-file or FORKWATCH_TOKEN\n";
    std::exit(kExitRefused);
  }

  [[noreturn]] void unreachable(const std::string& why) {
    std::cerr << "forkwatch: cannot reach forkwatchd at " << shown(url_) << " (" << why
              << "); is it running? Set --url or FORKWATCH_URL, or --socket or FORKWATCH_SOCKET\n";
    std::exit(kExitUnreachable);
  }

  void print(const json& j) { std::cout << dumped(j, 2) << std::endl; }

 private:
  std::string url_;
  bool has_token_;
  bool json_;
  bool raw_;
  ApiClient api_;
};

// The connection, made on first use: options may follow the command, so a
// command parses all its arguments before it asks for the session.
class Context {
 public:
  explicit Context(Options& opt) : opt_(opt) {}
  Session& session() {
    if (!session_) {
      std::string socket = opt_.socket;
      if (socket.empty())
        if (const char* env = getenv("FORKWATCH_SOCKET"); env && *env) socket = env;
      const char* url_env = getenv("FORKWATCH_URL");
      if (socket.empty() && opt_.url.empty() && !(url_env && *url_env) && !opt_.token_given &&
          opt_.token_file.empty())
        socket = answering_default_socket();
      if (!socket.empty()) {
        session_.emplace("", "", socket, opt_.json, opt_.raw);
        return *session_;
      }
      std::string url = opt_.url;
      if (url.empty()) {
        const char* env = getenv("FORKWATCH_URL");
        url = env && *env ? env : kDefaultUrl;
      }
      while (!url.empty() && url.back() == '/') url.pop_back();
      if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
        usage_error("the URL must start with http:// or https://, got '" + url + "'");
      std::string cacert = opt_.cacert;
      if (cacert.empty())
        if (const char* env = getenv("FORKWATCH_CACERT"); env && *env) cacert = env;
      session_.emplace(url, resolve_token(opt_), "", opt_.json, opt_.raw, cacert);
    }
    return *session_;
  }

 private:
  Options& opt_;
  std::optional<Session> session_;
};

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted = true; }

// SIGINT and SIGTERM end a follow loop cleanly (exit 0) instead of killing us.
void catch_interrupts() {
  struct sigaction sa{};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Sleeps up to `ms`, returning early once interrupted.
void nap(int ms) {
  for (int slept = 0; slept < ms && !g_interrupted; slept += 20)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

int cmd_status(Context& ctx, Args& args) {
  no_more(args, "status");
  Session& s = ctx.session();
  json j = s.expect(s.api().get("/api/workers"));
  if (s.json_output()) return s.print(j), kExitOk;
  if (j["workers"].empty()) {
    std::cout << "no workers (start one with: forkwatch start PROGRAM)\n";
    return kExitOk;
  }
  std::cout << render_workers(j["workers"], forkwatch::realtime_ns(), s.raw());
  return kExitOk;
}

int cmd_show(Context& ctx, Args& args) {
  const std::string id = worker_id_arg("show", args.next());
  no_more(args, "show");
  Session& s = ctx.session();
  s.print(s.expect(s.api().get("/api/workers/" + id)));
  return kExitOk;
}

int cmd_programs(Context& ctx, Args& args) {
  no_more(args, "programs");
  Session& s = ctx.session();
  json j = s.expect(s.api().get("/api/programs"));
  if (s.json_output()) return s.print(j), kExitOk;
  std::cout << render_programs(j["programs"], s.raw());
  return kExitOk;
}

int cmd_start(Context& ctx, Args& args) {
  json req = json::object();
  bool raw_command = false;
  std::optional<std::string> program;
  while (auto a = args.next()) {
    const std::string& o = *a;
    auto is = [&](const char* n) { return o == n || o.rfind(std::string(n) + "=", 0) == 0; };
    if (o == "--") {
      program = args.next();
      break;
    }
    if (!is_option(o)) {
      program = o;
      break;
    }
    if (is("--name")) req["name"] = args.value("--name", o);
    else if (is("--restart")) {
      std::string v = args.value("--restart", o);
      if (v != "no" && v != "on-failure" && v != "always")
        usage_error("start: --restart must be no, on-failure or always, got '" + v + "'");
      req["restart"] = v;
    } else if (is("--restart-delay-ms")) req["restart_delay_ms"] = int_arg("--restart-delay-ms", args.value("--restart-delay-ms", o), 0);
    else if (is("--max-restarts")) req["max_restarts"] = int_arg("--max-restarts", args.value("--max-restarts", o), 0);
    else if (is("--stop-timeout-ms")) req["stop_timeout_ms"] = int_arg("--stop-timeout-ms", args.value("--stop-timeout-ms", o), 0);
    else if (is("--stop-signal")) req["stop_signal"] = args.value("--stop-signal", o);
    else if (is("--cwd")) req["cwd"] = args.value("--cwd", o);
    else if (is("--env")) {
      std::string kv = args.value("--env", o);
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) usage_error("start: --env needs KEY=VALUE, got '" + kv + "'");
      req["env"][kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (o == "--command") raw_command = true;
    else usage_error("start: unknown option '" + o + "' (options go before PROGRAM)");
  }
  if (!program) usage_error("start: needs a PROGRAM (see 'forkwatch programs')");
  std::vector<std::string> argv = args.rest();
  if (raw_command) {
    argv.insert(argv.begin(), *program);
    req["command"] = argv;
  } else {
    req["program"] = *program;
    if (!argv.empty()) req["args"] = argv;
  }
  Session& s = ctx.session();
  json w = s.expect(s.api().post("/api/workers", forkwatch::dump_json(req)));
  if (s.json_output()) return s.print(w), kExitOk;
  std::cout << "started worker " << w.value("id", 0) << " (" << s.text_of(w, "name", "-") << ")";
  if (int64_t pid = int_or(w, "pid", 0); pid > 0) std::cout << " pid " << pid;
  std::cout << ", " << s.text_of(w, "state", "?") << "\n";
  return kExitOk;
}

void print_worker_line(const Session& s, const json& w, const std::string& verb) {
  std::cout << s.shown(verb) << " worker " << w.value("id", 0) << " (" << s.text_of(w, "name", "-") << "): "
            << s.text_of(w, "state", "?");
  if (int64_t pid = int_or(w, "pid", 0); pid > 0) std::cout << ", pid " << pid;
  std::cout << "\n";
}

// stop, restart and rm answer at once, while the worker may still be
// stopping; like `supervisorctl stop`, wait (bounded) until it has settled.
constexpr auto kSettleTimeout = std::chrono::seconds(30);

int cmd_action(Context& ctx, Args& args, const std::string& command) {
  std::optional<std::string> id;
  bool wait = true;
  while (auto a = args.next()) {
    if (*a == "--no-wait") wait = false;
    else if (!id) id = worker_id_arg(command, a);
    else usage_error(command + ": unexpected argument '" + *a + "'");
  }
  if (!id) usage_error(command + ": needs a worker ID (see 'forkwatch status')");
  Session& s = ctx.session();
  const std::string path = "/api/workers/" + *id;
  Reply r = command == "rm" ? s.api().del(path) : s.api().post(path + "/" + command, "{}");
  json w = s.expect(r);
  const std::string first_state = str_or(w, "state", "");
  const int64_t first_pid = int_or(w, "pid", 0);
  auto settled = [&](const json& now) {
    const std::string st = str_or(now, "state", "");
    if (st == "stopping" || st == "starting") return false;
    // A restart answered "stopping": settled once the old process is replaced.
    return !(command == "restart" && first_state == "stopping" && int_or(now, "pid", 0) == first_pid);
  };
  bool gone = false;
  const auto deadline = std::chrono::steady_clock::now() + kSettleTimeout;
  while (wait && !gone && !settled(w) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    Reply now = s.api().get(path);
    if (now.status == 404 && command == "rm") gone = true;
    else w = s.expect(now);
  }
  if (command == "rm" && wait && !gone && settled(w)) {
    // Stopped but still listed for a moment: removal follows the stop.
    while (!gone && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      Reply now = s.api().get(path);
      if (now.status == 404) gone = true;
      else s.check(now);
    }
  }
  if (s.json_output()) return s.print(w), kExitOk;
  if (command == "rm") {
    if (gone) std::cout << "removed worker " << *id << " (" << s.text_of(w, "name", "-") << ")\n";
    else print_worker_line(s, w, "removing");
    return kExitOk;
  }
  print_worker_line(s, w, command == "stop" ? "stopped" : "restarted");
  return kExitOk;
}

int cmd_signal(Context& ctx, Args& args) {
  const std::string id = worker_id_arg("signal", args.next());
  auto sig = args.next();
  if (!sig) usage_error("signal: needs a signal, e.g. 'forkwatch signal " + id + " SIGSTOP'");
  no_more(args, "signal");
  Session& s = ctx.session();
  json body;
  if (auto n = to_int(*sig)) body["signal"] = *n;
  else body["signal"] = *sig;
  json w = s.expect(s.api().post("/api/workers/" + id + "/signal", forkwatch::dump_json(body)));
  if (s.json_output()) return s.print(w), kExitOk;
  print_worker_line(s, w, "sent " + *sig + " to");
  return kExitOk;
}

int cmd_logs(Context& ctx, Args& args) {
  std::optional<std::string> id;
  std::string stream, tail;
  bool follow = false;
  while (auto a = args.next()) {
    auto is = [&](const char* n) { return *a == n || a->rfind(std::string(n) + "=", 0) == 0; };
    if (*a == "-f" || *a == "--follow") follow = true;
    else if (is("--stream")) {
      stream = args.value("--stream", *a);
      if (stream != "stdout" && stream != "stderr") usage_error("logs: --stream must be stdout or stderr, got '" + stream + "'");
    } else if (is("--tail")) tail = std::to_string(int_arg("logs: --tail", args.value("--tail", *a), 1));
    else if (is_option(*a)) usage_error("logs: unknown option '" + *a + "'");
    else if (!id) id = worker_id_arg("logs", a);
    else usage_error("logs: unexpected argument '" + *a + "'");
  }
  if (!id) usage_error("logs: needs a worker ID (see 'forkwatch status')");
  Session& s = ctx.session();
  const std::string base = "/api/workers/" + *id + "/logs?" + (stream.empty() ? "" : "stream=" + stream + "&");
  int64_t last_seq = 0;
  // Lines go to the stream they came from, as `docker logs` does.
  auto show = [&](const json& lines) {
    for (const auto& l : lines) {
      last_seq = std::max(last_seq, int_or(l, "seq", 0));
      if (s.json_output() && follow) std::cout << s.dumped(l) << "\n";
      else if (!s.json_output()) (str_or(l, "stream", "") == "stderr" ? std::cerr : std::cout) << s.text_of(l, "text", "") << "\n";
    }
    std::cout.flush();
  };
  if (follow) catch_interrupts();
  json first = s.expect(s.api().get(base + (tail.empty() ? "" : "tail=" + tail)));
  if (s.json_output() && !follow) return s.print(first), kExitOk;
  show(first["lines"]);
  while (follow && !g_interrupted) {
    nap(250);
    if (g_interrupted) break;
    // The ring's whole size: every line since the last one seen.
    Reply r = s.api().get(base + "tail=2000&after=" + std::to_string(last_seq));
    if (g_interrupted) break;
    show(s.expect(r)["lines"]);
  }
  return kExitOk;
}

int cmd_history(Context& ctx, Args& args) {
  std::string query;
  while (auto a = args.next()) {
    bool known = false;
    for (const char* name : {"worker", "pid", "limit", "before"}) {
      const std::string flag = std::string("--") + name;
      if (*a == flag || a->rfind(flag + "=", 0) == 0) {
        query += (query.empty() ? "?" : "&") + std::string(name) + "=" +
                 std::to_string(int_arg("history: " + flag, args.value(flag, *a), 1));
        known = true;
      }
    }
    if (!known) usage_error("history: unexpected argument '" + *a + "'");
  }
  Session& s = ctx.session();
  json j = s.expect(s.api().get("/api/history" + query));
  if (s.json_output()) return s.print(j), kExitOk;
  std::cout << render_history(j["rows"]);
  return kExitOk;
}

int cmd_events(Context& ctx, Args& args) {
  std::string since;
  bool samples = false;
  while (auto a = args.next()) {
    if (*a == "--since" || a->rfind("--since=", 0) == 0) since = std::to_string(int_arg("events: --since", args.value("--since", *a), 0));
    else if (*a == "--samples") samples = true;
    else usage_error("events: unexpected argument '" + *a + "'");
  }
  Session& s = ctx.session();
  // The stream runs on its own thread; this one waits for SIGINT/SIGTERM and
  // then aborts it, because a blocked read would not notice a flag.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  std::atomic<bool> done{false}, stopping{false};
  const bool as_json = s.json_output();
  Reply result;
  std::thread reader([&] {
    SseParser parser([&](const std::string& id, const std::string& type, const std::string& data) {
      if (type == "sample" && !samples) return !stopping;
      json d = json::parse(data, nullptr, false);
      if (as_json && s.raw()) std::cout << data << std::endl;
      else if (as_json) std::cout << (d.is_discarded() ? s.shown(data) : s.dumped(d)) << std::endl;
      else std::cout << render_event(type, id, d.is_discarded() ? json::object() : d, s.raw()) << std::endl;
      return !stopping.load();
    });
    Headers h;
    if (!since.empty()) h.emplace("Last-Event-ID", since);
    // Heartbeats come every 15 s; a minute of silence means the daemon is gone.
    result = s.api().stream("/api/events", h, std::chrono::seconds(60),
                            [&](const char* d, size_t n) { return parser.feed(d, n) && !stopping; });
    done = true;
  });
  const timespec tick{0, 100'000'000};
  while (!done) {
    if (sigtimedwait(&mask, nullptr, &tick) > 0) {
      stopping = true;
      s.api().stop();
      break;
    }
  }
  reader.join();
  if (stopping) return kExitOk;
  s.check(result);
  std::cerr << "forkwatch: the daemon closed the event stream\n";
  return kExitUnreachable;
}

int cmd_tree(Context& ctx, Args& args) {
  bool all = false;
  while (auto a = args.next()) {
    if (*a == "--all") all = true;
    else usage_error("tree: unexpected argument '" + *a + "'");
  }
  Session& s = ctx.session();
  json j = s.expect(s.api().get(std::string("/api/tree?scope=") + (all ? "all" : "supervised")));
  if (s.json_output()) return s.print(j), kExitOk;
  std::cout << render_tree(j, s.raw());
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  Args args(std::vector<std::string>(argv + 1, argv + argc), opt);
  auto command = args.next();
  if (!command) usage_error("a command is needed (status, start, stop, logs, ...)");
  Context ctx(opt);
  const std::string& c = *command;
  if (c == "help") return std::cout << kUsage, kExitOk;
  if (c == "status") return cmd_status(ctx, args);
  if (c == "show") return cmd_show(ctx, args);
  if (c == "programs") return cmd_programs(ctx, args);
  if (c == "start") return cmd_start(ctx, args);
  if (c == "stop" || c == "restart" || c == "rm") return cmd_action(ctx, args, c);
  if (c == "signal") return cmd_signal(ctx, args);
  if (c == "logs") return cmd_logs(ctx, args);
  if (c == "history") return cmd_history(ctx, args);
  if (c == "events") return cmd_events(ctx, args);
  if (c == "tree") return cmd_tree(ctx, args);
  usage_error(is_option(c) ? "unknown option '" + c + "'" : "unknown command '" + c + "'");
}
