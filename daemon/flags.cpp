#include "flags.h"

#include "parse_number.h"

namespace forkwatch {

const char* const kDaemonUsage =
    "usage: forkwatchd [--listen HOST:PORT] [--state-dir DIR] [--config FILE] [--port-file FILE]\n"
    "                  [--token-file FILE] [--no-auth] [--allow-commands] [--workers-dir DIR]\n"
    "                  [--web-dir DIR] [--sample-ms N] [--max-workers N] [--max-sse-clients N]\n"
    "                  [--help] [--version]\n"
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
    } else if (a == "--allow-commands") {
      if (auto st = flag_only(); !st) return st.error();
      f.allow_commands = true;
    } else if (a == "--listen" || a == "--state-dir" || a == "--config" || a == "--port-file" ||
               a == "--token-file" || a == "--workers-dir" || a == "--web-dir" || a == "--sample-ms" ||
               a == "--max-workers" || a == "--max-sse-clients") {
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
      else if (a == "--workers-dir") f.workers_dir = *v;
      else if (a == "--web-dir") f.web_dir = *v;
      else {
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
  return f;
}

}  // namespace forkwatch
