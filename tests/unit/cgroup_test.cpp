// The cgroup code's pure parts over fixtures, and CgroupHost's file reading
// over a FAKE cgroupfs directory (plain files in a temp dir standing for
// cpu.stat, memory.events, …), for the controllers this machine lacks.
#include <catch2/catch.hpp>

#include <fstream>

#include "cgroup.h"
#include "temp_dir.h"

using namespace forkwatch;

namespace {

// A Debian 12 machine with the hybrid layout (FIELD-NOTES), trimmed.
const char* kHybridMountinfo =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "31 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw\n"
    "42 31 0:39 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory\n";
// A current distribution: the unified hierarchy alone at /sys/fs/cgroup.
const char* kUnifiedMountinfo =
    "25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
    "26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate\n";

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

}  // namespace

TEST_CASE("the cgroup2 mount is found in mountinfo, hybrid or unified", "[unit]") {
  CHECK(find_cgroup2_mount(kHybridMountinfo) == "/sys/fs/cgroup/unified");
  CHECK(find_cgroup2_mount(kUnifiedMountinfo) == "/sys/fs/cgroup");
  // Only v1 hierarchies: none.
  CHECK_FALSE(find_cgroup2_mount("42 31 0:39 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"));
  CHECK_FALSE(find_cgroup2_mount(""));
  // Optional fields before the separator, and an escaped space in the path.
  CHECK(find_cgroup2_mount("9 1 0:5 / /mnt/my\\040cg rw shared:3 master:1 - cgroup2 none rw\n") == "/mnt/my cg");
  // A line without the " - " separator is skipped, not misread.
  CHECK(find_cgroup2_mount("garbage line\n26 25 0:24 / /cg rw - cgroup2 c rw") == "/cg");
}

TEST_CASE("the daemon's own v2 cgroup is the 0:: line of /proc/self/cgroup", "[unit]") {
  CHECK(parse_own_cgroup("9:name=systemd:/\n4:memory:/x\n0::/\n") == "/");
  CHECK(parse_own_cgroup("0::/system.slice/forkwatchd.service\n") == "/system.slice/forkwatchd.service");
  CHECK_FALSE(parse_own_cgroup("4:memory:/x\n1:cpu:/\n"));  // v1 only
}

TEST_CASE("a cgroup path names its worker only below the daemon's subtree", "[unit]") {
  CHECK(worker_of_cgroup("/forkwatchd-12/w-7", "/forkwatchd-12") == 7);
  CHECK(worker_of_cgroup("/forkwatchd-12/w-7/inner", "/forkwatchd-12") == 7);
  CHECK(worker_of_cgroup("/w-3", "/") == 3);
  CHECK(worker_of_cgroup("/forkwatchd-13/w-7", "/forkwatchd-12") == 0);
  CHECK(worker_of_cgroup("/forkwatchd-12/daemon", "/forkwatchd-12") == 0);
  CHECK(worker_of_cgroup("/forkwatchd-12/w-07", "/forkwatchd-12") == 0);
  CHECK(worker_of_cgroup("/forkwatchd-12/w-", "/forkwatchd-12") == 0);
  CHECK(worker_of_cgroup("", "/forkwatchd-12") == 0);
}

TEST_CASE("flat-keyed cgroup files and PSI lines are read by key", "[unit]") {
  const char* events = "populated 1\nfrozen 0\n";
  CHECK(keyed_value(events, "populated") == 1);
  CHECK(keyed_value(events, "frozen") == 0);
  CHECK_FALSE(keyed_value(events, "froze"));
  CHECK(keyed_value("usage_usec 123456\nuser_usec 100000\n", "usage_usec") == 123456);
  const char* psi =
      "some avg10=0.00 avg60=0.12 avg300=0.05 total=98765\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5\n";
  CHECK(psi_some_total(psi) == 98765);
  CHECK_FALSE(psi_some_total(""));
}

