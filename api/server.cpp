#include "server.h"

#include <pthread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "auth.h"
#include "event.h"
#include "event_json.h"
#include "fd.h"
#include "fd_json.h"
#include "fd_reader.h"
#include "health.h"
#include "history.h"
#include "http_router.h"
#include "json_dump.h"
#include "json_map.h"
#include "lifetime_api.h"
#include "log.h"
#include "parse_number.h"
#include "sampler.h"
#include "static_files.h"
#include "task_pool.h"
#include "tls.h"

namespace forkwatch {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kCommandTimeout = 10s;
constexpr auto kSampleTimeout = 3s;
// How long a change waits for its worker row to be committed. A store that
// cannot write for longer is degraded (/api/health says so); the change is
// answered then anyway, since the worker has already started or stopped.
constexpr auto kPersistTimeout = 2s;
// The text of one logs reply; its JSON is at most a few times this (escapes).
constexpr size_t kLogsReplyBytes = 512 * 1024;
constexpr const char* kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

thread_local std::chrono::steady_clock::time_point t_request_start;
// The role authorized() granted the request this pool thread serves.
thread_local Role t_role = Role::kNone;

void send_json(http::Response& res, int status, const std::string& body) {
  res.status = status;
  // Never compressed: Brotli at quality 11 once made a 300 KiB tree take
  // 1.5 s instead of 13 ms (bench/RESULTS.md, dashboard).
  res.set_content(body, "application/json; charset=utf-8");
}

void send_error(http::Response& res, const ApiError& e) { send_json(res, e.status, error_body(e)); }

// A path id: digits only, within int64.
std::optional<int64_t> parse_id(const std::string& s) {
  auto v = parse_decimal<int64_t>(s);
  if (!v || *v <= 0) return std::nullopt;
  return v;
}

// An optional integer query parameter within [min, max].
std::variant<std::optional<int64_t>, ApiError> query_int(const http::Request& req, const char* name,
                                                         int64_t min, int64_t max) {
  if (!req.has_param(name)) return std::optional<int64_t>{};
  const std::string v = req.get_param_value(name);
  auto n = parse_decimal<int64_t>(v);
  if (!n || *n < min || *n > max)
    return ApiError{422, "invalid_value",
                    std::string(name) + ": must be an integer from " + std::to_string(min) + " to " +
                        std::to_string(max) + " (got \"" + v + "\")"};
  return n;
}

// The query as the pure parsers of lifetime_api.h take it (the first value of a repeated name).
std::map<std::string, std::string> query_params(const http::Request& req) {
  std::map<std::string, std::string> params;
  for (const auto& [k, v] : req.params) params.emplace(k, v);
  return params;
}

ApiError reply_error(const CommandReply& r) {
  switch (r.code) {
    case ReplyCode::kNotFound: return {404, "not_found", r.message};
    case ReplyCode::kConflict: return {409, "conflict", r.message};
    case ReplyCode::kInvalid: return {422, "invalid_value", r.message};
    case ReplyCode::kLimit: return {409, "limit_reached", r.message};
    default: return {500, "internal", r.message};
  }
}

}  // namespace

class ApiServer::Impl {
 public:
  Impl(ApiDeps d, ApiOptions o) : deps(std::move(d)), opt(std::move(o)) {
    // Only for the Keep-Alive header; the gate applies it.
    svr.set_keep_alive_timeout_s(opt.gate.keep_alive_ms / 1000);
    svr.set_default_headers({{"Content-Security-Policy", kCsp},
                             {"X-Content-Type-Options", "nosniff"},
                             {"Referrer-Policy", "no-referrer"}});
    routes();
  }

  ApiDeps deps;
  ApiOptions opt;
  StaticFiles web{opt.web_dir};
  http::Server svr;
  Fd tcp_listen;             // bound here, or handed over by systemd
  std::unique_ptr<TaskPool> pool;
  std::unique_ptr<HttpGate> gate;
  Fd unix_listen;            // the Unix socket, when there is one
  std::string unix_path;     // removed at stop when this daemon made it
  db::LatencyHistogram request_duration;
  HealthMonitor health;
  const FdReader fd_reader;  // stateless: shared by every API thread

  std::shared_ptr<const Snapshot> snapshot() const { return deps.snapshots->latest(); }

