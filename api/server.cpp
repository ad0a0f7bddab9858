#include "server.h"

#include <pthread.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>

#include "auth.h"
#include "event.h"
#include "event_json.h"
#include "history.h"
#include "json_map.h"
#include "log.h"
#include "parse_number.h"
#include "sampler.h"
#include "static_files.h"
#include "task_pool.h"

namespace forkwatch {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// httplib::Server whose listening socket may come from systemd (svr_sock_ is
// the one protected member that listen_after_bind() serves from).
class Server : public httplib::Server {
 public:
  void adopt_socket(int fd) { svr_sock_ = fd; }
};

constexpr auto kCommandTimeout = 10s;
constexpr auto kSampleTimeout = 3s;
constexpr const char* kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

thread_local std::chrono::steady_clock::time_point t_request_start;

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  // With a charset, Debian's cpp-httplib leaves the body uncompressed: it
  // otherwise Brotli-compresses JSON at quality 11 whenever the client offers
  // br (every browser does), which made a 300 KiB tree take 1.5 s instead of
  // 13 ms (bench/RESULTS.md, dashboard).
  res.set_content(body, "application/json; charset=utf-8");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, error_body(e)); }

// A path id: digits only, within int64.
std::optional<int64_t> parse_id(const std::string& s) {
  auto v = parse_decimal<int64_t>(s);
  if (!v || *v <= 0) return std::nullopt;
  return v;
}

// An optional integer query parameter within [min, max].
std::variant<std::optional<int64_t>, ApiError> query_int(const httplib::Request& req, const char* name,
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
    svr.new_task_queue = [this] { return new TaskPool(opt.max_threads, 4); };
    svr.set_payload_max_length(opt.max_body_bytes);
    svr.set_read_timeout(opt.read_timeout_s, 0);
    svr.set_write_timeout(opt.read_timeout_s, 0);
    svr.set_keep_alive_timeout(5);
    // Without it every small reply waits for the client's delayed ACK: ~40 ms
    // per request (bench/RESULTS.md: /api/health p50 43.9 ms -> 0.2 ms).
    svr.set_tcp_nodelay(true);
    svr.set_default_headers({{"Content-Security-Policy", kCsp},
                             {"X-Content-Type-Options", "nosniff"},
                             {"Referrer-Policy", "no-referrer"}});
    routes();
  }

  ApiDeps deps;
  ApiOptions opt;
  StaticFiles web{opt.web_dir};
  Server svr;
  std::thread thread;
  db::LatencyHistogram request_duration;

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
      workers_json = json{{"workers", out}}.dump();
      workers_json_for = std::move(s);
    }
    return workers_json;
  }

  // Posts a command and waits for the loop's reply.
  std::optional<CommandReply> call(Command c) {
    auto fut = deps.commands->post(std::move(c));
    if (fut.wait_for(kCommandTimeout) != std::future_status::ready) return std::nullopt;
    return fut.get();
  }

  bool authorized(const httplib::Request& req, httplib::Response& res);
  void routes();
  void worker_action(const httplib::Request& req, httplib::Response& res);
  void start_worker(const httplib::Request& req, httplib::Response& res);
  void tree(const httplib::Request& req, httplib::Response& res);
  void history(const httplib::Request& req, httplib::Response& res);
  void logs(const httplib::Request& req, httplib::Response& res, int64_t id);
  void events(const httplib::Request& req, httplib::Response& res);
  std::shared_ptr<const TreeSample> fresh_tree(bool all);
  void static_file(const httplib::Request& req, httplib::Response& res);
};

