// forkwatchd: parses flags, blocks signals before any thread exists, opens the
// store, starts the API, and runs the supervisor's loop on the main thread.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "auth.h"
#include "config.h"
#include "event_hub.h"
#include "flags.h"
#include "history.h"
#include "log.h"
#include "metrics.h"
#include "sampler.h"
#include "sd_notify.h"
#include "server.h"
#include "socket_activation.h"
#include "store.h"
#include "supervisor.h"

extern char** environ;

// Debian builds cpp-httplib with OpenSSL, and the library initialises OpenSSL
// as it is loaded: it reads openssl.cnf, activates its providers and loads
// every error string, about 2 MiB of the daemon's resident memory (measured:
// VmRSS 11.7 -> 9.6 MiB with 100 workers; bench/RESULTS.md). forkwatchd
// serves plain HTTP and makes no TLS connection, so that call is answered
// here: the executable's definition takes precedence over libssl's in the
// dynamic linker's lookup. If TLS is ever served, delete this.
extern "C" int OPENSSL_init_ssl(uint64_t /*opts*/, const OPENSSL_INIT_SETTINGS* /*settings*/) { return 1; }

namespace fw = forkwatch;
namespace fs = std::filesystem;

namespace {

// One line on stderr (with its journal priority under systemd), then exit.
[[noreturn]] void die(int code, const std::string& line) {
  fw::log::error(line);
  std::exit(code);
}

// STATUS= text for systemctl status: workers per state, e.g.
// "3 running, 1 backoff" (states in lifecycle order, zero counts left out).
std::string status_text(const fw::Snapshot& s) {
  static const char* const kStates[] = {"starting", "running", "stopping", "backoff",
                                        "exited",   "stopped", "fatal"};
  std::map<std::string, int> counts;
  for (const auto& w : s.workers) ++counts[w.state];
  std::string text;
  for (const char* state : kStates) {
    auto it = counts.find(state);
    if (it == counts.end()) continue;
    text += (text.empty() ? "" : ", ") + std::to_string(it->second) + " " + state;
  }
  return text.empty() ? "no workers" : text;
}

// Test-only (docs/operations.md): FORKWATCH_TEST_HOLD_LOOP names a FIFO; an
// "h" written to it holds the loop thread inside its handler, as a wedged
// handler would, until an "r" arrives (or 60 s pass). The watchdog tests use
// it to show that pings come from the loop. Never reachable over the API.
void install_loop_hold_hook(fw::EventLoop& loop, fw::Fd& fifo) {
  const char* path = getenv("FORKWATCH_TEST_HOLD_LOOP");
  if (!path || !*path) return;
  // O_RDWR: we are a writer too, so the FIFO never reports hang-up.
  fifo = fw::Fd(open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC));
  unsetenv("FORKWATCH_TEST_HOLD_LOOP");
  if (!fifo) die(2, std::string("FORKWATCH_TEST_HOLD_LOOP ") + path + ": " + strerror(errno));
  const int fd = fifo.get();
  auto st = loop.add(fd, [fd](uint32_t) {
    char c = 0;
    while (read(fd, &c, 1) == 1) {
      if (c != 'h') continue;
      fw::log::warning("test hook: loop thread held");
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      for (c = 0; c != 'r' && std::chrono::steady_clock::now() < deadline;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 1000) == 1 && read(fd, &c, 1) != 1) c = 0;
      }
      fw::log::warning("test hook: loop thread released");
    }
  });
  if (!st) die(1, st.error().message());
}

std::map<std::string, std::string> environment_map() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

std::string self_dir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

// The state dir must exist (we create it 0700) and be writable by us.
void ensure_state_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) die(2, "state dir " + dir + ": cannot create: " + ec.message());
  if (!fs::is_directory(dir)) die(2, "state dir " + dir + ": not a directory");
  if (access(dir.c_str(), W_OK | X_OK) != 0) die(2, "state dir " + dir + ": not writable: " + strerror(errno));
  fs::create_directories(dir + "/logs", ec);
  if (ec) die(2, "state dir " + dir + "/logs: cannot create: " + ec.message());
}

// FORKWATCH_TOKEN, else the token file, created 0600 with a fresh token if missing.
std::string load_token(const std::string& path) {
  if (const char* t = getenv("FORKWATCH_TOKEN"); t && *t) return t;
  std::ifstream in(path);
  std::string token;
  if (in && std::getline(in, token) && !token.empty()) return token;
  token = fw::generate_token();
  fw::Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) die(2, "token file " + path + ": cannot create: " + strerror(errno));
  std::string line = token + "\n";
  if (write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    die(2, "token file " + path + ": cannot write: " + strerror(errno));
  return token;
}