  // GET /api/workers is rendered once per snapshot: a poller between two
  // changes gets the same text without building 100 json values again.
  std::mutex workers_json_mu;
  std::shared_ptr<const Snapshot> workers_json_for;  // held, so its address is not reused
  std::string workers_json;
  std::string workers_list_json() {
    auto s = snapshot();
    std::lock_guard lock(workers_json_mu);
    if (workers_json_for != s) {
      json out = json::array();
      for (const auto& w : s->workers) out.push_back(worker_json(w, false));
      workers_json = dump_json(json{{"workers", out}});
      workers_json_for = std::move(s);
    }
    return workers_json;
  }

  // Posts a command and waits for the loop's reply. nullopt ("busy", 503)
  // only when the loop never acted on it: at the deadline the command is
  // taken back, or, if the loop took it that instant, its reply is awaited.
  std::optional<CommandReply> call(Command c) {
    const int64_t timeout_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(kCommandTimeout).count();
    auto ticket = deps.commands->post(std::move(c), monotonic_ns() + timeout_ns);
    if (ticket.reply.wait_for(kCommandTimeout) != std::future_status::ready) {
      if (ticket.claim->abandon()) return std::nullopt;
      if (ticket.reply.wait_for(kCommandTimeout) != std::future_status::ready) return std::nullopt;
    }
    try {
      return ticket.reply.get();
    } catch (const std::future_error&) {
      return std::nullopt;  // dropped by the loop past its deadline: nothing happened
    }
  }

  // Called after a change to a worker's desired state, before answering it.
  void wait_persisted() {
    if (deps.store_committed && !deps.store_committed(kPersistTimeout))
      log::warning("the store is behind: answering a worker change before its row is committed");
  }

  bool authorized(const http::Request& req, http::Response& res);
  Role role_of(const http::Request& req, http::Response& res);
  const Tokens tokens{opt.token, opt.read_token};
  void routes();
  void worker_action(const http::Request& req, http::Response& res);
  void start_worker(const http::Request& req, http::Response& res);
  void tree(const http::Request& req, http::Response& res);
  void process_fds(const http::Request& req, http::Response& res);
  void history(const http::Request& req, http::Response& res);
  void lifetimes(const http::Request& req, http::Response& res);
  void lifetime_threads(const http::Request& req, http::Response& res);
  void tree_at(const http::Request& req, http::Response& res);
  void logs(const http::Request& req, http::Response& res, int64_t id);
  void events(const http::Request& req, http::Response& res);
  std::shared_ptr<const TreeSample> fresh_tree(bool all);
  void static_file(const http::Request& req, http::Response& res);
};

// Decides the request's role (admin, read, or refused with the answer sent)
// from the Unix socket peer, --no-auth, or its token.
Role ApiServer::Impl::role_of(const http::Request& req, http::Response& res) {
  const bool changes = req.method != "GET" && req.method != "HEAD";
  if (auto peer = HttpGate::peer_credentials()) {
    Role r = peer_role(peer->uid, peer->gid, geteuid(), opt.socket_group, user_in_group);
    if (r == Role::kNone)
      send_error(res, {403, "forbidden",
                       "uid " + std::to_string(peer->uid) +
                           " may not use this socket: root, the daemon's user and members of --socket-group may"});
    return r;
  }
  if (opt.no_auth) {
    // No token, so the guards against other web pages are all there is: a
    // Host that is not this loopback daemon is DNS rebinding, a foreign
    // Origin on a change is CSRF.
    const std::string host = req.get_header_value("Host");
    if (!is_loopback_host(host_of(host))) {
      send_error(res, {403, "bad_host", "without a token only a loopback Host is served (got \"" + host + "\")"});
      return Role::kNone;
    }
    if (changes && req.has_header("Origin") && !same_origin(req.get_header_value("Origin"), host)) {
      send_error(res, {403, "bad_origin", "a change needs an Origin of this daemon (" + host + ")"});
      return Role::kNone;
    }
    return Role::kAdmin;
  }
  const Proof proof = prove(req.get_header_value("Authorization"), req.get_header_value("Cookie"), tokens);
  if (proof.wrong_bearer) {
    send_error(res, {401, "unauthorized", "the bearer token is wrong (Authorization: Bearer <token>)"});
    return Role::kNone;
  }
  if (proof.role == Role::kNone) {
    send_error(res, {401, "unauthorized",
                     "a token is required: send Authorization: Bearer <token> (the token is in the daemon's token file)"});
    return Role::kNone;
  }
  // Cookie only: a state change must come from our own page (CSRF).
  if (proof.by_cookie && changes) {
    std::string origin = req.get_header_value("Origin");
    if (origin.empty()) origin = req.get_header_value("Referer");
    if (!same_origin(origin, req.get_header_value("Host"))) {
      send_error(res, {403, "bad_origin",
                       "a cookie-authenticated change needs an Origin of this daemon (" +
                           req.get_header_value("Host") + ")"});
      return Role::kNone;
    }
  }
  return proof.role;
}