bool ApiServer::Impl::authorized(const httplib::Request& req, httplib::Response& res) {
  if (opt.no_auth) return true;
  const std::string authz = req.get_header_value("Authorization");
  if (!authz.empty()) {
    auto tok = bearer_token(authz);
    if (tok && constant_time_equal(*tok, opt.token)) return true;
    send_error(res, {401, "unauthorized", "the bearer token is wrong (Authorization: Bearer <token>)"});
    return false;
  }
  auto cookie = cookie_value(req.get_header_value("Cookie"), kCookieName);
  if (!cookie || !constant_time_equal(*cookie, opt.token)) {
    send_error(res, {401, "unauthorized",
                     "a token is required: send Authorization: Bearer <token> (the token is in the daemon's token file)"});
    return false;
  }
  // Cookie only: a state change must come from our own page (CSRF).
  if (req.method != "GET" && req.method != "HEAD") {
    std::string origin = req.get_header_value("Origin");
    if (origin.empty()) origin = req.get_header_value("Referer");
    if (!same_origin(origin, req.get_header_value("Host"))) {
      send_error(res, {403, "bad_origin",
                       "a cookie-authenticated change needs an Origin of this daemon (" +
                           req.get_header_value("Host") + ")"});
      return false;
    }
  }
  return true;
}

void ApiServer::Impl::routes() {
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_request_start = std::chrono::steady_clock::now();
    const std::string& p = req.path;
    // The dashboard link: ?token=... becomes an HttpOnly cookie, then the URL loses it.
    if (!p.starts_with("/api/") && p != "/metrics" && req.has_param("token")) {
      const std::string tok = req.get_param_value("token");
      if (!opt.no_auth && !constant_time_equal(tok, opt.token)) {
        send_error(res, {401, "unauthorized", "the token in the link is wrong"});
        return httplib::Server::HandlerResponse::Handled;
      }
      res.set_header("Set-Cookie", std::string(kCookieName) + "=" + tok +
                                       "; Path=/; HttpOnly; SameSite=Strict");
      res.set_redirect(p, 303);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (p.starts_with("/api/") && p != "/api/health" && !authorized(req, res))
      return httplib::Server::HandlerResponse::Handled;
    // Judge an announced length from the headers: cpp-httplib would otherwise
    // wait to read (and discard) the whole oversized body before answering.
    if (req.has_header("Content-Length") &&
        req.get_header_value<uint64_t>("Content-Length") > opt.max_body_bytes) {
      send_error(res, {413, "too_large",
                       "the body is larger than the limit (" + std::to_string(opt.max_body_bytes) + " bytes)"});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_logger([this](const httplib::Request&, const httplib::Response&) {
    request_duration.record(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now() - t_request_start).count());
  });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    switch (res.status) {
      case 404: send_error(res, {404, "not_found", "no such path: " + req.method + " " + req.path}); break;
      case 413: send_error(res, {413, "too_large", "the body is larger than the limit (1 MiB)"}); break;
      case 400: send_error(res, {400, "bad_request", "the request could not be read"}); break;
      default:
        send_error(res, {res.status, "error", "HTTP " + std::to_string(res.status)});
    }
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
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

  svr.Get("/api/health", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, json{{"status", "ok"}, {"version", opt.version}, {"pid", getpid()},
                             {"uptime_s", (monotonic_ns() - deps.started_mono_ns) / 1'000'000'000}}.dump());
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    auto s = snapshot();
    MetricsInputs in{s.get(), deps.counters, &request_duration, deps.hub->clients(),
                     deps.store_metrics ? deps.store_metrics() : ""};
    res.set_content(render_metrics(in), "text/plain; version=0.0.4");
  });
  svr.Get("/api/programs", [this](const httplib::Request&, httplib::Response& res) {
    json out = json::array();
    for (const auto& p : snapshot()->catalogue) out.push_back(program_json(p));
    send_json(res, 200, json{{"programs", out}}.dump());
  });
  svr.Get("/api/workers", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, workers_list_json());
  });
  svr.Post("/api/workers", [this](const httplib::Request& req, httplib::Response& res) { start_worker(req, res); });
  svr.Get(R"(/api/workers/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto id = parse_id(req.matches[1]);
    if (!id) return send_error(res, {400, "invalid_id", "worker ids are positive integers (got \"" + std::string(req.matches[1]) + "\")"});
    auto s = snapshot();
    const WorkerView* w = s->find(*id);
    if (!w) return send_error(res, {404, "not_found", "no worker with id " + std::to_string(*id)});
    send_json(res, 200, worker_json(*w, true).dump());
  });
  svr.Post(R"(/api/workers/([^/]+)/(signal|stop|restart))",
           [this](const httplib::Request& req, httplib::Response& res) { worker_action(req, res); });
  svr.Delete(R"(/api/workers/([^/]+))",
             [this](const httplib::Request& req, httplib::Response& res) { worker_action(req, res); });
  svr.Get(R"(/api/workers/([^/]+)/logs)", [this](const httplib::Request& req, httplib::Response& res) {
    auto id = parse_id(req.matches[1]);
    if (!id) return send_error(res, {400, "invalid_id", "worker ids are positive integers"});
    logs(req, res, *id);
  });
  svr.Get(R"(/api/workers/([^/]+)/samples)", [this](const httplib::Request& req, httplib::Response& res) {
    auto id = parse_id(req.matches[1]);
    if (!id) return send_error(res, {400, "invalid_id", "worker ids are positive integers"});
    auto s = snapshot();
    if (!s->find(*id)) return send_error(res, {404, "not_found", "no worker with id " + std::to_string(*id)});
    deps.counters->last_watch_ns = monotonic_ns();
    std::string samples = s->tree && s->tree->history ? s->tree->history->json(*id) : "[]";
    send_json(res, 200, "{\"worker_id\":" + std::to_string(*id) + ",\"samples\":" + samples + "}");
  });
  svr.Get("/api/tree", [this](const httplib::Request& req, httplib::Response& res) { tree(req, res); });
  svr.Get(R"(/api/processes/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto pid = parse_id(req.matches[1]);
    if (!pid || *pid > INT32_MAX) return send_error(res, {400, "invalid_pid", "pids are positive integers"});
    auto t = fresh_tree(false);
    if (t && t->tree)
      if (auto text = process_json(*t->tree, static_cast<pid_t>(*pid), t->tags)) return send_json(res, 200, *text);
    send_error(res, {404, "not_found", "no process " + std::to_string(*pid) + " in the supervised tree"});
  });
  svr.Get("/api/history", [this](const httplib::Request& req, httplib::Response& res) { history(req, res); });
  svr.Get("/api/events", [this](const httplib::Request& req, httplib::Response& res) { events(req, res); });
  // Anything else under /api is a JSON 404, never the dashboard's files.
  svr.Get(R"(/api/.*)", [](const httplib::Request& req, httplib::Response& res) {
    send_error(res, {404, "not_found", "no such endpoint: GET " + req.path});
  });
  if (!opt.web_dir.empty() && !web.enabled()) log::warning("dashboard directory not found: " + opt.web_dir);
  svr.Get(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) { static_file(req, res); });
}

