#include "proc_connector.h"

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>

namespace forkwatch {
namespace {

// Copies a T out of possibly unaligned bytes; false if fewer than sizeof(T) remain.
template <typename T>
bool read_at(std::span<const uint8_t> bytes, size_t offset, T& out) {
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return false;
  std::memcpy(&out, bytes.data() + offset, sizeof(T));
  return true;
}

// The bytes of proc_event before its union (what, cpu, timestamp_ns).
constexpr size_t kEventHeader = offsetof(proc_event, event_data);

ProcOp op_of(uint32_t what) {
  switch (what) {
    case proc_event::PROC_EVENT_NONE: return ProcOp::kAck;
    case proc_event::PROC_EVENT_FORK: return ProcOp::kFork;
    case proc_event::PROC_EVENT_EXEC: return ProcOp::kExec;
    case proc_event::PROC_EVENT_UID: return ProcOp::kUid;
    case proc_event::PROC_EVENT_GID: return ProcOp::kGid;
    case proc_event::PROC_EVENT_SID: return ProcOp::kSid;
    case proc_event::PROC_EVENT_PTRACE: return ProcOp::kPtrace;
    case proc_event::PROC_EVENT_COMM: return ProcOp::kComm;
    case proc_event::PROC_EVENT_COREDUMP: return ProcOp::kCoredump;
    case proc_event::PROC_EVENT_EXIT: return ProcOp::kExit;
    default: return ProcOp::kOther;
  }
}

uint32_t what_of(ProcOp op) {
  switch (op) {
    case ProcOp::kAck: return proc_event::PROC_EVENT_NONE;
    case ProcOp::kFork: return proc_event::PROC_EVENT_FORK;
    case ProcOp::kExec: return proc_event::PROC_EVENT_EXEC;
    case ProcOp::kUid: return proc_event::PROC_EVENT_UID;
    case ProcOp::kGid: return proc_event::PROC_EVENT_GID;
    case ProcOp::kSid: return proc_event::PROC_EVENT_SID;
    case ProcOp::kPtrace: return proc_event::PROC_EVENT_PTRACE;
    case ProcOp::kComm: return proc_event::PROC_EVENT_COMM;
    case ProcOp::kCoredump: return proc_event::PROC_EVENT_COREDUMP;
    case ProcOp::kExit: return proc_event::PROC_EVENT_EXIT;
    case ProcOp::kOther: break;
  }
  return 0x400;  // the kernel's "next" bit: no event has it yet
}

// The union member of one proc_event, by op. false: too short for it.
bool parse_body(std::span<const uint8_t> data, ProcEvent& e) {
  const size_t at = kEventHeader;
  switch (e.op) {
    case ProcOp::kAck: return read_at(data, at, e.ack_err);
    case ProcOp::kFork: {
      decltype(proc_event::event_data.fork) f{};
      if (!read_at(data, at, f)) return false;
      e.parent_pid = f.parent_pid;
      e.parent_tgid = f.parent_tgid;
      e.pid = f.child_pid;
      e.tgid = f.child_tgid;
      return true;
    }
    case ProcOp::kExec:
    case ProcOp::kSid:
    case ProcOp::kUid:
    case ProcOp::kGid: {
      decltype(proc_event::event_data.exec) x{};  // every one of these opens with process_pid, process_tgid
      if (!read_at(data, at, x)) return false;
      e.pid = x.process_pid;
      e.tgid = x.process_tgid;
      return true;
    }
    case ProcOp::kPtrace: {
      decltype(proc_event::event_data.ptrace) p{};
      if (!read_at(data, at, p)) return false;
      e.pid = p.process_pid;
      e.tgid = p.process_tgid;
      e.tracer_tgid = p.tracer_tgid;
      return true;
    }
    case ProcOp::kComm: {
      decltype(proc_event::event_data.comm) c{};
      if (!read_at(data, at, c)) return false;
      e.pid = c.process_pid;
      e.tgid = c.process_tgid;
      e.comm.assign(c.comm, strnlen(c.comm, sizeof c.comm));
      return true;
    }
    case ProcOp::kCoredump: {
      decltype(proc_event::event_data.coredump) c{};
      if (!read_at(data, at, c)) return false;
      e.pid = c.process_pid;
      e.tgid = c.process_tgid;
      e.parent_pid = c.parent_pid;
      e.parent_tgid = c.parent_tgid;
      return true;
    }
    case ProcOp::kExit: {
      decltype(proc_event::event_data.exit) x{};
      if (!read_at(data, at, x)) return false;
      e.pid = x.process_pid;
      e.tgid = x.process_tgid;
      e.exit_code = static_cast<int>(x.exit_code);
      e.exit_signal = static_cast<int>(x.exit_signal);
      e.parent_pid = x.parent_pid;
      e.parent_tgid = x.parent_tgid;
      return true;
    }
    case ProcOp::kOther: return true;
  }
  return false;
}

}  // namespace

std::string_view proc_op_name(ProcOp op) {
  switch (op) {
    case ProcOp::kAck: return "ack";
    case ProcOp::kFork: return "fork";
    case ProcOp::kExec: return "exec";
    case ProcOp::kExit: return "exit";
    case ProcOp::kComm: return "comm";
    case ProcOp::kSid: return "sid";
    case ProcOp::kPtrace: return "ptrace";
    case ProcOp::kCoredump: return "coredump";
    case ProcOp::kUid: return "uid";
    case ProcOp::kGid: return "gid";
    case ProcOp::kOther: break;
  }
  return "other";
}

ParsedDatagram parse_proc_datagram(std::span<const uint8_t> bytes) {
  ParsedDatagram out;
  size_t at = 0;
  while (bytes.size() - at >= sizeof(nlmsghdr)) {
    nlmsghdr h{};
    read_at(bytes, at, h);
    if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > bytes.size() - at) {
      ++out.malformed;  // a length that runs past the datagram: nothing after it can be trusted
      return out;
    }
    const std::span<const uint8_t> msg = bytes.subspan(at + NLMSG_HDRLEN, h.nlmsg_len - std::min<size_t>(h.nlmsg_len, NLMSG_HDRLEN));
    at += NLMSG_ALIGN(h.nlmsg_len);
    if (h.nlmsg_type == NLMSG_NOOP) continue;
    cn_msg cn{};
    if (h.nlmsg_type == NLMSG_ERROR || !read_at(msg, 0, cn) || cn.id.idx != CN_IDX_PROC ||
        cn.id.val != CN_VAL_PROC || cn.len > msg.size() - sizeof(cn_msg)) {
      ++out.malformed;
      if (at > bytes.size()) break;
      continue;
    }
    const std::span<const uint8_t> data = msg.subspan(sizeof(cn_msg), cn.len);
    uint32_t what = 0, cpu = 0;
    uint64_t ts = 0;
    if (!read_at(data, offsetof(proc_event, what), what) || !read_at(data, offsetof(proc_event, cpu), cpu) ||
        !read_at(data, offsetof(proc_event, timestamp_ns), ts)) {
      ++out.malformed;
      continue;
    }
    ProcEvent e;
    e.op = op_of(what);
    e.cpu = cpu;
    e.seq = cn.seq;
    e.mono_ns = static_cast<int64_t>(ts);
    if (!parse_body(data, e)) {
      ++out.malformed;
      continue;
    }
    out.events.push_back(std::move(e));
    if (at > bytes.size()) break;
  }
  if (at < bytes.size()) ++out.malformed;  // trailing bytes shorter than a header
  return out;
}

