#include "flags.h"

#include "parse_number.h"

namespace forkwatch {

const char* const kDaemonUsage =
    "usage: forkwatchd [--listen HOST:PORT] [--state-dir DIR] [--config FILE] [--port-file FILE]\n"
    "                  [--token-file FILE] [--no-auth] [--allow-commands] [--workers-dir DIR]\n"
    "                  [--web-dir DIR] [--sample-ms N] [--max-workers N] [--max-sse-clients N]\n"
    "                  [--history-max-age-days N] [--history-max-mib N] [--read-token-file FILE]\n"
    "                  [--socket PATH | --no-socket] [--socket-group NAME] [--no-process-events]\n"
    "                  [--no-realtime-loop] [--tls-cert FILE --tls-key FILE]\n"
    "                  [--containment auto|cgroup|process-group] [--cgroup-root DIR] [--help] [--version]\n"
    "A process supervisor you can watch: see docs/ and http://HOST:PORT/ once running.\n";

namespace {

Result<int64_t> parse_int(const std::string& flag, const std::string& v, int64_t min, int64_t max) {
  auto n = parse_decimal<int64_t>(v);
  if (!n || *n < min || *n > max)
    return plain_error(flag + ": expected a whole number from " + std::to_string(min) + " to " +
                       std::to_string(max) + ", got \"" + v + "\"");
  return *n;
}

}  // namespace

Result<std::pair<std::string, int>> parse_listen(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return plain_error("--listen: expected HOST:PORT (like 127.0.0.1:7420), got \"" + text + "\"");
  std::string host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']') return plain_error("--listen: unbalanced [ in \"" + text + "\"");
    host = host.substr(1, host.size() - 2);
  }
  auto port = parse_int("--listen", text.substr(colon + 1), 0, 65535);
  if (!port) return plain_error("--listen: the port must be 0 to 65535, got \"" + text.substr(colon + 1) + "\"");
  return std::pair{host, static_cast<int>(*port)};
}