bool ApiServer::Impl::authorized(const http::Request& req, http::Response& res) {
  const Role role = role_of(req, res);
  if (role == Role::kNone) return false;
  HttpGate::note_authenticated();
  if (role == Role::kRead && req.method != "GET" && req.method != "HEAD") {
    send_error(res, {403, "forbidden", "read-only access: " + req.method + " " + req.path + " changes state"});
    return false;
  }
  t_role = role;
  return true;
}

void ApiServer::Impl::routes() {
  svr.set_pre_routing_handler([this](const http::Request& req, http::Response& res) {
    t_request_start = std::chrono::steady_clock::now();
    t_role = Role::kNone;
    const std::string& p = req.path;
    // The dashboard link: ?token=... becomes an HttpOnly cookie, then the URL loses it.
    if (!p.starts_with("/api/") && p != "/metrics" && req.has_param("token")) {
      const std::string tok = req.get_param_value("token");
      if (!opt.no_auth && token_role(tok, tokens) == Role::kNone) {
        send_error(res, {401, "unauthorized", "the token in the link is wrong"});
        return http::Server::HandlerResponse::Handled;
      }
      if (!opt.no_auth)
        res.set_header("Set-Cookie", std::string(kCookieName) + "=" + tok + "; Path=/; HttpOnly; SameSite=Strict");
      res.set_redirect(same_site_path(p), 303);
      return http::Server::HandlerResponse::Handled;
    }
    if (p.starts_with("/api/") && p != "/api/health" && !authorized(req, res))
      return http::Server::HandlerResponse::Handled;
    return http::Server::HandlerResponse::Unhandled;
  });
  svr.set_logger([this](const http::Request&, const http::Response&) {
    request_duration.record(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now() - t_request_start).count());
  });
  svr.set_error_handler([](const http::Request& req, http::Response& res) {
    if (!res.body.empty()) return;
    switch (res.status) {
      case 404: send_error(res, {404, "not_found", "no such path: " + req.method + " " + req.path}); break;
      case 405:
        send_error(res, {405, "method_not_allowed",
                         req.method + " is not served on " + req.path + " (allowed: " + res.get_header_value("Allow") + ")"});
        break;
      case 413: send_error(res, {413, "too_large", "the body is larger than the limit (1 MiB)"}); break;
      case 400: send_error(res, {400, "bad_request", "the request could not be read"}); break;
      default:
        send_error(res, {res.status, "error", "HTTP " + std::to_string(res.status)});
    }
  });
  svr.set_exception_handler([](const http::Request&, http::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log::error("API handler failed: " + what);
    send_error(res, {500, "internal", "the daemon failed to answer: " + what});
  });

  // Degraded still answers 200: the daemon is up and says what is wrong (CONTRACT.md, "Faults").
  svr.Get("/api/health", [this](const http::Request&, http::Response& res) {
    std::optional<db::StoreStats> store;
    if (deps.store_stats) store = deps.store_stats();
    Health h = health.assess(store ? &*store : nullptr, deps.counters->spawn_failures, monotonic_ns());
    send_json(res, 200, health_json(h, store ? &*store : nullptr, opt.version, getpid(),
                                    (monotonic_ns() - deps.started_mono_ns) / 1'000'000'000, deps.process_events,
                                    deps.containment));
  });
  svr.Get("/metrics", [this](const http::Request& req, http::Response& res) {
    // A scraper is a watcher: the per-worker CPU and memory come from a /proc
    // sample at most --sample-ms old (docs/fleet.md).
    fresh_tree(false);
    auto s = snapshot();
    std::optional<db::StoreStats> store;
    if (deps.store_stats) store = deps.store_stats();
    Health h = health.assess(store ? &*store : nullptr, deps.counters->spawn_failures, monotonic_ns());
    MetricsInputs in{s.get(), deps.counters, &request_duration, deps.hub->clients(), store ? &*store : nullptr, &h,
                     deps.tally};
    std::string text = render_metrics(in);
    // Prometheus asks for OpenMetrics first (its default Accept); others get the 0.0.4 text.
    if (req.get_header_value("Accept").find("application/openmetrics-text") != std::string::npos)
      res.set_content(to_openmetrics(text), "application/openmetrics-text; version=1.0.0; charset=utf-8");
    else
      res.set_content(std::move(text), "text/plain; version=0.0.4; charset=utf-8");
  });
  svr.Get("/api/session", [](const http::Request&, http::Response& res) {
    // What the caller may do, so the dashboard can leave out what it may not.
    const bool socket = HttpGate::peer_credentials().has_value();
    send_json(res, 200, dump_json({{"role", t_role == Role::kAdmin ? "admin" : "read"}, {"socket", socket}}));
  });
  svr.Get("/api/programs", [this](const http::Request&, http::Response& res) {
    json out = json::array();
    // Held for the loop: a range-for over snapshot()->catalogue would drop
    // the temporary pointer first, and a publish meanwhile frees the list.
    const auto snap = snapshot();
    for (const auto& p : snap->catalogue) out.push_back(program_json(p, t_role != Role::kAdmin));
    send_json(res, 200, dump_json(json{{"programs", out}}));
  });
  svr.Get("/api/workers", [this](const http::Request&, http::Response& res) {
    send_json(res, 200, workers_list_json());
  });
  svr.Post("/api/workers", [this](const http::Request& req, http::Response& res) { start_worker(req, res); });
  svr.Get(R"(/api/workers/([^/]+))", [this](const http::Request& req, http::Response& res) {
    auto id = parse_id(req.matches[1]);
    if (!id) return send_error(res, {400, "invalid_id", "worker ids are positive integers (got \"" + std::string(req.matches[1]) + "\")"});
    auto s = snapshot();
    const WorkerView* w = s->find(*id);
    if (!w) return send_error(res, {404, "not_found", "no worker with id " + std::to_string(*id)});
    send_json(res, 200, dump_json(worker_json(*w, true)));
  });
  svr.Post(R"(/api/workers/([^/]+)/(signal|stop|restart|pause|resume))",
           [this](const http::Request& req, http::Response& res) { worker_action(req, res); });
  svr.Delete(R"(/api/workers/([^/]+))",
             [this](const http::Request& req, http::Response& res) { worker_action(req, res); });
  svr.Get(R"(/api/workers/([^/]+)/logs)", [this](const http::Request& req, http::Response& res) {
    auto id = parse_id(req.matches[1]);
    if (!id) return send_error(res, {400, "invalid_id", "worker ids are positive integers"});
    logs(req, res, *id);
  });
  svr.Get(R"(/api/workers/([^/]+)/samples)", [this](const http::Request& req, http::Response& res) {
    auto id = parse_id(req.matches[1]);
    if (!id) return send_error(res, {400, "invalid_id", "worker ids are positive integers"});
    auto s = snapshot();
    if (!s->find(*id)) return send_error(res, {404, "not_found", "no worker with id " + std::to_string(*id)});
    deps.counters->last_watch_ns = monotonic_ns();
    std::string samples = s->tree && s->tree->history ? s->tree->history->json(*id) : "[]";
    send_json(res, 200, "{\"worker_id\":" + std::to_string(*id) + ",\"samples\":" + samples + "}");
  });
  svr.Get("/api/tree", [this](const http::Request& req, http::Response& res) { tree(req, res); });
  svr.Get(R"(/api/processes/([^/]+))", [this](const http::Request& req, http::Response& res) {
    auto pid = parse_id(req.matches[1]);
    if (!pid || *pid > INT32_MAX) return send_error(res, {400, "invalid_pid", "pids are positive integers"});
    auto t = fresh_tree(false);
    if (t && t->tree)
      if (auto text = process_json(*t->tree, static_cast<pid_t>(*pid), t->tags)) return send_json(res, 200, *text);
    send_error(res, {404, "not_found", "no process " + std::to_string(*pid) + " in the supervised tree"});
  });
  svr.Get(R"(/api/processes/([^/]+)/fds)",
          [this](const http::Request& req, http::Response& res) { process_fds(req, res); });
  svr.Get("/api/history", [this](const http::Request& req, http::Response& res) { history(req, res); });
  svr.Get("/api/lifetimes", [this](const http::Request& req, http::Response& res) { lifetimes(req, res); });
  svr.Get(R"(/api/lifetimes/([^/]+)/threads)",
          [this](const http::Request& req, http::Response& res) { lifetime_threads(req, res); });
  svr.Get("/api/events", [this](const http::Request& req, http::Response& res) { events(req, res); });
  if (!opt.web_dir.empty() && !web.enabled()) log::warning("dashboard directory not found: " + opt.web_dir);
  // A GET no route took: the dashboard's files; anything else under /api is
  // a JSON 404, never a file. (A fallback rather than a GET "/.*" route, so
  // a POST to a GET-only path is a 405, to an unknown one a 404.)
  svr.set_fallback([this](const http::Request& req, http::Response& res) {
    if (req.path.starts_with("/api/"))
      return send_error(res, {404, "not_found", "no such endpoint: " + req.method + " " + req.path});
    static_file(req, res);
  });
}