void ApiServer::Impl::static_file(const httplib::Request& req, httplib::Response& res) {
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
  // A sized provider: sent as it is, never compressed by this httplib build.
  res.set_content_provider(body->size(), std::string(StaticFiles::content_type(*file)),
                           [body](size_t offset, size_t length, httplib::DataSink& sink) {
                             return sink.write(body->data() + offset, length);
                           });
}

void ApiServer::Impl::start_worker(const httplib::Request& req, httplib::Response& res) {
  auto s = snapshot();
  auto parsed = parse_start_request(req.body, *s, opt.allow_commands);
  if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
  auto reply = call(std::move(std::get<StartWorker>(parsed)));
  if (!reply) return send_error(res, {503, "busy", "the supervisor did not answer in time"});
  if (reply->code != ReplyCode::kOk) return send_error(res, reply_error(*reply));
  send_json(res, 201, worker_json(*reply->worker, true).dump());
}

void ApiServer::Impl::worker_action(const httplib::Request& req, httplib::Response& res) {
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
    } else {
      c = RestartWorker{*id};
    }
  }
  auto reply = call(std::move(c));
  if (!reply) return send_error(res, {503, "busy", "the supervisor did not answer in time"});
  if (reply->code != ReplyCode::kOk) return send_error(res, reply_error(*reply));
  json body = worker_json(*reply->worker, false);
  send_json(res, 200, body.dump());
}

