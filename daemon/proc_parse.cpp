#include "proc_parse.h"

#include <charconv>

namespace forkwatch {
namespace {

template <typename T>
bool to_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && ptr == end;
}

// The next token of `rest` separated by spaces or tabs (status uses tabs),
// advancing past it.
std::string_view next_token(std::string_view& rest) {
  size_t start = rest.find_first_not_of(" \t");
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  size_t end = rest.find_first_of(" \t", start);
  std::string_view token = rest.substr(start, end == std::string_view::npos ? rest.size() - start
                                                                             : end - start);
  rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  return token;
}

std::string_view trim(std::string_view s) {
  size_t start = s.find_first_not_of(" \t\n");
  if (start == std::string_view::npos) return {};
  size_t end = s.find_last_not_of(" \t\n");
  return s.substr(start, end - start + 1);
}

// status's Name is escaped by the kernel (seq_escape with "\n\\"): undo it.
std::string unescape_status_name(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char c = s[i + 1];
      if (c == 'n') {
        out += '\n';
        ++i;
        continue;
      }
      if (c == '\\') {
        out += '\\';
        ++i;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  ProcStat st;
  size_t open = text.find(" (");
  if (open == std::string_view::npos || !to_number(text.substr(0, open), st.pid) || st.pid <= 0)
    return std::nullopt;
  size_t close = text.rfind(')');
  if (close == std::string_view::npos || close < open + 2) return std::nullopt;
  st.comm = std::string(text.substr(open + 2, close - open - 2));

  std::string_view rest = text.substr(close + 1);
  while (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
  if (rest.empty() || rest.front() != ' ') return std::nullopt;

  // Fields (3) onward; we stop after (24) rss, so older or newer kernels with
  // more trailing fields parse alike.
  for (int field = 3; field <= 24; ++field) {
    std::string_view tok = next_token(rest);
    if (tok.empty()) return std::nullopt;
    bool ok = true;
    switch (field) {
      case 3:
        ok = tok.size() == 1;
        st.state = tok[0];
        break;
      case 4: ok = to_number(tok, st.ppid); break;
      case 5: ok = to_number(tok, st.pgrp); break;
      case 6: ok = to_number(tok, st.session); break;
      case 9: ok = to_number(tok, st.flags); break;
      case 14: ok = to_number(tok, st.utime); break;
      case 15: ok = to_number(tok, st.stime); break;
      case 20: ok = to_number(tok, st.num_threads); break;
      case 22: ok = to_number(tok, st.starttime); break;
      case 23: ok = to_number(tok, st.vsize); break;
      case 24: ok = to_number(tok, st.rss_pages); break;
      default: break;
    }
    if (!ok) return std::nullopt;
  }
  return st;
}

std::optional<ProcStatus> parse_proc_status(std::string_view text) {
  ProcStatus st;
  bool have_name = false, have_pid = false, have_ppid = false, have_tgid = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::string_view raw = line.substr(colon + 1);
    std::string_view value = trim(raw);
    bool ok = true;
    if (key == "Name") {
      // Keep inner spaces: only the separating tab goes.
      if (!raw.empty() && raw.front() == '\t') raw.remove_prefix(1);
      st.name = unescape_status_name(raw);
      have_name = true;
    } else if (key == "State") {
      ok = !value.empty();
      if (ok) st.state = value[0];
    } else if (key == "Tgid") {
      ok = have_tgid = to_number(value, st.tgid);
    } else if (key == "Pid") {
      ok = have_pid = to_number(value, st.pid);
    } else if (key == "PPid") {
      ok = have_ppid = to_number(value, st.ppid);
    } else if (key == "Threads") {
      ok = to_number(value, st.threads);
    } else if (key == "Uid") {
      std::string_view rest = value;
      std::string_view real = next_token(rest);
      std::string_view effective = next_token(rest);
      ok = to_number(real, st.uid_real) && to_number(effective, st.uid_effective);
    } else if (key == "Gid") {
      std::string_view rest = value;
      std::string_view real = next_token(rest);
      std::string_view effective = next_token(rest);
      ok = to_number(real, st.gid_real) && to_number(effective, st.gid_effective);
    } else if (key == "VmRSS") {
      std::string_view rest = value;
      uint64_t kb = 0;
      ok = to_number(next_token(rest), kb) && next_token(rest) == "kB";
      if (ok) st.vm_rss_kb = kb;
    }
    if (!ok) return std::nullopt;
  }
  if (!have_name || !have_pid || !have_ppid || !have_tgid) return std::nullopt;
  return st;
}

std::optional<ProcStatm> parse_proc_statm(std::string_view text) {
  ProcStatm m;
  std::string_view rest = trim(text);
  uint64_t* fields[] = {&m.size, &m.resident, &m.shared, &m.text, &m.lib, &m.data, &m.dt};
  for (uint64_t* f : fields) {
    if (!to_number(next_token(rest), *f)) return std::nullopt;
  }
  if (!trim(rest).empty()) return std::nullopt;
  return m;
}

std::vector<std::string> parse_cmdline(std::string_view text) {
  std::vector<std::string> args;
  if (text.empty()) return args;
  if (text.back() == '\0') text.remove_suffix(1);
  while (true) {
    size_t nul = text.find('\0');
    args.emplace_back(text.substr(0, nul));
    if (nul == std::string_view::npos) break;
    text = text.substr(nul + 1);
  }
  return args;
}

std::optional<std::string> parse_comm(std::string_view text) {
  if (text.empty() || text.back() != '\n') return std::nullopt;
  text.remove_suffix(1);
  return std::string(text);
}

std::string join_cmdline(const std::vector<std::string>& args) {
  std::string out;
  for (const std::string& a : args) {
    if (&a != &args.front()) out += ' ';
    out += a;
  }
  return out;
}

}  // namespace forkwatch