TEST_CASE("CgroupHost reads figures, OOM kills and members from a FAKE cgroupfs directory", "[unit]") {
  fwtest::TempDir root;
  // A fake hierarchy: the files a real cgroup has, as plain files.
  for (const char* f : {"cgroup.kill", "cgroup.freeze", "cgroup.events", "cgroup.procs"})
    write(root.file(f), "");
  std::filesystem::create_directory(root.path + "/daemon");  // the kernel makes a cgroup's files
  write(root.path + "/daemon/cgroup.procs", "");
  std::string procs_before;
  {
    auto host = CgroupHost::create(root.path, "/", "/", false);
    REQUIRE(host);
    // The daemon "moved itself" into the leaf: its pid was written there.
    std::ifstream in(root.path + "/daemon/cgroup.procs");
    std::getline(in, procs_before);
    CHECK(procs_before == std::to_string(getpid()));
    CgroupHost& h = **host;
    CHECK(h.place(4) == "/w-4");
    REQUIRE(h.members(4).empty());  // never made: nothing read
    // A worker's cgroup as the kernel would fill it, with the memory
    // controller present (not delegated on this machine).
    std::filesystem::create_directory(root.path + "/w-4");
    write(root.path + "/w-4/cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n");
    write(root.path + "/w-4/cpu.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=777\n");
    write(root.path + "/w-4/memory.events", "low 0\nhigh 2\nmax 5\noom 1\noom_kill 3\n");
    write(root.path + "/w-4/memory.current", "1048576\n");
    write(root.path + "/w-4/cgroup.procs", "101\n102\n");
    CgroupStats s = h.stats(4);
    CHECK(s.cpu_usage_usec == 2'500'000);
    CHECK(s.cpu_user_usec == 2'000'000);
    CHECK(s.cpu_system_usec == 500'000);
    CHECK(s.cpu_pressure_us == 777);
    CHECK_FALSE(s.io_pressure_us);
    CHECK(s.memory_current == 1'048'576);
    CHECK_FALSE(s.pids_current);  // no pids controller: absent, not zero
    CHECK(s.oom_kills == 3);
    CHECK(h.oom_kills(4) == 3);
    CHECK(s.processes == 2);
    // No memory.events (this machine): nothing to say, not zero.
    std::filesystem::create_directory(root.path + "/w-5");
    CHECK_FALSE(h.oom_kills(5));
  }
}

TEST_CASE("CgroupHost refuses a hierarchy without cgroup.kill, with the reason", "[unit]") {
  fwtest::TempDir root;
  write(root.file("cgroup.freeze"), "");
  auto host = CgroupHost::create(root.path, "/", "/", false);
  REQUIRE_FALSE(host);
  CHECK_THAT(host.error().message(), Catch::Contains("cgroup.kill"));
}

TEST_CASE("CgroupHost writes memory_max, pids_max and cpu_max into a FAKE cgroupfs, and names what it cannot", "[unit]") {
  fwtest::TempDir root;
  for (const char* f : {"cgroup.kill", "cgroup.freeze", "cgroup.events"}) write(root.file(f), "");
  std::filesystem::create_directory(root.path + "/daemon");
  write(root.path + "/daemon/cgroup.procs", "");
  auto host = CgroupHost::create(root.path, "/", "/", false);
  REQUIRE(host);
  // A FAKE worker cgroup with the memory, pids and cpu controllers' files
  // (the kernel would make them where the controllers are delegated), but
  // no memory.high: that one cannot be enforced.
  const std::string w = root.path + "/w-4";
  std::filesystem::create_directory(w);
  // Empty: a plain file keeps what a longer earlier write left (cgroupfs would not).
  for (const char* f : {"memory.max", "pids.max", "cpu.max"}) write(w + "/" + f, "");
  SpawnRequest req;
  req.memory_max = 256LL << 20;
  req.memory_high = 200LL << 20;
  req.pids_max = 64;
  req.cpu_max = 0.5;
  (*host)->apply_limits(4, req);
  auto read = [&](const char* f) {
    std::ifstream in(w + "/" + f);
    std::string s;
    std::getline(in, s);
    return s;
  };
  CHECK(read("memory.max") == "268435456");
  CHECK(read("pids.max") == "64");
  CHECK(read("cpu.max") == "50000 100000");
  const auto missing = (*host)->unenforced(4);
  REQUIRE(missing.size() == 1);
  CHECK_THAT(missing[0], Catch::StartsWith("memory_high: not enforced") && Catch::Contains("memory.high"));
  // A limit not asked for is never written.
  write(w + "/memory.max", "max\n");
  (*host)->apply_limits(4, SpawnRequest{});
  CHECK(read("memory.max") == "max");
  CHECK((*host)->unenforced(4).empty());
}