Result<DaemonFlags> parse_daemon_flags(const std::vector<std::string>& args,
                                       const std::map<std::string, std::string>& env) {
  DaemonFlags f;
  bool no_socket = false;
  auto getenv = [&](const char* k) -> std::string {
    auto it = env.find(k);
    return it == env.end() ? "" : it->second;
  };
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string value;
    bool has_inline = false;
    if (a.starts_with("--") && a.find('=') != std::string::npos) {
      value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_inline = true;
    }
    auto take = [&]() -> Result<std::string> {
      if (has_inline) return value;
      if (i + 1 >= args.size()) return plain_error(a + ": needs a value");
      return args[++i];
    };
    auto flag_only = [&]() -> Status {
      if (has_inline) return plain_error(a + ": takes no value");
      return Ok{};
    };
    if (a == "--help" || a == "-h") {
      f.help = true;
    } else if (a == "--version") {
      f.version = true;
    } else if (a == "--no-auth") {
      if (auto st = flag_only(); !st) return st.error();
      f.no_auth = true;
    } else if (a == "--no-realtime-loop") {
      if (auto st = flag_only(); !st) return st.error();
      f.realtime_loop = false;
    } else if (a == "--no-process-events") {
      if (auto st = flag_only(); !st) return st.error();
      f.process_events = false;
    } else if (a == "--no-socket") {
      if (auto st = flag_only(); !st) return st.error();
      no_socket = true;
    } else if (a == "--allow-commands") {
      if (auto st = flag_only(); !st) return st.error();
      f.allow_commands = true;
    } else if (a == "--listen" || a == "--state-dir" || a == "--config" || a == "--port-file" ||
               a == "--token-file" || a == "--workers-dir" || a == "--web-dir" || a == "--sample-ms" ||
               a == "--max-workers" || a == "--max-sse-clients" || a == "--history-max-age-days" ||
               a == "--history-max-mib" || a == "--read-token-file" || a == "--socket" || a == "--socket-group" ||
               a == "--tls-cert" || a == "--tls-key" || a == "--containment" || a == "--cgroup-root") {
      auto v = take();
      if (!v) return v.error();
      if (v->empty()) return plain_error(a + ": needs a non-empty value");
      if (a == "--listen") {
        auto hp = parse_listen(*v);
        if (!hp) return hp.error();
        f.listen_host = hp->first;
        f.listen_port = hp->second;
      } else if (a == "--state-dir") f.state_dir = *v;
      else if (a == "--config") f.config = *v;
      else if (a == "--port-file") f.port_file = *v;
      else if (a == "--token-file") f.token_file = *v;
      else if (a == "--read-token-file") f.read_token_file = *v;
      else if (a == "--socket") {
        f.socket = *v;
        f.socket_given = true;
      } else if (a == "--socket-group") f.socket_group = *v;
      else if (a == "--tls-cert") f.tls_cert = *v;
      else if (a == "--tls-key") f.tls_key = *v;
      else if (a == "--containment") {
        if (*v != "auto" && *v != "cgroup" && *v != "process-group")
          return plain_error("--containment: expected auto, cgroup or process-group, got \"" + *v + "\"");
        f.containment = *v;
      } else if (a == "--cgroup-root") {
        if (v->front() != '/') return plain_error("--cgroup-root: expected an absolute path, got \"" + *v + "\"");
        f.cgroup_root = *v;
      }
      else if (a == "--workers-dir") f.workers_dir = *v;
      else if (a == "--web-dir") f.web_dir = *v;
      else if (a == "--history-max-age-days" || a == "--history-max-mib") {
        // 0 lifts that bound; a century or a TiB is the most that makes sense.
        const bool days = a == "--history-max-age-days";
        auto n = parse_int(a, *v, 0, days ? 36'500 : 1 << 20);
        if (!n) return n.error();
        (days ? f.history_max_age_days : f.history_max_mib) = *n;
      } else {
        const bool sample = a == "--sample-ms";
        auto n = parse_int(a, *v, sample ? 10 : 1, sample ? 3'600'000 : 10'000);
        if (!n) return n.error();
        if (sample) f.sample_ms = *n;
        else if (a == "--max-workers") f.max_workers = static_cast<size_t>(*n);
        else f.max_sse_clients = static_cast<size_t>(*n);
      }
    } else {
      return plain_error("unknown flag \"" + args[i] + "\" (see --help)");
    }
  }
  if (f.state_dir.empty()) {
    // systemd may list several directories separated by ':'; ours is the first.
    std::string sd = getenv("STATE_DIRECTORY");
    if (!sd.empty()) f.state_dir = sd.substr(0, sd.find(':'));
    else if (!getenv("XDG_STATE_HOME").empty()) f.state_dir = getenv("XDG_STATE_HOME") + "/forkwatch";
    else if (!getenv("HOME").empty()) f.state_dir = getenv("HOME") + "/.local/state/forkwatch";
    else return plain_error("--state-dir: not given, and neither STATE_DIRECTORY, XDG_STATE_HOME nor HOME is set");
  }
  if (f.token_file.empty()) f.token_file = f.state_dir + "/token";
  if (f.tls_cert.empty() != f.tls_key.empty())
    return plain_error(f.tls_cert.empty() ? "--tls-key: needs --tls-cert (the certificate for that key)"
                                          : "--tls-cert: needs --tls-key (the certificate's private key)");
  if (no_socket && f.socket_given) return plain_error("--no-socket: cannot be given with --socket");
  if (!f.read_token_file.empty() && f.read_token_file == f.token_file)
    return plain_error("--read-token-file: must not be the admin --token-file (" + f.token_file + ")");
  if (no_socket) {
    f.socket.clear();
  } else if (!f.socket_given) {
    // systemd's RuntimeDirectory= (forkwatchd.service has it), else the state dir.
    std::string rd = getenv("RUNTIME_DIRECTORY");
    f.socket = (rd.empty() ? f.state_dir : rd.substr(0, rd.find(':'))) + "/forkwatch.sock";
  }
  return f;
}

}  // namespace forkwatch