std::shared_ptr<const TreeSample> ApiServer::Impl::fresh_tree(bool all) {
  deps.counters->last_watch_ns = monotonic_ns();
  auto s = snapshot();
  const int64_t max_age_ns = std::max<int64_t>(2 * opt.sample_ms, 1500) * 1'000'000;
  auto ok = [&](const std::shared_ptr<const TreeSample>& t) {
    return t && (!all || t->all_scope) && monotonic_ns() - t->taken_ns < max_age_ns;
  };
  if (ok(s->tree)) return s->tree;
  auto fut = deps.commands->post(SampleNow{all});
  if (fut.wait_for(kSampleTimeout) != std::future_status::ready) return nullptr;
  return snapshot()->tree;
}

void ApiServer::Impl::tree(const httplib::Request& req, httplib::Response& res) {
  const std::string scope = req.has_param("scope") ? req.get_param_value("scope") : "supervised";
  if (scope != "supervised" && scope != "all")
    return send_error(res, {422, "invalid_value", "scope: must be supervised or all (got \"" + scope + "\")"});
  auto t = fresh_tree(scope == "all");
  if (!t) return send_error(res, {503, "no_sample", "no process sample could be taken in time"});
  const std::string& body = scope == "all" && t->all_scope ? t->all_json : t->supervised_json;
  send_json(res, 200, body);
}

void ApiServer::Impl::history(const httplib::Request& req, httplib::Response& res) {
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

void ApiServer::Impl::logs(const httplib::Request& req, httplib::Response& res, int64_t id) {
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
  auto lines = w->output->tail(std::get<std::optional<int64_t>>(tail).value_or(200), stream != "stderr",
                               stream != "stdout", std::get<std::optional<int64_t>>(after).value_or(0));
  json out = json::array();
  for (const auto& l : lines)
    out.push_back({{"seq", l.seq}, {"ts_ns", l.ts_ns}, {"stream", l.stream == Stream::kStdout ? "stdout" : "stderr"},
                   {"text", l.text}});
  send_json(res, 200, json{{"worker_id", id}, {"lines", out}}.dump(-1, ' ', false, json::error_handler_t::replace));
}

void ApiServer::Impl::events(const httplib::Request& req, httplib::Response& res) {
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
      [st, hub, hist, counters](size_t, httplib::DataSink& sink) {
        if (hub->closed()) return false;
        counters->last_watch_ns = monotonic_ns();
        bool gap = false;
        std::vector<HubEntry> batch = hub->since(st->last, 256, gap);
        if (gap && hist) {
          // Fell out of the ring (or reconnected late): the store has the rest.
          auto older = hist->events_after(st->last, 256);
          if (older && !older->empty()) {
            batch.clear();
            for (auto& e : *older) batch.push_back(HubEntry{e.id, e.kind, e.data});
          }
        }
        if (batch.empty()) {
          hub->wait(st->last, 15s);
          if (hub->since(st->last, 1, gap).empty()) {
            static constexpr char kBeat[] = ": heartbeat\n\n";
            return sink.write(kBeat, sizeof kBeat - 1);
          }
          return true;
        }
        std::string out;
        for (const auto& e : batch) {
          out += "id: " + std::to_string(e.id) + "\nevent: " + e.type + "\ndata: " + e.data + "\n\n";
          st->last = e.id;
        }
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
  int bound = port == 0 ? impl_->svr.bind_to_any_port(h) : (impl_->svr.bind_to_port(h, port) ? port : -1);
  if (bound <= 0) return sys_error("bind(" + host + ":" + std::to_string(port) + ")");
  return bound;
}

Result<int> ApiServer::adopt(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return sys_error("getsockname(listen fd)");
  int port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  impl_->svr.adopt_socket(fd);
  return port;
}

Status ApiServer::start() {
  impl_->thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "fw-accept");
    impl_->svr.listen_after_bind();
  });
  // stop() before the listen loop runs is lost (FIELD-NOTES.md): wait for it.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!impl_->svr.is_running()) {
    if (std::chrono::steady_clock::now() > deadline) return plain_error("the HTTP server did not start");
    std::this_thread::sleep_for(1ms);
  }
  return Ok{};
}

void ApiServer::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->deps.hub->close();
  impl_->svr.stop();
  impl_->thread.join();
}

}  // namespace forkwatch
