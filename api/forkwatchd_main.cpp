// forkwatchd: parses flags, blocks signals before any thread exists, opens the
// store, starts the API, and runs the supervisor's loop on the main thread.
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

#include "auth.h"
#include "cgroup.h"
#include "config.h"
#include "event_hub.h"
#include "flags.h"
#include "history.h"
#include "json_dump.h"
#include "lifetime_source.h"
#include "live_pids.h"
#include "log.h"
#include "metrics.h"
#include "sampler.h"
#include "sd_notify.h"
#include "server.h"
#include "socket_activation.h"
#include "state_lock.h"
#include "store.h"
#include "supervisor.h"
#include "tls.h"
#include "worker_metrics.h"

extern char** environ;

namespace fw = forkwatch;
namespace fs = std::filesystem;

namespace {

// One line on stderr (with its journal priority under systemd), then exit.
// The cgroup subtree the daemon made, for die(): an exit 2 after it was made
// (a bad --socket) must not leave it behind.
fw::CgroupHost* g_cgroup_host = nullptr;

[[noreturn]] void die(int code, const std::string& line) {
  fw::log::error(line);
  if (g_cgroup_host) g_cgroup_host->close();
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
// it to show that pings come from the loop. An "s" takes a /proc sample now.
// Never reachable over the API.
void install_loop_hold_hook(fw::EventLoop& loop, fw::Fd& fifo, std::function<void()> sample_now) {
  const char* path = getenv("FORKWATCH_TEST_HOLD_LOOP");
  if (!path || !*path) return;
  // O_RDWR: we are a writer too, so the FIFO never reports hang-up.
  fifo = fw::Fd(open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC));
  unsetenv("FORKWATCH_TEST_HOLD_LOOP");
  if (!fifo) die(2, std::string("FORKWATCH_TEST_HOLD_LOOP ") + path + ": " + strerror(errno));
  const int fd = fifo.get();
  auto st = loop.add(fd, [fd, sample_now = std::move(sample_now)](uint32_t) {
    char c = 0;
    while (read(fd, &c, 1) == 1) {
      if (c == 's') {
        // A /proc sample now, so that a test decides when samples happen
        // (memory_restart's "two samples in a row" with a huge --sample-ms).
        fw::log::warning("test hook: sample taken");
        sample_now();
        continue;
      }
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

// FORKWATCH_TOKEN (for the admin token), else the token file, created 0600
// with a fresh token if missing.
std::string load_token(const std::string& path, bool from_env = true) {
  if (const char* t = getenv("FORKWATCH_TOKEN"); from_env && t && *t) return t;
  std::ifstream in(path);
  std::string token;
  if (in) {
    // An existing file is the operator's: empty, it is a mistake to report,
    // not a reason to replace what they wrote.
    if (std::getline(in, token) && !token.empty()) return token;
    die(2, "token file " + path + ": is empty (delete it to have a token generated)");
  }
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

// A previous daemon on this state dir that died without stopping its workers
// (SIGKILL, a crash) left them running and recorded in live-pids: end them
// before anything starts, or every worker would run twice.
void end_previous_run(const std::string& path) {
  constexpr int kTermWaitMs = 2000;
  auto found = fw::end_previous_run(path, kTermWaitMs);
  int running = 0, killed = 0;
  for (const auto& l : found) {
    const std::string who = "worker id " + std::to_string(l.recorded.worker_id) + " pid " +
                            std::to_string(l.recorded.pid) + " (group " + std::to_string(l.recorded.pgid) + ")";
    if (!l.running) {
      fw::log::info("previous run: " + who + " is gone (or its pid names another process now): left alone");
      continue;
    }
    ++running;
    killed += l.killed;
    fw::log::warning("previous run: " + who + " was still running: sent SIGTERM to its group" +
                     (l.killed ? ", then SIGKILL after " + std::to_string(kTermWaitMs) + " ms" : ", it exited"));
  }
  if (!found.empty())
    fw::log::notice("previous run ended without stopping its workers: " + std::to_string(found.size()) +
                    " recorded, " + std::to_string(running) + " still running and ended (" + std::to_string(killed) +
                    " needed SIGKILL)");
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
  // The pair is checked before anything else starts: a bad one is exit 2.
  // OpenSSL is initialised here, and only when TLS is asked for.
  std::shared_ptr<fw::TlsContext> tls;
  if (!flags.tls_cert.empty()) {
    auto loaded = fw::TlsContext::load(flags.tls_cert, flags.tls_key);
    if (!loaded) die(2, loaded.error().message());
    tls = std::move(*loaded);
  } else if (!fw::is_loopback_host(flags.listen_host)) {
    fw::log::warning("--listen " + flags.listen_host +
                     " is not a loopback address and TLS is off: tokens and data cross the network in clear "
                     "(give --tls-cert and --tls-key)");
  }

  // Memory a request borrowed goes back to the kernel when it is freed: a
  // fixed mmap threshold (glibc's own rises to the largest block ever freed,
  // after which a 1 MiB body lands in a heap that is never trimmed) and few
  // arenas for the many API threads (issue 19: VmRSS back within 2 MiB).
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024);
  mallopt(M_ARENA_MAX, 2);

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
  // One daemon per state dir, held until we exit; before anything else
  // touches the dir, so a second daemon changes nothing.
  auto state_lock = fw::StateLock::acquire(flags.state_dir);
  if (!state_lock) die(2, state_lock.error().message());
  const std::string live_pids_path = flags.state_dir + "/live-pids";
  end_previous_run(live_pids_path);
  const std::string token = flags.no_auth ? "" : load_token(flags.token_file);
  const std::string read_token =
      flags.no_auth || flags.read_token_file.empty() ? "" : load_token(flags.read_token_file, false);
  if (!read_token.empty() && read_token == token)
    die(2, "--read-token-file " + flags.read_token_file + ": holds the admin token; a read-only token must differ");
  std::optional<gid_t> socket_group;
  if (!flags.socket_group.empty()) {
    group* g = getgrnam(flags.socket_group.c_str());
    if (!g) die(2, "--socket-group " + flags.socket_group + ": no such group");
    socket_group = g->gr_gid;
  }
  // Workers inherit our environment: the admin token must not be in it
  // (any worker could read it from its own environ, or /proc/PID/environ).
  unsetenv("FORKWATCH_TOKEN");
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
  fw::db::StoreOptions store_opts;
  store_opts.retention.max_age_ns = flags.history_max_age_days * 86'400 * 1'000'000'000;
  store_opts.retention.max_bytes = flags.history_max_mib << 20;
  // Test-only (docs/operations.md): a small queue, so that a test fills it in
  // a second instead of filling 60,000 items.
  if (const char* q = getenv("FORKWATCH_TEST_STORE_QUEUE_MAX"); q && *q) {
    store_opts.max_queue_items = std::strtoull(q, nullptr, 10);
    unsetenv("FORKWATCH_TEST_STORE_QUEUE_MAX");
  }
  auto store = fw::db::Store::open(db_path, store_opts);
  if (!store) die(2, "database " + store.error().message());
  auto history = fw::db::History::open(db_path);
  if (!history) die(2, "database " + history.error().message());

  fw::Notifier notifier = fw::Notifier::from_environment(fw::process_notify_environment(), getpid());
  fw::unset_notify_environment();
  auto listen_fds = fw::take_listen_fds();
  if (!listen_fds) die(2, "socket activation: " + listen_fds.error().message());
  int activated_fd = -1, activated_unix_fd = -1;  // forkwatchd.socket, forkwatchd-unix.socket
  for (auto& l : *listen_fds) {
    if (!fw::is_listening_stream_socket(l.fd.get())) continue;
    auto host = fw::bound_host(l.fd.get());
    int& slot = host && *host == "unix" ? activated_unix_fd : activated_fd;
    if (slot < 0) slot = l.fd.release();
  }
  if (flags.no_auth && activated_fd >= 0) {
    // The loopback check above judged --listen; systemd's socket is what is served.
    auto host = fw::bound_host(activated_fd);
    if (!host || (*host != "unix" && !fw::is_loopback_host(*host)))
      die(2, "--no-auth is refused: the socket systemd passed is bound to " + (host ? *host : host.error().message()) +
                 ", not a loopback address");
  }

  auto loop = fw::EventLoop::create();
  if (!loop) die(1, loop.error().message());
  // Output pipes may take half the fd table; the rest stays for the API's
  // sockets and the store, so a fd shortage fails spawns, not the daemon.
  (*loop)->set_max_watched(std::max<rlim_t>(16, nofile.rlim_cur / 2));
  auto commands = fw::CommandQueue::create();
  if (!commands) die(1, commands.error().message());
  fw::SnapshotBox snapshots;
  fw::SupervisorCounters counters;
  fw::EventHub hub(20000, flags.max_sse_clients);
  fw::WorkerTally worker_tally;  // per-worker exit counts for /metrics
  // A cgroup per worker where cgroup v2 is writable (issue 13); else, said
  // in one line and in GET /api/health, a process group per worker.
  fw::Containment containment;
  std::unique_ptr<fw::ProcessHost> host = fw::open_process_host(flags.cgroup_root, flags.containment, containment);
  if (!host) die(2, "--containment cgroup: " + containment.reason);
  // Said only when it is not what was asked for: cgroup is the normal case
  // (GET /api/health says it), and a bad flag later must stay one line.
  if (containment.mode != "cgroup" && flags.containment != "process-group")
    fw::log::warning("containment: process groups (" + containment.reason + ")");
  auto* cgroup_host = dynamic_cast<fw::CgroupHost*>(host.get());
  g_cgroup_host = cgroup_host;
  fw::Supervisor supervisor(**loop, **commands, snapshots, counters,
                            fw::SupervisorOptions{flags.workers_dir, flags.state_dir + "/logs", flags.max_workers,
                                                  static_cast<int64_t>(worker_nofile)},
                            host.get());
  if (auto st = supervisor.init(); !st) die(1, st.error().message());
  supervisor.add_sink(store->get());  // first: an event is queued for SQLite before anyone can see it
  supervisor.add_sink(&hub);
  supervisor.add_sink(&worker_tally);
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
  fw::ApiServer* api_ptr = nullptr;  // set once the API exists, before the loop runs
  supervisor.set_reload([&flags, &notifier, &api_ptr]() -> fw::Result<fw::Config> {
    notifier.reloading();
    // SIGHUP also re-reads the TLS pair; a bad new one keeps the old in use.
    if (api_ptr) {
      if (auto st = api_ptr->reload_tls(); !st)
        fw::log::error("SIGHUP: TLS pair not reloaded, the old one stays in use: " + st.error().message());
      else if (!flags.tls_cert.empty())
        fw::log::notice("SIGHUP: TLS certificate " + flags.tls_cert + " and key " + flags.tls_key + " reloaded");
    }
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
  fw::LivePidsFile live_pids(live_pids_path);
  bool live_pids_failed = false;
  supervisor.set_on_live_pids([&live_pids, &live_pids_failed](const std::vector<std::pair<int64_t, pid_t>>& live) {
    auto st = live_pids.update(live);
    if (!st && !live_pids_failed) fw::log::error("live pids: " + st.error().message());
    live_pids_failed = !st;
  });
  fw::Fd hold_fifo;
  install_loop_hold_hook(**loop, hold_fifo, [&sampler] { sampler.request(false); });

  // Every process the kernel reports (issue 15): lifetimes into the store,
  // `process` events to the hub. Subscribed before any worker starts.
  fw::ProcessEventStats proc_stats;
  fw::LifetimeTracker lifetimes(**store, proc_stats, [&supervisor](fw::Event e) { supervisor.emit(std::move(e)); },
                                getpid());
  lifetimes.set_last_id((*store)->last_lifetime_id());
  lifetimes.set_last_thread_id((*store)->last_thread_id());
  // The live tree takes forks, execs and exits as they come; samples bring the figures.
  lifetimes.set_on_change([&sampler](std::string_view op, const fw::Lifetime& l) { sampler.note_change(op, l); });
  supervisor.set_on_spawned([&lifetimes](int64_t id, pid_t pid) { lifetimes.note_spawn(id, pid); });
  fw::LifetimeSourceOptions source_opts;
  // Test-only (docs/operations.md): a tiny receive buffer, so that a burst overruns it.
  if (const char* b = getenv("FORKWATCH_TEST_PROC_RCVBUF"); b && *b) {
    source_opts.rcvbuf_bytes = std::atoi(b);
    unsetenv("FORKWATCH_TEST_PROC_RCVBUF");
  }
  if (!flags.process_events) {
    proc_stats.reason = "--no-process-events";
  }
  fw::LifetimeSource lifetime_source(**loop, lifetimes, proc_stats, source_opts);
  if (flags.process_events) lifetime_source.start();

  fw::ApiOptions api_opts;
  api_opts.token = token;
  api_opts.read_token = read_token;
  api_opts.socket_group = socket_group;
  api_opts.no_auth = flags.no_auth;
  api_opts.allow_commands = flags.allow_commands;
  api_opts.web_dir = flags.web_dir;
  api_opts.max_threads = flags.max_sse_clients + 32;
  api_opts.sample_ms = flags.sample_ms;
  api_opts.version = FORKWATCH_VERSION;
  api_opts.tls = tls;
  // Test-only (docs/operations.md): a shorter request deadline, so that a
  // test sees a slow client (or TLS handshake) dropped in a second, not ten.
  if (const char* t = getenv("FORKWATCH_TEST_REQUEST_TIMEOUT_MS"); t && *t) {
    api_opts.gate.request_timeout_ms = std::strtoll(t, nullptr, 10);
    unsetenv("FORKWATCH_TEST_REQUEST_TIMEOUT_MS");
  }
  fw::ApiDeps deps;
  deps.snapshots = &snapshots;
  deps.commands = commands->get();
  deps.counters = &counters;
  deps.hub = &hub;
  deps.tally = &worker_tally;
  deps.history = history->get();
  deps.store_stats = [store_ptr] { return store_ptr->stats(); };
  deps.store_committed = [store_ptr](std::chrono::milliseconds t) { return store_ptr->flush_for(t); };
  deps.process_events = &proc_stats;
  deps.containment = &containment;
  deps.started_mono_ns = fw::monotonic_ns();
  fw::ApiServer api(deps, api_opts);
  api_ptr = &api;
  auto port = activated_fd < 0 ? api.bind(flags.listen_host, flags.listen_port) : api.adopt(activated_fd);
  if (!port) die(2, "--listen " + flags.listen_host + ":" + std::to_string(flags.listen_port) + ": " +
                        port.error().message());
  std::string unix_socket;
  if (activated_unix_fd >= 0) {
    api.adopt_unix(activated_unix_fd);
    unix_socket = "the socket systemd passed";
  } else if (!flags.socket.empty()) {
    if (auto st = api.listen_unix(flags.socket); !st) {
      // The default place may not suit (a long state dir path): the TCP API
      // still serves. A socket asked for by name must work.
      if (flags.socket_given) die(2, st.error().message());
      fw::log::warning(st.error().message() + "; serving without a Unix socket (see --socket)");
    } else {
      unix_socket = flags.socket;
    }
  }

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
    auto j = fw::parse_json(row.spec);
    auto spec = std::holds_alternative<std::string>(j)
                    ? fw::Result<fw::ProgramSpec>(fw::plain_error("not JSON: " + std::get<std::string>(j)))
                    : fw::program_from_json(std::get<nlohmann::json>(j), "stored worker " + std::to_string(row.id));
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
  const std::string shown_url = std::string(tls ? "https://" : "http://") + shown_host + ":" + std::to_string(*port);
  fw::log::notice("listening on " + shown_url);
  if (!unix_socket.empty()) fw::log::notice("also serving on Unix socket " + unix_socket);
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

  if (lifetime_source.active() && flags.realtime_loop) {
    const std::string why = fw::LifetimeSource::raise_loop_priority();
    if (!why.empty()) fw::log::warning("loop thread stays SCHED_OTHER (argv of very short programs may be lost): " + why);
  }
  (*loop)->run();
  // Whatever is still in a worker's cgroup dies now: nothing outlives us.
  if (cgroup_host) cgroup_host->close();
  g_cgroup_host = nullptr;
  live_pids.clear();  // every worker was stopped: nothing for the next run to find

  api.stop();
  (*store)->close();
  const auto st = (*store)->stats();
  fw::log::info("stopped; " + std::to_string(st.wait_rows) + " wait statuses recorded this run");
  // A run that lost records must not look like a clean one (issue 20).
  if (st.items_dropped > 0) {
    fw::log::error("lost " + std::to_string(st.items_dropped) + " records (" + std::to_string(st.wait_rows_dropped) +
                   " wait statuses) that " + db_path + " could not take; exiting 1");
    return 1;
  }
  return 0;
}