void ApiServer::Impl::static_file(const http::Request& req, http::Response& res) {
  auto file = web.resolve(req.path);
  auto body = std::make_shared<std::string>();
  if (file) {
    std::ifstream in(*file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (in) *body = std::move(text).str();
    else file.reset();  // vanished or unreadable between resolve and read
  }
  if (!file) return send_error(res, {404, "not_found", "no such file: " + req.path});
  res.set_header("Cache-Control", "no-cache");
  // A sized provider: the file is written from the shared copy, not copied again.
  res.set_content_provider(body->size(), std::string(StaticFiles::content_type(*file)),
                           [body](size_t offset, size_t length, http::DataSink& sink) {
                             return sink.write(body->data() + offset, length);
                           });
}

void ApiServer::Impl::start_worker(const http::Request& req, http::Response& res) {
  auto s = snapshot();
  auto parsed = parse_start_request(req.body, *s, opt.allow_commands);
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
  auto reply = call(std::move(std::get<StartWorker>(parsed)));
  if (!reply) return send_error(res, {503, "busy", "the supervisor did not answer in time"});
  if (reply->code != ReplyCode::kOk) return send_error(res, reply_error(*reply));
  wait_persisted();
  send_json(res, 201, dump_json(worker_json(*reply->worker, true)));
}

void ApiServer::Impl::worker_action(const http::Request& req, http::Response& res) {
  auto id = parse_id(req.matches[1]);
  if (!id)
    return send_error(res, {400, "invalid_id", "worker ids are positive integers (got \"" + std::string(req.matches[1]) + "\")"});
  Command c = RemoveWorker{*id};
  int sig = 0;
  if (req.method == "POST") {
    const std::string action = req.matches[2];
    if (action == "signal") {
      auto parsed = parse_signal_request(req.body);
      if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
      sig = std::get<int>(parsed);
      c = SignalWorker{*id, sig};
    } else if (action == "stop") {
      c = StopWorker{*id};
    } else if (action == "pause" || action == "resume") {
      c = PauseWorker{*id, action == "pause"};
    } else {
      c = RestartWorker{*id};
    }
  }
  // Stop, restart and removal change the stored row; a signal or a pause does not.
  const bool changes_row = !std::holds_alternative<SignalWorker>(c) && !std::holds_alternative<PauseWorker>(c);
  auto reply = call(std::move(c));
  if (!reply) return send_error(res, {503, "busy", "the supervisor did not answer in time"});
  if (reply->code != ReplyCode::kOk) return send_error(res, reply_error(*reply));
  if (changes_row) wait_persisted();
  json body = worker_json(*reply->worker, false);
  send_json(res, 200, dump_json(body));
}

std::shared_ptr<const TreeSample> ApiServer::Impl::fresh_tree(bool all) {
  deps.counters->last_watch_ns = monotonic_ns();
  auto s = snapshot();
  const int64_t max_age_ns = std::max<int64_t>(2 * opt.sample_ms, 1500) * 1'000'000;
  auto ok = [&](const std::shared_ptr<const TreeSample>& t) {
    return t && (!all || t->all_scope) && monotonic_ns() - t->taken_ns < max_age_ns;
  };
  if (ok(s->tree)) return s->tree;
  auto fut = deps.commands->post(SampleNow{all}).reply;  // harmless if late: no deadline
  if (fut.wait_for(kSampleTimeout) != std::future_status::ready) return nullptr;
  return snapshot()->tree;
}

void ApiServer::Impl::tree(const http::Request& req, http::Response& res) {
  if (req.has_param("at")) return tree_at(req, res);
  const std::string scope = req.has_param("scope") ? req.get_param_value("scope") : "supervised";
  if (scope != "supervised" && scope != "all")
    return send_error(res, {422, "invalid_value", "scope: must be supervised or all (got \"" + scope + "\")"});
  auto t = fresh_tree(scope == "all");
  if (!t) return send_error(res, {503, "no_sample", "no process sample could be taken in time"});
  const std::string& body = scope == "all" && t->all_scope ? t->all_json : t->supervised_json;
  send_json(res, 200, body);
}

// Read on request on this API thread: /proc only, never supervisor state.
void ApiServer::Impl::process_fds(const http::Request& req, http::Response& res) {
  auto pid = parse_id(req.matches[1]);
  if (!pid || *pid > INT32_MAX) return send_error(res, {400, "invalid_pid", "pids are positive integers"});
  const std::string scope = req.has_param("scope") ? req.get_param_value("scope") : "supervised";
  if (scope != "supervised" && scope != "all")
    return send_error(res, {422, "invalid_value", "scope: must be supervised or all (got \"" + scope + "\")"});
  auto t = fresh_tree(false);
  if (!t || !t->tree) return send_error(res, {503, "no_sample", "no process sample could be taken in time"});
  // Peers are looked for among the supervised processes only.
  std::vector<pid_t> supervised = t->tree->descendants(getpid());
  const bool in_tree = std::find(supervised.begin(), supervised.end(), *pid) != supervised.end();
  const std::string name = "process " + std::to_string(*pid);
  if (!in_tree && scope != "all")
    return send_error(res, {404, "not_found", "no " + name + " in the supervised tree (scope=all reads any process)"});
  auto fds = read_process_fds(fd_reader, static_cast<pid_t>(*pid), supervised);
  if (!fds) {
    if (fd_error_gone(fds.error())) return send_error(res, {404, "not_found", name + " is gone"});
    if (fds.error().err == EACCES)
      return send_error(res, {403, "not_readable", "the daemon may not read the descriptors of " + name +
                                                       " (another user's process): " + fds.error().message()});
    return send_error(res, {500, "proc_error", fds.error().message()});
  }
  send_json(res, 200, process_fds_json(*fds));
}

void ApiServer::Impl::history(const http::Request& req, http::Response& res) {
  db::HistoryFilter f;
  for (auto [name, min, max] : {std::tuple{"worker", 1LL, INT64_MAX}, {"pid", 1LL, 4194304LL},
                                {"limit", 1LL, 1000LL}, {"before", 1LL, INT64_MAX}}) {
    auto v = query_int(req, name, min, max);
    if (auto* e = std::get_if<ApiError>(&v)) return send_error(res, *e);
    auto n = std::get<std::optional<int64_t>>(v);
    if (!n) continue;
    if (std::string_view(name) == "worker") f.worker_id = *n;
    else if (std::string_view(name) == "pid") f.pid = static_cast<pid_t>(*n);
    else if (std::string_view(name) == "limit") f.limit = static_cast<int>(*n);
    else f.before_id = *n;
  }
  auto rows = deps.history->wait_status(f);
  if (!rows) return send_error(res, {500, "store_error", rows.error().message()});
  std::string out = "{\"rows\":[";
  for (size_t i = 0; i < rows->size(); ++i) {
    if (i) out += ',';
    out += wait_record_json((*rows)[i]);
  }
  out += "]}";
  send_json(res, 200, out);
}

void ApiServer::Impl::lifetimes(const http::Request& req, http::Response& res) {
  auto parsed = parse_lifetime_query(query_params(req));
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
  const db::LifetimeFilter& f = std::get<db::LifetimeFilter>(parsed);
  auto rows = deps.history->lifetimes(f);
  if (!rows) return send_error(res, {500, "store_error", rows.error().message()});
  auto gaps = deps.history->gaps(f.since_ns.value_or(0), f.until_ns.value_or(INT64_MAX), db::History::kMaxLimit);
  if (!gaps) return send_error(res, {500, "store_error", gaps.error().message()});
  send_json(res, 200, lifetimes_page_json(*rows, f.limit, *gaps));
}

void ApiServer::Impl::lifetime_threads(const http::Request& req, http::Response& res) {
  auto id = parse_id(req.matches[1]);
  if (!id)
    return send_error(res, {400, "invalid_id",
                            "lifetime ids are positive integers (got \"" + std::string(req.matches[1]) + "\")"});
  auto parsed = parse_thread_query(*id, query_params(req));
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
  const db::ThreadFilter& f = std::get<db::ThreadFilter>(parsed);
  auto rows = deps.history->threads(f);
  if (!rows) return send_error(res, {500, "store_error", rows.error().message()});
  if (!*rows)
    return send_error(res, {404, "not_found",
                            "no lifetime " + std::to_string(*id) + " is stored (a process is written once it has "
                            "lived 100 ms, or at its exit)"});
  send_json(res, 200, threads_page_json(*id, **rows, f.limit));
}

void ApiServer::Impl::tree_at(const http::Request& req, http::Response& res) {
  const std::string scope = req.has_param("scope") ? req.get_param_value("scope") : "supervised";
  if (scope != "supervised")
    return send_error(res, {422, "invalid_value", "scope: a past tree is the supervised one only (got \"" + scope + "\")"});
  auto oldest = deps.history->oldest_lifetime_ns();
  if (!oldest) return send_error(res, {500, "store_error", oldest.error().message()});
  auto at = parse_tree_at(req.get_param_value("at"), realtime_ns(), *oldest);
  if (auto* e = std::get_if<ApiError>(&at)) return send_error(res, *e);
  auto alive = deps.history->alive_at(std::get<int64_t>(at));
  if (!alive) return send_error(res, {500, "store_error", alive.error().message()});
  send_json(res, 200, tree_at_json(*alive));
}

void ApiServer::Impl::logs(const http::Request& req, http::Response& res, int64_t id) {
  auto s = snapshot();
  const WorkerView* w = s->find(id);
  if (!w) return send_error(res, {404, "not_found", "no worker with id " + std::to_string(id)});
  const std::string stream = req.has_param("stream") ? req.get_param_value("stream") : "both";
  if (stream != "stdout" && stream != "stderr" && stream != "both")
    return send_error(res, {422, "invalid_value", "stream: must be stdout, stderr or both (got \"" + stream + "\")"});
  auto tail = query_int(req, "tail", 1, OutputLog::kRingLines);
  if (auto* e = std::get_if<ApiError>(&tail)) return send_error(res, *e);
  auto after = query_int(req, "after", 0, INT64_MAX);
  if (auto* e = std::get_if<ApiError>(&after)) return send_error(res, *e);
  // Bounded in bytes too: 2000 lines of 16 KiB once made a 197 MB reply (issue 20).
  OutputTail got = w->output->tail(std::get<std::optional<int64_t>>(tail).value_or(200), stream != "stderr",
                                   stream != "stdout", std::get<std::optional<int64_t>>(after).value_or(0),
                                   kLogsReplyBytes);
  json out = json::array();
  for (const auto& l : got.lines) {
    json line = {{"seq", l.seq}, {"ts_ns", l.ts_ns}, {"stream", l.stream == Stream::kStdout ? "stdout" : "stderr"},
                 {"text", l.text}};
    if (l.cut) line["cut"] = true;
    out.push_back(std::move(line));
  }
  send_json(res, 200, dump_json(json{{"worker_id", id}, {"lines", out}, {"truncated", got.truncated}}));
}

void ApiServer::Impl::events(const http::Request& req, http::Response& res) {
  uint64_t after = deps.hub->last_id();
  std::string from = req.get_header_value("Last-Event-ID");
  if (from.empty() && req.has_param("since")) from = req.get_param_value("since");
  if (!from.empty()) {
    auto v = parse_decimal<uint64_t>(from);
    if (!v) return send_error(res, {422, "invalid_value", "Last-Event-ID must be an event id (got \"" + from + "\")"});
    after = *v;
  }
  if (!deps.hub->acquire())
    return send_error(res, {429, "too_many_clients",
                            "already " + std::to_string(deps.hub->max_clients()) + " event streams open (the limit)"});
  deps.counters->last_watch_ns = monotonic_ns();
  struct Stream {
    uint64_t last;
  };
  auto st = std::make_shared<Stream>(Stream{after});
  EventHub* hub = deps.hub;
  db::History* hist = deps.history;
  SupervisorCounters* counters = deps.counters;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st, hub, hist, counters](size_t, http::DataSink& sink) {
        if (hub->closed()) return false;
        counters->last_watch_ns = monotonic_ns();
        std::string out;
        uint64_t last = st->last;
        if (hub->append_since(last, 256, out) && hist) {
          // Fell out of the ring (or reconnected late): the store has the rest.
          auto older = hist->events_after(st->last, 256);
          if (older && !older->empty()) {
            out.clear();
            for (auto& e : *older) out += sse_frame(e.id, e.kind, e.data);
            last = older->back().id;
          }
        }
        if (out.empty()) {
          hub->wait(st->last, 15s);
          if (hub->last_id() <= st->last) {
            static constexpr char kBeat[] = ": heartbeat\n\n";
            return sink.write(kBeat, sizeof kBeat - 1);
          }
          return true;
        }
        st->last = last;
        return sink.write(out.data(), out.size());
      },
      [hub](bool) { hub->release(); });
}