void write_port_file(const std::string& path, int port) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp);
    out << port << "\n";
    if (!out) die(2, "port file " + path + ": cannot write " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) die(2, "port file " + path + ": rename: " + strerror(errno));
}

std::string pick_dir(const std::vector<std::string>& candidates, const std::string& probe) {
  for (const auto& c : candidates)
    if (!c.empty() && fs::exists(c + "/" + probe)) return c;
  return candidates.empty() ? "" : candidates.back();
}

}  // namespace

int main(int argc, char** argv) {
  fw::log::init();
  auto env = environment_map();
  auto parsed = fw::parse_daemon_flags(std::vector<std::string>(argv + 1, argv + argc), env);
  if (!parsed) die(2, parsed.error().message());
  fw::DaemonFlags flags = *parsed;
  if (flags.help) {
    std::cout << fw::kDaemonUsage;
    return 0;
  }
  if (flags.version) {
    std::cout << "forkwatchd " << FORKWATCH_VERSION << "\n";
    return 0;
  }
  if (flags.no_auth && !fw::is_loopback_host(flags.listen_host))
    die(2, "--no-auth is refused on a non-loopback address (" + flags.listen_host + ")");

  // Every signal we handle is blocked before the first thread starts, so only
  // the loop's signalfd ever sees them. SIGPIPE: a vanished client is an error
  // return, not a death.
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // A supervisor holds three fds per worker: raise the soft fd limit to the
  // hard one. Workers get the original back (select() breaks above 1024).
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  const rlim_t worker_nofile = nofile.rlim_cur;
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) die(1, std::string("prctl(PR_SET_CHILD_SUBREAPER): ") + strerror(errno));

  ensure_state_dir(flags.state_dir);
  const std::string token = flags.no_auth ? "" : load_token(flags.token_file);
  fw::Config config;
  if (!flags.config.empty()) {
    auto c = fw::load_config(flags.config);
    if (!c) die(2, "config " + c.error().message());
    config = *c;
  }
  const std::string exe_dir = self_dir();
  if (flags.workers_dir.empty())
    flags.workers_dir = pick_dir({exe_dir, exe_dir + "/../libexec/forkwatch", FORKWATCH_LIBEXEC_DIR}, "exit-with");
  if (flags.web_dir.empty())
    flags.web_dir = pick_dir({exe_dir + "/../share/forkwatch/web", FORKWATCH_WEB_DIR, FORKWATCH_SOURCE_WEB_DIR},
                             "index.html");

  const std::string db_path = flags.state_dir + "/forkwatch.db";
  auto store = fw::db::Store::open(db_path);
  if (!store) die(2, "database " + store.error().message());
  auto history = fw::db::History::open(db_path);
  if (!history) die(2, "database " + history.error().message());

  fw::Notifier notifier = fw::Notifier::from_environment(fw::process_notify_environment(), getpid());
  fw::unset_notify_environment();
  auto listen_fds = fw::take_listen_fds();
  if (!listen_fds) die(2, "socket activation: " + listen_fds.error().message());
  int activated_fd = -1;
  for (auto& l : *listen_fds)
    if (activated_fd < 0 && fw::is_listening_stream_socket(l.fd.get())) activated_fd = l.fd.release();

  auto loop = fw::EventLoop::create();
  if (!loop) die(1, loop.error().message());
  auto commands = fw::CommandQueue::create();
  if (!commands) die(1, commands.error().message());
  fw::SnapshotBox snapshots;
  fw::SupervisorCounters counters;
  fw::EventHub hub(20000, flags.max_sse_clients);
  fw::Supervisor supervisor(**loop, **commands, snapshots, counters,
                            fw::SupervisorOptions{flags.workers_dir, flags.state_dir + "/logs", flags.max_workers,
                                                  static_cast<int64_t>(worker_nofile)});
  if (auto st = supervisor.init(); !st) die(1, st.error().message());
  supervisor.add_sink(store->get());  // first: an event is queued for SQLite before anyone can see it
  supervisor.add_sink(&hub);
  supervisor.set_last_ids((*store)->last_event_id(), (*store)->last_worker_id());
  fw::Sampler sampler(
      **loop, counters, flags.sample_ms,
      [&supervisor] {
        fw::WorkerTags tags;
        for (auto& [pid, w] : supervisor.worker_pids()) tags[pid] = fw::WorkerTag{w.first, w.second};
        return tags;
      },
      [&supervisor](fw::Event e) { supervisor.emit(std::move(e)); });
  supervisor.set_sampler(&sampler);
  fw::db::Store* store_ptr = store->get();
  supervisor.set_persist([store_ptr](const fw::PersistedWorker& p, bool removed) {
    fw::db::WorkerRow row;
    row.id = p.id;
    row.name = p.name;
    row.program = p.program;
    row.spec = fw::program_to_json(p.spec);
    row.desired = removed ? fw::db::Desired::kRemoved : p.running ? fw::db::Desired::kRunning : fw::db::Desired::kStopped;
    row.created_ns = row.updated_ns = fw::realtime_ns();
    store_ptr->save_worker(row);
  });
  supervisor.set_reload([&flags, &notifier]() -> fw::Result<fw::Config> {
    notifier.reloading();
    if (flags.config.empty()) return fw::Config{};
    return fw::load_config(flags.config);
  });
  supervisor.set_on_reload_done([&notifier](bool) { notifier.ready(); });
  // STOPPING=1 first, so systemd knows while workers are still being stopped.
  supervisor.set_on_stopping([&notifier] { notifier.stopping(); });
  std::string last_status;
  supervisor.set_on_publish([&notifier, &last_status](const fw::Snapshot& s) {
    if (!notifier.enabled()) return;
    std::string text = status_text(s);
    if (text == last_status) return;
    last_status = text;
    notifier.status(text);
  });
  fw::Fd hold_fifo;
  install_loop_hold_hook(**loop, hold_fifo);

  fw::ApiOptions api_opts;
  api_opts.token = token;
  api_opts.no_auth = flags.no_auth;
  api_opts.allow_commands = flags.allow_commands;
  api_opts.web_dir = flags.web_dir;
  api_opts.max_threads = flags.max_sse_clients + 32;
  api_opts.sample_ms = flags.sample_ms;
  api_opts.version = FORKWATCH_VERSION;
  fw::ApiDeps deps;
  deps.snapshots = &snapshots;
  deps.commands = commands->get();
  deps.counters = &counters;
  deps.hub = &hub;
  deps.history = history->get();
  deps.store_metrics = [store_ptr] { return fw::render_store_metrics(store_ptr->stats()); };
  deps.started_mono_ns = fw::monotonic_ns();
  fw::ApiServer api(deps, api_opts);
  auto port = activated_fd < 0 ? api.bind(flags.listen_host, flags.listen_port) : api.adopt(activated_fd);
  if (!port) die(2, "--listen " + flags.listen_host + ":" + std::to_string(flags.listen_port) + ": " +
                        port.error().message());

  // Serve at once (requests queue until the loop runs), but announce the
  // port only once every configured and restored worker exists, so whoever
  // waits for the port file or READY=1 finds them in /api/workers. Their
  // processes start on the loop's first round.
  supervisor.publish_now();
  if (auto st = api.start(); !st) die(1, st.error().message());

  // Workers from the config and the ones the API started before a restart.
  supervisor.apply_config(config);
  std::vector<fw::PersistedWorker> persisted;
  for (const auto& row : (*store)->load_workers()) {
    auto j = nlohmann::json::parse(row.spec, nullptr, false);
    auto spec = j.is_discarded() ? fw::Result<fw::ProgramSpec>(fw::plain_error("not JSON"))
                                 : fw::program_from_json(j, "stored worker " + std::to_string(row.id));
    if (!spec) {
      fw::log::error("skipping stored worker " + std::to_string(row.id) + ": " + spec.error().message());
      continue;
    }
    persisted.push_back({row.id, row.name, row.program, *spec, row.desired == fw::db::Desired::kRunning});
  }
  supervisor.restore(persisted);
  supervisor.publish_now();
  sampler.start();

  if (!flags.port_file.empty()) write_port_file(flags.port_file, *port);
  std::string shown_host = flags.listen_host.find(':') != std::string::npos ? "[" + flags.listen_host + "]" : flags.listen_host;
  const std::string shown_url = "http://" + shown_host + ":" + std::to_string(*port);
  fw::log::notice("listening on " + shown_url);
  if (!flags.no_auth) {
    // The journal is readable by more people than the token file: no token there.
    if (getenv("JOURNAL_STREAM"))
      fw::log::notice("dashboard: " + shown_url + "/?token=<the token in " + flags.token_file + ">");
    else
      fw::log::notice("dashboard: " + shown_url + "/?token=" + token);
  }

  // Every configured and restored worker has been asked to start; STATUS=
  // follows each published snapshot (on_publish above).
  notifier.ready();
  // The watchdog pings come from the loop thread: a stuck loop stops them.
  std::function<void()> ping;
  if (auto interval = notifier.watchdog_interval()) {
    const int64_t every = std::chrono::duration_cast<std::chrono::nanoseconds>(*interval).count();
    ping = [&, every] {  // `every` dies with this block; the timer outlives it
      notifier.watchdog_ping();
      (*loop)->add_timer(fw::monotonic_ns() + every, ping);
    };
    ping();
  }

  (*loop)->run();

  api.stop();
  (*store)->close();
  const auto st = (*store)->stats();
  fw::log::info("stopped; " + std::to_string(st.wait_rows) + " wait statuses recorded this run");
  return 0;
}