std::vector<uint8_t> encode_proc_event(const ProcEvent& e) {
  proc_event ev{};
  ev.what = static_cast<decltype(ev.what)>(what_of(e.op));
  ev.cpu = e.cpu;
  ev.timestamp_ns = static_cast<uint64_t>(e.mono_ns);
  switch (e.op) {
    case ProcOp::kAck: ev.event_data.ack.err = e.ack_err; break;
    case ProcOp::kFork:
      ev.event_data.fork = {e.parent_pid, e.parent_tgid, e.pid, e.tgid};
      break;
    case ProcOp::kExit:
      ev.event_data.exit = {e.pid, e.tgid, static_cast<uint32_t>(e.exit_code), static_cast<uint32_t>(e.exit_signal),
                            e.parent_pid, e.parent_tgid};
      break;
    case ProcOp::kCoredump: ev.event_data.coredump = {e.pid, e.tgid, e.parent_pid, e.parent_tgid}; break;
    case ProcOp::kPtrace: ev.event_data.ptrace = {e.pid, e.tgid, 0, e.tracer_tgid}; break;
    case ProcOp::kComm:
      ev.event_data.comm.process_pid = e.pid;
      ev.event_data.comm.process_tgid = e.tgid;
      std::strncpy(ev.event_data.comm.comm, e.comm.c_str(), sizeof ev.event_data.comm.comm - 1);
      break;
    default: ev.event_data.exec = {e.pid, e.tgid}; break;
  }
  std::vector<uint8_t> out(NLMSG_SPACE(sizeof(cn_msg) + sizeof(proc_event)));
  nlmsghdr h{};
  h.nlmsg_len = NLMSG_LENGTH(sizeof(cn_msg) + sizeof(proc_event));
  h.nlmsg_type = NLMSG_DONE;
  cn_msg cn{};
  cn.id = {CN_IDX_PROC, CN_VAL_PROC};
  cn.seq = e.seq;
  cn.len = sizeof(proc_event);
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + NLMSG_HDRLEN, &cn, sizeof cn);
  std::memcpy(out.data() + NLMSG_HDRLEN + sizeof cn, &ev, sizeof ev);
  return out;
}