ApiServer::ApiServer(ApiDeps deps, ApiOptions options)
    : impl_(std::make_unique<Impl>(std::move(deps), std::move(options))) {}

ApiServer::~ApiServer() { stop(); }

Result<int> ApiServer::bind(const std::string& host, int port) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(h.empty() ? nullptr : h.c_str(), service.c_str(), &hints, &found); rc != 0)
    return plain_error("bind(" + host + ":" + service + "): " + gai_strerror(rc));
  Status last = plain_error("bind(" + host + ":" + service + "): no address");
  for (addrinfo* a = found; a; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) {
      last = sys_error("socket(" + host + ")");
      continue;
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      last = sys_error("bind(" + host + ":" + service + ")");
      continue;
    }
    freeaddrinfo(found);
    return adopt(fd.release());
  }
  freeaddrinfo(found);
  return last.error();
}

Result<int> ApiServer::adopt(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return sys_error("getsockname(listen fd)");
  int port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  impl_->tcp_listen = Fd(fd);
  return port;
}

Status ApiServer::start() {
  Impl& m = *impl_;
  // Listening again on a socket systemd passed only resizes its backlog.
  if (::listen(m.tcp_listen.get(), SOMAXCONN) != 0) return sys_error("listen");
  m.pool = std::make_unique<TaskPool>(m.opt.max_threads, 4);
  std::vector<int> listeners{m.tcp_listen.get()};
  if (m.unix_listen) listeners.push_back(m.unix_listen.get());
  m.gate = std::make_unique<HttpGate>(
      listeners, m.opt.gate, *m.pool,
      [&m](const HttpHead& head, std::string body, http::ReplyStream& out, bool close_after) {
        return Served{m.svr.serve(head, std::move(body), out, close_after)};
      },
      [&m](const HttpHead& head, const std::optional<PeerCredentials>& peer) {
        if (m.opt.no_auth) return true;
        if (peer) return peer_role(peer->uid, peer->gid, geteuid(), m.opt.socket_group, user_in_group) != Role::kNone;
        const std::string* authz = head.header("Authorization");
        const std::string* cookie = head.header("Cookie");
        return prove(authz ? *authz : "", cookie ? *cookie : "", m.tokens).role != Role::kNone;
      });
  // The Unix socket stays plain: its peers are on this host, vouched for by the kernel.
  if (m.opt.tls) m.gate->serve_tls_on(m.tcp_listen.get(), m.opt.tls.get());
  return m.gate->start();
}

