#include "lifetime_api.h"

#include <time.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "json_dump.h"
#include "json_text.h"
#include "parse_number.h"
#include "proc_parse.h"

namespace forkwatch {
namespace {

using nlohmann::json;

constexpr int64_t kSkewNs = 1'000'000'000;  // clocks of browser and daemon may differ this much

// "YYYY-MM-DDTHH:MM:SS[.fraction]Z"
std::optional<int64_t> parse_iso8601(const std::string& s) {
  if (s.size() < 20 || s.back() != 'Z') return std::nullopt;
  auto digits = [&](size_t at, size_t n) -> std::optional<int> {
    if (at + n > s.size()) return std::nullopt;
    auto v = parse_decimal<int>(s.substr(at, n));
    return v;
  };
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') return std::nullopt;
  auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2), mi = digits(14, 2), se = digits(17, 2);
  if (!y || !mo || !d || !h || !mi || !se || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 || *mi > 59 ||
      *se > 60)
    return std::nullopt;
  int64_t frac_ns = 0;
  size_t at = 19;
  if (s[at] == '.') {
    const size_t begin = ++at;
    while (at < s.size() - 1 && at - begin < 9 && s[at] >= '0' && s[at] <= '9') frac_ns = frac_ns * 10 + (s[at++] - '0');
    if (at == begin) return std::nullopt;
    for (size_t n = at - begin; n < 9; ++n) frac_ns *= 10;
  }
  if (at != s.size() - 1) return std::nullopt;
  tm t{};
  t.tm_year = *y - 1900;
  t.tm_mon = *mo - 1;
  t.tm_mday = *d;
  t.tm_hour = *h;
  t.tm_min = *mi;
  t.tm_sec = *se;
  const time_t secs = timegm(&t);
  if (secs < 0) return std::nullopt;
  return int64_t{secs} * 1'000'000'000 + frac_ns;
}

std::string instant_text(int64_t ns) {
  const time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t);
  return buf;
}

ApiError invalid(const std::string& message) { return {422, "invalid_value", message}; }

// One integer query parameter within [min, max]; nullopt when absent.
std::variant<std::optional<int64_t>, ApiError> integer_param(const std::map<std::string, std::string>& params,
                                                             const char* name, int64_t min, int64_t max) {
  auto it = params.find(name);
  if (it == params.end()) return std::optional<int64_t>{};
  auto n = parse_decimal<int64_t>(it->second);
  if (!n || *n < min || *n > max)
    return invalid(std::string(name) + ": must be an integer from " + std::to_string(min) + " to " +
                   std::to_string(max) + " (got \"" + it->second + "\")");
  return n;
}

// ",\"next_before\":ID" when the page is full (more may follow), else null.
std::string next_before(size_t rows, int limit, int64_t last_id) {
  return static_cast<int>(rows) == limit && rows > 0 ? std::to_string(last_id) : "null";
}

}  // namespace

std::optional<int64_t> parse_instant(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    auto v = parse_decimal<int64_t>(text);
    if (v) return v;
    return std::nullopt;
  }
  return parse_iso8601(text);
}

std::variant<db::LifetimeFilter, ApiError> parse_lifetime_query(const std::map<std::string, std::string>& params) {
  db::LifetimeFilter f;
  auto integer = [&](const char* name, int64_t min, int64_t max) { return integer_param(params, name, min, max); };
  auto instant = [&](const char* name) -> std::variant<std::optional<int64_t>, ApiError> {
    auto it = params.find(name);
    if (it == params.end()) return std::optional<int64_t>{};
    auto v = parse_instant(it->second);
    if (!v)
      return invalid(std::string(name) + ": must be CLOCK_REALTIME nanoseconds or ISO 8601 UTC like "
                                         "2026-12-01T10:00:00Z (got \"" + it->second + "\")");
    return v;
  };
  for (auto [name, min, max, slot] :
       {std::tuple{"worker", int64_t{1}, INT64_MAX, &f.worker_id}, {"limit", int64_t{1}, int64_t{1000}, nullptr},
        {"before", int64_t{1}, INT64_MAX, &f.before_id}, {"pid", int64_t{1}, int64_t{4194304}, nullptr}}) {
    auto v = integer(name, min, max);
    if (auto* e = std::get_if<ApiError>(&v)) return *e;
    auto n = std::get<std::optional<int64_t>>(v);
    if (!n) continue;
    if (slot) *slot = *n;
    else if (std::string_view(name) == "limit") f.limit = static_cast<int>(*n);
    else f.pid = static_cast<pid_t>(*n);
  }
  for (auto [name, slot] : {std::pair{"since", &f.since_ns}, {"until", &f.until_ns}}) {
    auto v = instant(name);
    if (auto* e = std::get_if<ApiError>(&v)) return *e;
    *slot = std::get<std::optional<int64_t>>(v);
  }
  if (f.since_ns && f.until_ns && *f.since_ns > *f.until_ns)
    return invalid("since (" + std::to_string(*f.since_ns) + ") is after until (" + std::to_string(*f.until_ns) + ")");
  if (auto it = params.find("alive"); it != params.end()) {
    if (it->second == "true" || it->second == "1") f.alive = true;
    else if (it->second == "false" || it->second == "0") f.alive = false;
    else return invalid("alive: must be true or false (got \"" + it->second + "\")");
  }
  return f;
}

