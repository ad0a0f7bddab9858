// Parsing the kernel's proc-connector datagrams as pure functions over bytes,
// and the per-CPU sequence numbers that reveal lost events.
#include <linux/connector.h>
#include <linux/netlink.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "proc_connector.h"

using namespace forkwatch;

namespace {

ProcEvent make(ProcOp op, pid_t pid, pid_t tgid, uint32_t cpu = 0, uint32_t seq = 0) {
  ProcEvent e;
  e.op = op;
  e.pid = pid;
  e.tgid = tgid;
  e.cpu = cpu;
  e.seq = seq;
  e.mono_ns = 123456789;
  return e;
}

ProcEvent parse_one(const std::vector<uint8_t>& bytes) {
  ParsedDatagram p = parse_proc_datagram(bytes);
  REQUIRE(p.malformed == 0);
  REQUIRE(p.events.size() == 1);
  return p.events[0];
}

}  // namespace

TEST_CASE("a process's fork and a thread's fork are told apart", "[unit]") {
  ProcEvent fork = make(ProcOp::kFork, 200, 200, 1, 7);
  fork.parent_pid = 100;
  fork.parent_tgid = 100;
  ProcEvent got = parse_one(encode_proc_event(fork));
  CHECK(got.op == ProcOp::kFork);
  CHECK(got.pid == 200);
  CHECK(got.tgid == 200);
  CHECK(got.parent_tgid == 100);
  CHECK(got.cpu == 1);
  CHECK(got.seq == 7);
  CHECK(got.mono_ns == 123456789);
  CHECK_FALSE(got.is_thread());

  ProcEvent thread = make(ProcOp::kFork, 201, 200);
  thread.parent_pid = 200;
  thread.parent_tgid = 200;
  got = parse_one(encode_proc_event(thread));
  CHECK(got.is_thread());
  CHECK(got.tgid == 200);
}

TEST_CASE("exec, exit with its raw status, comm, coredump and ptrace parse", "[unit]") {
  CHECK(parse_one(encode_proc_event(make(ProcOp::kExec, 300, 300))).op == ProcOp::kExec);

  ProcEvent exit = make(ProcOp::kExit, 300, 300);
  exit.exit_code = SIGSEGV | 0x80;  // killed by SIGSEGV, core dumped: the wait-status format
  exit.exit_signal = SIGCHLD;
  exit.parent_tgid = 42;
  ProcEvent got = parse_one(encode_proc_event(exit));
  CHECK(got.op == ProcOp::kExit);
  CHECK(got.exit_code == (SIGSEGV | 0x80));
  CHECK(got.exit_signal == SIGCHLD);
  CHECK(got.parent_tgid == 42);

  ProcEvent comm = make(ProcOp::kComm, 301, 300);
  comm.comm = "worker-thread-1";
  got = parse_one(encode_proc_event(comm));
  CHECK(got.op == ProcOp::kComm);
  CHECK(got.comm == "worker-thread-1");

  ProcEvent core = make(ProcOp::kCoredump, 300, 300);
  core.parent_tgid = 42;
  CHECK(parse_one(encode_proc_event(core)).parent_tgid == 42);
  ProcEvent trace = make(ProcOp::kPtrace, 300, 300);
  trace.tracer_tgid = 77;
  CHECK(parse_one(encode_proc_event(trace)).tracer_tgid == 77);
  CHECK(parse_one(encode_proc_event(make(ProcOp::kSid, 300, 300))).op == ProcOp::kSid);
}

TEST_CASE("the subscription's ack carries the kernel's verdict", "[unit]") {
  ProcEvent ack = make(ProcOp::kAck, 0, 0);
  ack.ack_err = EPERM;
  ProcEvent got = parse_one(encode_proc_event(ack));
  CHECK(got.op == ProcOp::kAck);
  CHECK(got.ack_err == EPERM);
}

TEST_CASE("truncated and garbage datagrams are counted as malformed, never read past their end", "[unit]") {
  std::vector<uint8_t> whole = encode_proc_event(make(ProcOp::kExit, 5, 5));
  // Every cut: nothing parses past the cut, and nothing is made up.
  for (size_t n = 0; n < whole.size(); ++n) {
    std::vector<uint8_t> cut(whole.begin(), whole.begin() + static_cast<long>(n));
    ParsedDatagram p = parse_proc_datagram(cut);
    INFO("cut at " << n);
    if (n > 0) CHECK(p.malformed >= 1);
    for (const auto& e : p.events) CHECK(e.op == ProcOp::kExit);
  }
  std::vector<uint8_t> garbage(200);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 37 + 11);
  ParsedDatagram g = parse_proc_datagram(garbage);
  CHECK(g.events.empty());
  CHECK(g.malformed >= 1);

  // A message of another connector (not CN_IDX_PROC) is not a process event.
  std::vector<uint8_t> other = whole;
  cn_msg cn{};
  std::memcpy(&cn, other.data() + NLMSG_HDRLEN, sizeof cn);
  cn.id.idx = CN_IDX_PROC + 5;
  std::memcpy(other.data() + NLMSG_HDRLEN, &cn, sizeof cn);
  ParsedDatagram o = parse_proc_datagram(other);
  CHECK(o.events.empty());
  CHECK(o.malformed == 1);

  // Two messages in one datagram both come out, in order.
  std::vector<uint8_t> two = encode_proc_event(make(ProcOp::kFork, 9, 9));
  two.insert(two.end(), whole.begin(), whole.end());
  ParsedDatagram t = parse_proc_datagram(two);
  REQUIRE(t.events.size() == 2);
  CHECK(t.events[0].op == ProcOp::kFork);
  CHECK(t.events[1].op == ProcOp::kExit);
}

TEST_CASE("per-CPU sequence gaps count the events lost on each CPU", "[unit]") {
  SeqTracker seq;
  CHECK(seq.observe(make(ProcOp::kFork, 1, 1, 0, 10)) == 0);  // the first starts the count
  CHECK(seq.observe(make(ProcOp::kExec, 1, 1, 0, 11)) == 0);
  CHECK(seq.observe(make(ProcOp::kFork, 2, 2, 1, 500)) == 0);  // another CPU has its own count
  CHECK(seq.observe(make(ProcOp::kExit, 1, 1, 0, 15)) == 3);   // 12, 13, 14 never came
  CHECK(seq.observe(make(ProcOp::kExit, 2, 2, 1, 501)) == 0);
  CHECK(seq.observe(make(ProcOp::kAck, 0, 0, 0, 0)) == 0);     // acks are numbered apart
  CHECK(seq.observe(make(ProcOp::kExit, 2, 2, 0, 14)) == 0);   // late, not lost again
  CHECK(seq.observe(make(ProcOp::kExit, 2, 2, 0, 16)) == 0);
  CHECK(seq.lost() == 3);
  // The 32-bit counter wraps without a made-up loss of four billion.
  SeqTracker wrap;
  wrap.observe(make(ProcOp::kFork, 1, 1, 3, 0xffffffffu));
  CHECK(wrap.observe(make(ProcOp::kFork, 1, 1, 3, 0)) == 0);
  CHECK(wrap.observe(make(ProcOp::kFork, 1, 1, 3, 2)) == 1);
}