Status ApiServer::reload_tls() {
  if (!impl_->opt.tls) return Ok{};
  return impl_->opt.tls->reload();
}

void ApiServer::stop() {
  if (!impl_ || !impl_->gate) return;
  impl_->deps.hub->close();  // ends event streams
  impl_->gate->stop();
  impl_->tcp_listen.reset();
  impl_->pool->shutdown();  // waits for the requests being served
  impl_->gate.reset();
  impl_->pool.reset();
  if (!impl_->unix_path.empty()) ::unlink(impl_->unix_path.c_str());
  impl_->unix_listen.reset();
}

Status ApiServer::listen_unix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path)
    return plain_error("--socket " + path + ": longer than " + std::to_string(sizeof addr.sun_path - 1) +
                       " bytes, the most a Unix socket path may be");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket(AF_UNIX)");
  // A socket file left by a daemon that died is removed; one that answers
  // belongs to a live daemon and is not.
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return plain_error("--socket " + path + ": exists and is not a socket");
    Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      return plain_error("--socket " + path + ": another daemon is serving on it");
    ::unlink(path.c_str());
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return sys_error("bind(" + path + ")");
  // 0660: root, the daemon's user and the socket group; the role is then
  // decided per connection from SO_PEERCRED.
  if (::chmod(path.c_str(), 0660) != 0) return sys_error("chmod(" + path + ", 0660)");
  if (impl_->opt.socket_group && ::chown(path.c_str(), static_cast<uid_t>(-1), *impl_->opt.socket_group) != 0)
    return sys_error("chown(" + path + ")");
  if (::listen(fd.get(), SOMAXCONN) != 0) return sys_error("listen(" + path + ")");
  impl_->unix_listen = std::move(fd);
  impl_->unix_path = path;
  return Ok{};
}

void ApiServer::adopt_unix(int listen_fd) { impl_->unix_listen = Fd(listen_fd); }

}  // namespace forkwatch
