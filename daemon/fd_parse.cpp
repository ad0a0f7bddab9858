#include "fd_parse.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>

namespace forkwatch {
namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

template <typename T>
std::optional<T> parse_base(std::string_view s, int base) {
  T v{};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// Splits on runs of blanks; at most `max` fields, the last one holding the rest.
std::vector<std::string_view> fields(std::string_view line, size_t max = 64) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    if (out.size() + 1 == max) {
      out.push_back(trim(line.substr(i)));
      break;
    }
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

template <typename F>
void for_each_line(std::string_view text, F f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    f(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

// "pipe:[123]" with prefix "pipe:" -> 123.
std::optional<uint64_t> bracketed_inode(std::string_view link, std::string_view prefix) {
  if (!starts_with(link, prefix)) return std::nullopt;
  std::string_view rest = link.substr(prefix.size());
  if (rest.size() < 3 || rest.front() != '[' || rest.back() != ']') return std::nullopt;
  return parse_base<uint64_t>(rest.substr(1, rest.size() - 2), 10);
}

// include/net/tcp_states.h, in the order of its enum (1-based).
constexpr const char* kTcpStates[] = {"",          "established", "syn_sent",   "syn_recv", "fin_wait1",
                                      "fin_wait2", "time_wait",   "close",      "close_wait", "last_ack",
                                      "listen",    "closing",     "new_syn_recv", "bound_inactive"};

// "0100007F:1F90" (IPv4) or 32 hex digits ":PORT" (IPv6): each 32-bit word is
// printed from host order (net/ipv4/tcp_ipv4.c get_tcp4_sock,
// net/ipv6/tcp_ipv6.c get_tcp6_sock), so copying the parsed words back into
// memory gives the address bytes.
std::optional<std::string> inet_address(std::string_view text, bool v6) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view hex = text.substr(0, colon);
  auto port = parse_base<uint32_t>(text.substr(colon + 1), 16);
  if (!port || *port > 65535 || hex.size() != (v6 ? 32u : 8u)) return std::nullopt;
  unsigned char bytes[16];
  for (size_t w = 0; w < hex.size() / 8; ++w) {
    auto word = parse_base<uint32_t>(hex.substr(w * 8, 8), 16);
    if (!word) return std::nullopt;
    std::memcpy(bytes + w * 4, &*word, 4);
  }
  char buf[INET6_ADDRSTRLEN];
  if (!::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, buf, sizeof buf)) return std::nullopt;
  std::string out = v6 ? "[" + std::string(buf) + "]" : std::string(buf);
  return out + ":" + std::to_string(*port);
}

}  // namespace

const char* fd_kind_name(FdKind k) {
  switch (k) {
    case FdKind::kFile: return "file";
    case FdKind::kSocket: return "socket";
    case FdKind::kPipe: return "pipe";
    case FdKind::kEventfd: return "eventfd";
    case FdKind::kEpoll: return "epoll";
    case FdKind::kSignalfd: return "signalfd";
    case FdKind::kTimerfd: return "timerfd";
    case FdKind::kMqueue: return "mqueue";
    case FdKind::kAnon: return "anon";
    case FdKind::kOther: return "other";
  }
  return "other";
}

FdLink classify_fd_link(std::string_view link) {
  FdLink out;
  if (auto ino = bracketed_inode(link, "socket:")) {
    out.kind = FdKind::kSocket;
    out.inode = *ino;
  } else if (auto pino = bracketed_inode(link, "pipe:")) {
    out.kind = FdKind::kPipe;
    out.inode = *pino;
  } else if (starts_with(link, "anon_inode:")) {
    // fs/anon_inodes.c names: "[eventfd]", "[eventpoll]", "[signalfd]",
    // "[timerfd]"; others ("inotify", "[pidfd]", "[io_uring]") are anon.
    std::string_view name = link.substr(11);
    if (name == "[eventfd]") out.kind = FdKind::kEventfd;
    else if (name == "[eventpoll]") out.kind = FdKind::kEpoll;
    else if (name == "[signalfd]") out.kind = FdKind::kSignalfd;
    else if (name == "[timerfd]") out.kind = FdKind::kTimerfd;
    else out.kind = FdKind::kAnon;
  } else if (starts_with(link, "/")) {
    out.kind = FdKind::kFile;
    // d_path() appends " (deleted)" to an unlinked file (fs/d_path.c).
    constexpr std::string_view kDeleted = " (deleted)";
    out.deleted = link.size() > kDeleted.size() && link.substr(link.size() - kDeleted.size()) == kDeleted;
  } else {
    out.kind = FdKind::kOther;  // "net:[4026531840]" and other namespace or pseudo files
  }
  return out;
}

std::optional<FdInfo> parse_fdinfo(std::string_view text) {
  FdInfo info;
  bool have_pos = false, have_flags = false, bad = false;
  for_each_line(text, [&](std::string_view line) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || bad) return;
    std::string_view key = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    if (key == "pos") {
      auto v = parse_base<uint64_t>(value, 10);
      bad = !v;
      info.pos = v.value_or(0);
      have_pos = true;
    } else if (key == "flags") {
      auto v = parse_base<uint32_t>(value, 8);
      bad = !v;
      info.flags = v.value_or(0);
      have_flags = true;
    } else if (key == "eventfd-count") {
      info.eventfd_count = parse_base<uint64_t>(value, 16);
    } else if (key == "tfd") {
      // "tfd:        5 events:       19 data: ..." (fs/eventpoll.c ep_show_fdinfo)
      auto f = fields(value, 2);
      if (!f.empty())
        if (auto fd = parse_base<int>(f[0], 10)) info.epoll_targets.push_back(*fd);
    } else if (key == "sigmask") {
      info.sigmask = std::string(value);
    } else if (key == "QSIZE") {
      info.mqueue = true;  // ipc/mqueue.c mqueue_read_file, which fdinfo shows too
    }
  });
  if (bad || !have_pos || !have_flags) return std::nullopt;
  return info;
}