uint64_t SeqTracker::observe(const ProcEvent& e) {
  if (e.op == ProcOp::kAck) return 0;
  // The kernel numbers CPUs below its nr_cpu_ids; a bigger figure is garbage.
  if (e.cpu >= 65536) return 0;
  if (next_.size() <= e.cpu) next_.resize(e.cpu + 1, -1);
  int64_t& next = next_[e.cpu];
  uint64_t missed = 0;
  if (next >= 0) {
    // Unsigned 32-bit distance: the counter wraps. A step backwards (an
    // event reordered, or the counter reset) is not a loss and moves nothing.
    const uint32_t d = e.seq - static_cast<uint32_t>(next);
    if (d >= 0x80000000u) return 0;
    missed = d;
  }
  next = static_cast<int64_t>(static_cast<uint32_t>(e.seq + 1));
  lost_ += missed;
  return missed;
}

Result<ProcConnector> ProcConnector::open(int rcvbuf_bytes) {
  Fd fd(socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR));
  if (!fd) return sys_error("socket(AF_NETLINK, NETLINK_CONNECTOR)");
  if (rcvbuf_bytes > 0 && setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_bytes, sizeof rcvbuf_bytes) != 0 &&
      setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof rcvbuf_bytes) != 0)
    return sys_error("setsockopt(SO_RCVBUF, " + std::to_string(rcvbuf_bytes) + ")");
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = CN_IDX_PROC;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return sys_error("bind(NETLINK_CONNECTOR, CN_IDX_PROC)");

  // nlmsghdr, cn_msg, then the 4-byte op (cn_msg ends in a flexible array).
  uint8_t req[NLMSG_HDRLEN + sizeof(cn_msg) + sizeof(uint32_t)] = {};
  nlmsghdr h{};
  h.nlmsg_len = sizeof req;
  h.nlmsg_type = NLMSG_DONE;
  cn_msg cn{};
  cn.id = {CN_IDX_PROC, CN_VAL_PROC};
  cn.len = sizeof(uint32_t);
  const uint32_t op = PROC_CN_MCAST_LISTEN;
  std::memcpy(req, &h, sizeof h);
  std::memcpy(req + NLMSG_HDRLEN, &cn, sizeof cn);
  std::memcpy(req + NLMSG_HDRLEN + sizeof cn, &op, sizeof op);
  if (send(fd.get(), req, sizeof req, 0) != static_cast<ssize_t>(sizeof req))
    return sys_error("send(PROC_CN_MCAST_LISTEN)");

  // The kernel answers with an ack that carries its verdict (EPERM outside
  // the initial namespaces or without CAP_NET_ADMIN). Once, at start: waiting
  // a second here blocks nothing that runs yet.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  ProcConnector c(std::move(fd));
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return plain_error("proc connector: no answer to PROC_CN_MCAST_LISTEN within 1 s");
    pollfd p{c.fd(), POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return sys_error("poll(proc connector)");
    bool acked = false;
    uint32_t err = 0;
    c.drain([&](const ProcEvent& e) {
      if (e.op == ProcOp::kAck && !acked) {
        acked = true;
        err = e.ack_err;
      }
    });
    if (!acked) continue;
    if (err != 0) {
      errno = static_cast<int>(err);
      return sys_error("proc connector: PROC_CN_MCAST_LISTEN refused");
    }
    return c;
  }
}

ProcConnector::Drain ProcConnector::drain(const std::function<void(const ProcEvent&)>& on_event,
                                          size_t max_datagrams) {
  Drain d;
  // A datagram holds one event today; the buffer leaves room for batching.
  alignas(nlmsghdr) uint8_t buf[8192];
  while (d.datagrams < max_datagrams) {
    ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        d.overrun = true;  // reading again gets what is still queued
        continue;
      }
      break;  // EAGAIN: drained
    }
    ++d.datagrams;
    ParsedDatagram p = parse_proc_datagram(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
    d.malformed += p.malformed;
    for (const ProcEvent& e : p.events) on_event(e);
  }
  return d;
}

int ProcConnector::rcvbuf() const {
  int v = 0;
  socklen_t len = sizeof v;
  getsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &v, &len);
  return v;
}

int ProcConnector::enlarge(int max_bytes) {
  // SO_RCVBUF reports twice what was set (the kernel's bookkeeping share).
  const int want = std::min(max_bytes, std::max(rcvbuf(), 64 * 1024));
  if (setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
  return rcvbuf();
}

}  // namespace forkwatch