std::variant<int64_t, ApiError> parse_tree_at(const std::string& text, int64_t now_ns, std::optional<int64_t> oldest_ns) {
  auto t = parse_instant(text);
  if (!t)
    return invalid("at: must be CLOCK_REALTIME nanoseconds or ISO 8601 UTC like 2026-12-01T10:00:00Z (got \"" + text +
                   "\")");
  if (*t > now_ns + kSkewNs)
    return ApiError{422, "in_future", "at: " + instant_text(*t) + " is in the future (now is " + instant_text(now_ns) + ")"};
  if (oldest_ns && *t < *oldest_ns)
    return ApiError{422, "before_history", "at: " + instant_text(*t) + " is before the oldest lifetime kept (" +
                                               instant_text(*oldest_ns) + ", " + std::to_string(*oldest_ns) +
                                               " ns): nothing older is recorded, because retention removed it or it predates this database"};
  return *t;
}

std::string lifetimes_page_json(const std::vector<db::LifetimeRecord>& rows, int limit,
                                const std::vector<ProcessGap>& gaps) {
  std::string out = "{\"rows\":[";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i) out += ',';
    out += lifetime_json(rows[i].life, rows[i].wait_id);
  }
  out += "],\"next_before\":";
  out += next_before(rows.size(), limit, rows.empty() ? 0 : rows.back().life.id);
  json g = json::array();
  for (const ProcessGap& p : gaps) g.push_back({{"ts_ns", p.ts_ns}, {"lost", p.lost}, {"reason", p.reason}});
  out += ",\"gaps\":" + dump_json(g) + "}";
  return out;
}

std::variant<db::ThreadFilter, ApiError> parse_thread_query(int64_t lifetime_id,
                                                            const std::map<std::string, std::string>& params) {
  db::ThreadFilter f;
  f.lifetime_id = lifetime_id;
  auto limit = integer_param(params, "limit", 1, 1000);
  if (auto* e = std::get_if<ApiError>(&limit)) return *e;
  if (auto n = std::get<std::optional<int64_t>>(limit)) f.limit = static_cast<int>(*n);
  auto before = integer_param(params, "before", 1, INT64_MAX);
  if (auto* e = std::get_if<ApiError>(&before)) return *e;
  f.before_id = std::get<std::optional<int64_t>>(before);
  return f;
}

std::string threads_page_json(int64_t lifetime_id, const std::vector<ThreadLifetime>& rows, int limit) {
  std::string out = "{\"lifetime_id\":" + std::to_string(lifetime_id) + ",\"rows\":[";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i) out += ',';
    out += thread_lifetime_json(rows[i]);
  }
  out += "],\"next_before\":" + next_before(rows.size(), limit, rows.empty() ? 0 : rows.back().id) + "}";
  return out;
}

std::string tree_at_json(const std::vector<db::LifetimeRecord>& alive) {
  std::unordered_map<pid_t, size_t> index;
  for (size_t i = 0; i < alive.size(); ++i) index[alive[i].life.pid] = i;
  std::vector<std::vector<size_t>> children(alive.size());
  std::vector<size_t> roots;
  for (size_t i = 0; i < alive.size(); ++i) {
    auto p = index.find(alive[i].life.ppid);
    // A parent that forked after its child is a reused pid, not the parent.
    if (p != index.end() && p->second != i && alive[p->second].life.forked_ns <= alive[i].life.forked_ns)
      children[p->second].push_back(i);
    else
      roots.push_back(i);
  }
  // Depth first over an explicit stack, so a deep chain cannot exhaust it;
  // written straight as text (json_text.h): 1,500 nodes through nlohmann
  // values cost 10 ms (bench/RESULTS.md, issue 15).
  std::string out = "[";
  struct Frame {
    size_t node;
    size_t next_child;
  };
  std::vector<Frame> stack;
  auto open_node = [&](size_t i) {
    const Lifetime& l = alive[i].life;
    out += '{';
    put_lifetime_fields(out, l);
    json_text::put_field(out, ",\"lifetime_id\":", l.id);
    json_text::put_field(out, ",\"cmdline\":", std::string_view(join_cmdline(l.argv)));
    json_text::put_raw(out, ",\"pgid\":null,\"state\":\"\",\"worker_name\":null,\"cpu_percent\":0,"
                            "\"rss_bytes\":0,\"threads\":[],\"children\":[");
    stack.push_back({i, 0});
  };
  for (size_t r = 0; r < roots.size(); ++r) {
    if (r) out += ',';
    open_node(roots[r]);
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.next_child < children[f.node].size()) {
        if (f.next_child) out += ',';
        open_node(children[f.node][f.next_child++]);
        continue;
      }
      out += "]}";
      stack.pop_back();
    }
  }
  out += ']';
  return out;
}

}  // namespace forkwatch
