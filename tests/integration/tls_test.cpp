// HTTPS on --listen: a certificate made at test time with the openssl
// command, curl --cacert as the client, openssl s_client to see which
// certificate is served. The daemon is real; so is every handshake.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon_harness.h"

using namespace fwtest;

namespace {

struct Run {
  int rc = -1;
  std::string out;
};

// A shell command's exit code and stdout (stderr goes to the test's log).
Run run(const std::string& cmd) {
  Run r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// A self-signed P-256 certificate for 127.0.0.1 (CN and SAN) into dir/NAME.{crt,key}.
void make_cert(const std::string& dir, const std::string& name, const std::string& out_name = "") {
  const std::string base = dir + "/" + (out_name.empty() ? name : out_name);
  const Run r = run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "
                    "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " + base + ".key -out " + base +
                    ".crt 2>/dev/null");
  REQUIRE(r.rc == 0);
}

std::string fingerprint_of_file(const std::string& crt) {
  return run("openssl x509 -noout -fingerprint -sha256 -in " + crt).out;
}

// The certificate the daemon serves, as openssl s_client sees it.
std::string served_fingerprint(int port) {
  return run("openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
             " </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null")
      .out;
}

struct TlsDaemon {
  std::string dir = make_temp_dir("fw-tls");
  std::unique_ptr<Daemon> d;
  explicit TlsDaemon(std::map<std::string, std::string> env = {}) {
    make_cert(dir, "server");
    d = std::make_unique<Daemon>(DaemonOptions{
        .args = {"--tls-cert", dir + "/server.crt", "--tls-key", dir + "/server.key"}, .env = std::move(env)});
  }
  ~TlsDaemon() {
    d.reset();
    std::filesystem::remove_all(dir);
  }
  std::string url(const std::string& path) const { return "https://127.0.0.1:" + std::to_string(d->port()) + path; }
  // curl over HTTPS, verifying against our certificate: "STATUS BODY".
  Run curl(const std::string& path, const std::string& extra = "") const {
    return run("curl -sS --max-time 10 --cacert " + dir + "/server.crt -H 'Authorization: Bearer " + d->token() +
               "' -w ' %{http_code}' " + extra + " " + url(path));
  }
};

// Reads until the peer closes or `limit` passes; true when it closed.
bool closed_within(int fd, std::chrono::milliseconds limit, std::string& got) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
    got.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

TEST_CASE("HTTPS: curl with --cacert gets the API, TLS 1.2 at least", "[integration]") {
  TlsDaemon t;
  Run r = t.curl("/api/workers");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(r.out.ends_with(" 200"));
  CHECK(r.out.starts_with("{\"workers\":[]}"));
  // A start over TLS (a body read through SSL_read) works like one over HTTP.
  Run started = t.curl("/api/workers", "-d '{\"program\":\"exit-with\",\"restart\":\"no\"}'");
  INFO(started.out);
  CHECK(started.out.ends_with(" 201"));
  // An event stream is a chunked reply written with SSL_write from a pool thread.
  Run events = t.curl("/api/events?since=0", "--max-time 2 -N");
  CHECK(events.out.find("event: spawn") != std::string::npos);
  CHECK(t.curl("/api/health", "--tlsv1.2 --tls-max 1.2").out.ends_with(" 200"));
  // TLS 1.1 and older are refused by the daemon, not only by curl.
  CHECK(run("openssl s_client -tls1_1 -cipher DEFAULT@SECLEVEL=0 -connect 127.0.0.1:" + std::to_string(t.d->port()) +
            " </dev/null >/dev/null 2>&1")
            .rc != 0);
  CHECK(t.d->stderr_text().find("listening on https://127.0.0.1:") != std::string::npos);
}

TEST_CASE("HTTPS: the forkwatch client verifies the daemon with --cacert and refuses an unknown certificate",
          "[integration]") {
  TlsDaemon t;
  const std::string cli = bin("forkwatch") + " --url https://127.0.0.1:" + std::to_string(t.d->port()) +
                          " --token " + t.d->token();
  REQUIRE(t.curl("/api/workers", "-d '{\"program\":\"exit-with\",\"name\":\"over-tls\",\"args\":[\"--sleep\"]}'")
              .out.ends_with(" 201"));
  Run ok = run(cli + " --cacert " + t.dir + "/server.crt status");
  INFO(ok.out);
  CHECK(ok.rc == 0);
  CHECK(ok.out.find("over-tls") != std::string::npos);
  // The same through the environment, and a POST with a body.
  Run json = run("FORKWATCH_CACERT=" + t.dir + "/server.crt " + cli + " --json programs");
  CHECK(json.rc == 0);
  CHECK(json.out.find("exit-with") != std::string::npos);
  // Not in the system's CA store: the handshake fails, exit 3, and it says why.
  Run refused = run(cli + " status 2>&1");
  INFO(refused.out);
  CHECK(refused.rc == 3);
  CHECK(refused.out.find("certificate verify failed") != std::string::npos);
  // Another certificate for the same address is refused as well.
  make_cert(t.dir, "other");
  Run other = run(cli + " --cacert " + t.dir + "/other.crt status 2>&1");
  CHECK(other.rc == 3);
  CHECK(other.out.find("certificate verify failed") != std::string::npos);
}

TEST_CASE("HTTPS: plain HTTP on the TLS port fails cleanly and the daemon still answers over TLS", "[integration]") {
  TlsDaemon t;
  for (int i = 0; i < 3; ++i) {
    int fd = connect_loopback(t.d->port());
    const std::string req = "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
    std::string got;
    CHECK(closed_within(fd, 3s, got));  // closed at once, not at a deadline
    CHECK(got.find("HTTP/1.1") == std::string::npos);  // nothing in plain HTTP: at most a TLS alert
    ::close(fd);
  }
  Run r = t.curl("/api/health");
  CHECK(r.out.ends_with(" 200"));
  CHECK(t.d->stderr_text().find("TLS handshake from 127.0.0.1 failed") != std::string::npos);
}

TEST_CASE("HTTPS: a handshake that does not finish by the request deadline is dropped, and limits hold over TLS",
          "[integration]") {
  TlsDaemon t(std::map<std::string, std::string>{{"FORKWATCH_TEST_REQUEST_TIMEOUT_MS", "1500"}});
  int fd = connect_loopback(t.d->port());
  // The first bytes of a ClientHello record, and then nothing.
  const char partial[] = "\x16\x03\x01\x00\xc0\x01";
  REQUIRE(::send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL) > 0);
  const auto t0 = std::chrono::steady_clock::now();
  // Meanwhile a whole client is served.
  CHECK(t.curl("/api/health").out.ends_with(" 200"));
  std::string got;
  CHECK(closed_within(fd, 5s, got));
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited > 1s);
  CHECK(waited < 4s);
  CHECK(got.empty());
  ::close(fd);
  // The head limits apply to what SSL_read delivers: 40 KB of headers is a 431.
  const std::string big(40000, 'a');
  Run r = t.curl("/api/workers", "-H 'X-Big: " + big + "'");
  CHECK(r.out.ends_with(" 431"));
  CHECK(r.out.find("headers_too_large") != std::string::npos);
}