FdKind refine_kind(FdKind link_kind, const FdInfo& info) {
  if (link_kind == FdKind::kFile && info.mqueue) return FdKind::kMqueue;
  return link_kind;
}

void parse_net_inet(std::string_view text, NetProto proto, SocketTable& out,
                    std::vector<SocketEntry>* unowned) {
  const bool v6 = proto == NetProto::kTcp6 || proto == NetProto::kUdp6;
  const bool tcp = proto == NetProto::kTcp || proto == NetProto::kTcp6;
  bool header = true;
  for_each_line(text, [&](std::string_view line) {
    if (std::exchange(header, false)) return;
    // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ...
    auto f = fields(line, 11);
    if (f.size() < 10) return;
    auto local = inet_address(f[1], v6);
    auto remote = inet_address(f[2], v6);
    auto st = parse_base<unsigned>(f[3], 16);
    auto inode = parse_base<uint64_t>(f[9], 10);
    if (!local || !remote || !st || !inode) return;
    SocketEntry e;
    e.family = v6 ? "inet6" : "inet";
    e.type = tcp ? "stream" : "dgram";
    if (!tcp && *st == 7) e.state = "unconnected";  // a UDP socket without a peer is TCP_CLOSE
    else if (*st < std::size(kTcpStates)) e.state = kTcpStates[*st];
    else e.state = "unknown";
    e.local = std::move(*local);
    e.remote = std::move(*remote);
    if (*inode != 0) out[*inode] = std::move(e);
    else if (unowned) unowned->push_back(std::move(e));  // time-wait: no socket holds it
  });
}

void parse_net_unix(std::string_view text, SocketTable& out) {
  bool header = true;
  for_each_line(text, [&](std::string_view line) {
    if (std::exchange(header, false)) return;
    // Num: RefCount Protocol Flags Type St Inode [Path] (net/unix/af_unix.c unix_seq_show)
    auto f = fields(line, 8);
    if (f.size() < 7) return;
    auto flags = parse_base<uint32_t>(f[3], 16);
    auto type = parse_base<unsigned>(f[4], 16);
    auto st = parse_base<unsigned>(f[5], 16);
    auto inode = parse_base<uint64_t>(f[6], 10);
    if (!flags || !type || !st || !inode) return;
    SocketEntry e;
    e.family = "unix";
    e.type = *type == 1 ? "stream" : *type == 2 ? "dgram" : *type == 5 ? "seqpacket" : "other";
    constexpr uint32_t kAcceptCon = 0x10000;  // __SO_ACCEPTCON: listen() was called
    if (*flags & kAcceptCon) e.state = "listen";
    else if (*st == 3) e.state = "established";  // SS_CONNECTED
    else if (*st == 2) e.state = "connecting";
    else if (*st == 4) e.state = "disconnecting";
    else e.state = "unconnected";
    if (f.size() > 7) e.local = std::string(f[7]);  // abstract names already start with '@'
    out[*inode] = std::move(e);
  });
}

std::optional<uint64_t> parse_limits_nofile(std::string_view text) {
  std::optional<uint64_t> out;
  for_each_line(text, [&](std::string_view line) {
    constexpr std::string_view kKey = "Max open files";
    if (!starts_with(line, kKey)) return;
    auto f = fields(line.substr(kKey.size()), 4);
    if (!f.empty()) out = parse_base<uint64_t>(f[0], 10);
  });
  return out;
}

void InodeHolders::add(pid_t pid, uint64_t inode) { holders_[inode].push_back(pid); }

std::vector<pid_t> InodeHolders::peers(uint64_t inode, pid_t self) const {
  auto it = holders_.find(inode);
  if (it == holders_.end()) return {};
  std::vector<pid_t> out;
  for (pid_t p : it->second)
    if (p != self) out.push_back(p);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace forkwatch
