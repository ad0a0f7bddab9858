#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "proc_parse.h"

using namespace forkwatch;

namespace {

std::string fixture(const std::string& rel) {
  std::ifstream in(std::string(FORKWATCH_FIXTURES_DIR) + "/proc/" + rel, std::ios::binary);
  REQUIRE(in);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A real stat line's tail after the comm, with fields (3)..(52).
std::string stat_line(const std::string& comm) {
  return "42 (" + comm +
         ") S 7 42 42 0 -1 4194560 120 0 0 0 50 20 0 0 20 0 3 0 1000 20000000 300 "
         "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
}

}  // namespace

TEST_CASE("stat parses every field we use from a kernel-written line", "[unit]") {
  auto st = parse_proc_stat(fixture("captured/nasty-comm.stat"));
  REQUIRE(st);
  CHECK(st->pid == 6373);
  CHECK(st->comm == "a) (b\n\\x");  // the kernel writes comm raw in stat: newline included
  CHECK(st->state == 'R');
  CHECK(st->ppid == 6370);
  CHECK(st->pgrp == 6370);
  CHECK(st->session == 3361);
  CHECK(st->utime == 7);
  CHECK(st->stime == 5);
  CHECK(st->num_threads == 1);
  CHECK(st->starttime == 672767);
  CHECK(st->vsize == 17281024);
  CHECK(st->rss_pages == 3457);
  CHECK_FALSE(st->kernel_thread());
}

TEST_CASE("stat finds the comm however many parentheses and spaces it holds", "[unit]") {
  for (std::string comm : {"a) (b", "x y", ")", "(", "", "))) S 1 2 3", "((", " ", "a)b(c)"}) {
    INFO("comm: [" << comm << "]");
    auto st = parse_proc_stat(stat_line(comm));
    REQUIRE(st);
    CHECK(st->comm == comm);
    CHECK(st->state == 'S');
    CHECK(st->ppid == 7);
    CHECK(st->utime == 50);
    CHECK(st->stime == 20);
    CHECK(st->num_threads == 3);
    CHECK(st->starttime == 1000);
    CHECK(st->rss_pages == 300);
  }
}

TEST_CASE("stat of a zombie and of a kernel thread", "[unit]") {
  auto z = parse_proc_stat(fixture("captured/zombie.stat"));
  REQUIRE(z);
  CHECK(z->state == 'Z');
  CHECK(z->ppid == 6373);
  CHECK(z->rss_pages == 0);
  CHECK(z->comm == "a) (b\n\\x");  // a forked child keeps its parent's comm

  auto k = parse_proc_stat(fixture("captured/kthreadd.stat"));
  REQUIRE(k);
  CHECK(k->pid == 2);
  CHECK(k->comm == "kthreadd");
  CHECK(k->ppid == 0);
  CHECK(k->kernel_thread());
}

TEST_CASE("malformed stat text is refused, never a crash", "[unit]") {
  std::string good = stat_line("ok");
  REQUIRE(parse_proc_stat(good));
  CHECK_FALSE(parse_proc_stat(""));
  CHECK_FALSE(parse_proc_stat("\n"));
  CHECK_FALSE(parse_proc_stat("42"));
  CHECK_FALSE(parse_proc_stat("42 (x"));
  CHECK_FALSE(parse_proc_stat("42 (x)"));
  CHECK_FALSE(parse_proc_stat("42 (x) S 1 2\n"));  // cut short before rss
  CHECK_FALSE(parse_proc_stat("x (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7\n"));
  CHECK_FALSE(parse_proc_stat("-1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7\n"));
  CHECK_FALSE(parse_proc_stat("42 (x)S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7\n"));
  CHECK_FALSE(parse_proc_stat("42 (x) SS 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7\n"));
  CHECK_FALSE(parse_proc_stat("42 (x) S 1 1 1 0 -1 0 0 0 0 0 -1 1 0 0 20 0 1 0 5 6 7\n"));
  CHECK_FALSE(parse_proc_stat("42 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 9x\n"));
  CHECK_FALSE(parse_proc_stat("42 (x) S 99999999999999999999 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7\n"));
  // Every prefix of a good line is either refused or parses; none crashes.
  for (size_t n = 0; n < good.size(); ++n) (void)parse_proc_stat(std::string_view(good).substr(0, n));
}

TEST_CASE("status gives the unescaped name and the fields we read", "[unit]") {
  auto st = parse_proc_status(fixture("captured/nasty-comm.status"));
  REQUIRE(st);
  CHECK(st->name == "a) (b\n\\x");  // status escapes '\n' and '\\'; we undo it
  CHECK(st->state == 'R');
  CHECK(st->pid == 6373);
  CHECK(st->tgid == 6373);
  CHECK(st->ppid == 6370);
  CHECK(st->threads == 1);
  REQUIRE(st->vm_rss_kb);
  CHECK(*st->vm_rss_kb > 0);

  auto p = parse_proc_status(fixture("100/status"));
  REQUIRE(p);
  CHECK(p->name == "a) (b");
  CHECK(p->uid_real == 1000);
  CHECK(p->uid_effective == 1001);
  CHECK(p->gid_real == 50);
  CHECK(p->gid_effective == 51);
  CHECK(p->vm_rss_kb == 1200u);
  CHECK(p->threads == 3);

  auto k = parse_proc_status(fixture("captured/kthreadd.status"));
  REQUIRE(k);
  CHECK(k->name == "kthreadd");
  CHECK_FALSE(k->vm_rss_kb);  // kernel threads have no memory of their own

  auto z = parse_proc_status(fixture("captured/zombie.status"));
  REQUIRE(z);
  CHECK(z->state == 'Z');
  CHECK_FALSE(z->vm_rss_kb);
}

TEST_CASE("malformed status text is refused", "[unit]") {
  CHECK_FALSE(parse_proc_status(""));
  CHECK_FALSE(parse_proc_status("Name:\tx\n"));  // no pids
  CHECK_FALSE(parse_proc_status("Name:\tx\nTgid:\t1\nPid:\tone\nPPid:\t0\n"));
  CHECK_FALSE(parse_proc_status("Name:\tx\nTgid:\t1\nPid:\t1\nPPid:\t0\nVmRSS:\t12 MB\n"));
  CHECK_FALSE(parse_proc_status("Name:\tx\nTgid:\t1\nPid:\t1\nPPid:\t0\nUid:\t0\n"));
  CHECK(parse_proc_status("Name:\tx\nTgid:\t1\nPid:\t1\nPPid:\t0\n"));
}

TEST_CASE("statm gives seven page counts", "[unit]") {
  auto m = parse_proc_statm(fixture("100/statm"));
  REQUIRE(m);
  CHECK(m->size == 4882);
  CHECK(m->resident == 300);
  CHECK(m->shared == 200);
  CHECK(m->text == 5);
  CHECK(m->data == 123);
  CHECK(parse_proc_statm(fixture("captured/nasty-comm.statm")));
  CHECK_FALSE(parse_proc_statm(""));
  CHECK_FALSE(parse_proc_statm("1 2 3 4 5 6\n"));
  CHECK_FALSE(parse_proc_statm("1 2 3 4 5 6 7 8\n"));
  CHECK_FALSE(parse_proc_statm("1 2 3 4 5 6 x\n"));
}

TEST_CASE("cmdline splits on NUL, keeps empty arguments, tolerates a missing final NUL", "[unit]") {
  using V = std::vector<std::string>;
  CHECK(parse_cmdline(fixture("100/cmdline")) == V{"/usr/bin/app", "--flag", "x y"});
  CHECK(parse_cmdline(fixture("202/cmdline")) == V{"/bin/open"});
  CHECK(parse_cmdline(fixture("700/cmdline")) == V{"newcomer", "", "after-empty"});
  CHECK(parse_cmdline(fixture("captured/kthreadd.cmdline")).empty());
  CHECK(parse_cmdline(fixture("captured/zombie.cmdline")).empty());
  CHECK(parse_cmdline(std::string_view("\0", 1)) == V{""});
  CHECK(join_cmdline({"sh", "-c", "sleep 5"}) == "sh -c sleep 5");
  CHECK(join_cmdline({}).empty());
}

TEST_CASE("comm is the name before its newline", "[unit]") {
  CHECK(parse_comm(fixture("100/task/101/comm")) == std::string("x y"));
  CHECK(parse_comm(fixture("100/task/102/comm")) == std::string(")"));
  CHECK(parse_comm("\n") == std::string());
  CHECK_FALSE(parse_comm(""));
  CHECK_FALSE(parse_comm("no newline"));
}