TEST_CASE("HTTPS: SIGHUP serves a replaced certificate, and a bad new pair keeps the old one", "[integration]") {
  TlsDaemon t;
  const std::string first = fingerprint_of_file(t.dir + "/server.crt");
  REQUIRE_FALSE(first.empty());
  CHECK(served_fingerprint(t.d->port()) == first);
  make_cert(t.dir, "server");  // a new pair at the same paths
  const std::string second = fingerprint_of_file(t.dir + "/server.crt");
  REQUIRE(second != first);
  ::kill(t.d->pid(), SIGHUP);
  CHECK(wait_until([&] { return served_fingerprint(t.d->port()) == second; }, 5s));
  CHECK(t.curl("/api/health").out.ends_with(" 200"));  // curl trusts the new file

  // A key that does not match the certificate: logged, the second pair stays.
  make_cert(t.dir, "other");
  std::filesystem::copy_file(t.dir + "/other.key", t.dir + "/server.key",
                             std::filesystem::copy_options::overwrite_existing);
  ::kill(t.d->pid(), SIGHUP);
  REQUIRE(wait_until([&] { return t.d->stderr_text().find("TLS pair not reloaded") != std::string::npos; }, 5s));
  CHECK(t.d->stderr_text().find("does not match the certificate") != std::string::npos);
  CHECK(served_fingerprint(t.d->port()) == second);
  CHECK(t.curl("/api/health").out.ends_with(" 200"));
}

TEST_CASE("HTTPS: a missing, mismatched or lone cert or key is one line and exit 2", "[integration]") {
  const std::string dir = make_temp_dir("fw-tls-bad");
  make_cert(dir, "a");
  make_cert(dir, "b");
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--tls-cert", dir + "/a.crt", "--tls-key", dir + "/missing.key"},
       "--tls-key " + dir + "/missing.key: cannot read: No such file or directory"},
      {{"--tls-cert", dir + "/a.crt", "--tls-key", dir + "/b.key"}, "does not match the certificate"},
      {{"--tls-cert", dir + "/a.key", "--tls-key", dir + "/a.key"}, "not a PEM certificate"},
      {{"--tls-cert", dir + "/a.crt"}, "--tls-cert: needs --tls-key"},
      {{"--tls-key", dir + "/a.key"}, "--tls-key: needs --tls-cert"},
  };
  for (const auto& c : cases) {
    std::string cmd = bin("forkwatchd") + " --listen 127.0.0.1:0 --state-dir " + dir + "/state";
    for (const auto& a : c.args) cmd += " " + a;
    Run r = run(cmd + " 2>&1 >/dev/null");
    INFO(cmd << " -> " << r.out);
    CHECK(r.rc == 2);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK(r.out.find(c.says) != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}
