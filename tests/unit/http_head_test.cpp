// Request framing rules (api/http_head), on bytes: what the gate refuses
// before the router ever sees a request.
#include <catch2/catch.hpp>

#include <string>

#include "auth.h"
#include "http_head.h"
#include "json_dump.h"
#include "json_map.h"

using namespace forkwatch;

namespace {

HttpHead head_of(const std::string& bytes, HttpLimits limits = {}) {
  auto r = parse_head(bytes, limits);
  INFO(bytes);
  if (auto* e = std::get_if<ApiError>(&r)) FAIL("refused: " << e->status << " " << e->message);
  REQUIRE(std::holds_alternative<HttpHead>(r));
  return std::get<HttpHead>(r);
}

ApiError refused(const std::string& bytes, HttpLimits limits = {}) {
  auto r = parse_head(bytes, limits);
  INFO(bytes);
  REQUIRE(std::holds_alternative<ApiError>(r));
  return std::get<ApiError>(r);
}

bool incomplete(const std::string& bytes, HttpLimits limits = {}) {
  return std::holds_alternative<std::monostate>(parse_head(bytes, limits));
}

}  // namespace

TEST_CASE("a well-formed head is read with its framing", "[unit]") {
  auto h = head_of("POST /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12\r\nX-A:  b \r\n\r\nbody");
  CHECK(h.method == "POST");
  CHECK(h.target == "/api/workers");
  CHECK(h.content_length == 12);
  CHECK_FALSE(h.chunked);
  CHECK_FALSE(h.close);
  REQUIRE(h.header("x-a"));
  CHECK(*h.header("x-a") == "b");
  CHECK(h.head_bytes == std::string("POST /api/workers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12\r\nX-A:  b \r\n\r\n").size());

  CHECK(head_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n").close);
  CHECK(head_of("GET / HTTP/1.0\r\n\r\n").close);
  CHECK_FALSE(head_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").close);
  CHECK(head_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n").chunked);
  CHECK(head_of("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
}

TEST_CASE("a head is incomplete until its blank line arrives", "[unit]") {
  CHECK(incomplete(""));
  CHECK(incomplete("GET / HT"));
  CHECK(incomplete("GET / HTTP/1.1\r\nHost: h\r\n"));
  CHECK(incomplete("GET / HTTP/1.1\r\nHost: h\r\n\r"));
}

TEST_CASE("smuggling and malformed framing are refused with 400", "[unit]") {
  for (const char* bytes : {
           "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1,1\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
           "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
           "GET / HTTP/1.1\r\nHost h\r\n\r\n",          // no colon
           "GET / HTTP/1.1\r\nHo st: h\r\n\r\n",         // a space in the name
           "GET / HTTP/1.1\r\nHost : h\r\n\r\n",         // a space before the colon
           "GET / HTTP/1.1\r\n: h\r\nHost: h\r\n\r\n",   // no name
           "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
           "GET / HTTP/1.1\nHost: h\r\n\r\n",            // LF alone
           "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n",
           "GET / HTTP/1.1\r\n\r\n",                     // HTTP/1.1 without Host
           "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
           "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET \xd7" "api/tree HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET api/tree HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
           "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
       }) {
    ApiError e = refused(bytes);
    CHECK(e.status == 400);
    CHECK(e.code == "bad_request");
    CHECK_FALSE(e.message.empty());
  }
}

TEST_CASE("oversized heads are refused as soon as they are too long", "[unit]") {
  HttpLimits l;
  l.max_request_line = 100;
  l.max_header_bytes = 300;
  l.max_header_line = 120;
  l.max_headers = 5;
  CHECK(refused("GET /" + std::string(200, 'a'), l).status == 414);  // no line end yet
  CHECK(refused("GET /" + std::string(200, 'a') + " HTTP/1.1\r\n", l).status == 414);
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 6; ++i) many += "X" + std::to_string(i) + ": v\r\n";
  CHECK(refused(many + "\r\n", l).status == 431);
  CHECK(refused("GET / HTTP/1.1\r\nX: " + std::string(150, 'v'), l).status == 431);  // one long line, unfinished
  std::string lots = "GET / HTTP/1.1\r\n";
  while (lots.size() < 400) lots += "X: " + std::string(50, 'v') + "\r\n";
  CHECK(refused(lots, l).status == 431);  // too many bytes before any blank line
  CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n").status == 413);
  CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n").status == 413);
  CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n").status == 417);
}

TEST_CASE("chunked bodies are decoded within the body limit", "[unit]") {
  auto whole = decode_chunked("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT", 100);
  REQUIRE(std::holds_alternative<ChunkedBody>(whole));
  CHECK(std::get<ChunkedBody>(whole).body == "hello world");
  CHECK(std::get<ChunkedBody>(whole).consumed == std::string("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n").size());

  CHECK(std::holds_alternative<std::monostate>(decode_chunked("5\r\nhel", 100)));
  CHECK(std::holds_alternative<std::monostate>(decode_chunked("5\r\nhello\r\n0\r\n", 100)));
  auto big = decode_chunked("65\r\n", 100);  // 101 bytes announced: refused before they arrive
  REQUIRE(std::holds_alternative<ApiError>(big));
  CHECK(std::get<ApiError>(big).status == 413);
  auto over = decode_chunked("FFFFFFFFFFFFFFFFFFFF\r\n", 100);
  REQUIRE(std::holds_alternative<ApiError>(over));
  CHECK(std::get<ApiError>(over).status == 413);
  for (const char* bad : {"zz\r\n", "5\r\nhelloXX0\r\n\r\n", "5\nhello\r\n", "\r\n"}) {
    auto r = decode_chunked(bad, 100);
    INFO(bad);
    REQUIRE(std::holds_alternative<ApiError>(r));
    CHECK(std::get<ApiError>(r).status == 400);
  }
}

TEST_CASE("JSON rendering never throws on invalid UTF-8, parsing never on overflow", "[unit]") {
  // type_error 316 from json::dump() used to end the daemon (issue 19).
  CHECK(dump_json(nlohmann::json{{"path", std::string("/\xff\xfe")}}) == "{\"path\":\"/\xEF\xBF\xBD\xEF\xBF\xBD\"}");
  CHECK(error_body({404, "not_found", "no such path: PUT /\xff"}).find("\xEF\xBF\xBD") != std::string::npos);
  auto big = parse_json(R"({"a":1e400})");
  REQUIRE(std::holds_alternative<std::string>(big));
  auto bad = parse_json("{\"a\":\"\xff\"}");
  REQUIRE(std::holds_alternative<std::string>(bad));
  auto ok = parse_json(R"({"a":[1,2]})");
  REQUIRE(std::holds_alternative<nlohmann::json>(ok));
}

TEST_CASE("redirects stay on this origin, Host names its host, credentials are judged once", "[unit]") {
  CHECK(same_site_path("/index.html") == "/index.html");
  CHECK(same_site_path("//evil.example/") == "/");
  CHECK(same_site_path("/\\evil.example") == "/");
  CHECK(same_site_path("/a\r\nSet-Cookie: x") == "/");
  CHECK(same_site_path("evil") == "/");
  CHECK(host_of("127.0.0.1:7420") == "127.0.0.1");
  CHECK(host_of("[::1]:7420") == "[::1]");
  CHECK(host_of("localhost") == "localhost");
  CHECK(is_loopback_host(host_of("[::1]:1")));
  CHECK_FALSE(is_loopback_host(host_of("evil.example:7420")));
  const Tokens both{"t0k", "r3ad"};
  CHECK(prove("Bearer t0k", "", both).role == Role::kAdmin);
  CHECK(prove("Bearer r3ad", "", both).role == Role::kRead);
  auto wrong = prove("Bearer nope", "forkwatch_token=t0k", both);
  CHECK(wrong.role == Role::kNone);
  CHECK(wrong.wrong_bearer);
  auto cookie = prove("", "a=b; forkwatch_token=r3ad", both);
  CHECK(cookie.role == Role::kRead);
  CHECK(cookie.by_cookie);
  CHECK(prove("", "forkwatch_token=nope", both).role == Role::kNone);
  // Without a read token, an empty presented token is nobody.
  CHECK(prove("", "forkwatch_token=", Tokens{"t0k", ""}).role == Role::kNone);
}

TEST_CASE("Unix-socket peers: root and the daemon's user are admin, the socket group reads", "[unit]") {
  auto member = [](uid_t uid, gid_t g) { return uid == 1001 && g == 50; };
  CHECK(peer_role(0, 0, 998, std::nullopt, member) == Role::kAdmin);
  CHECK(peer_role(998, 998, 998, std::nullopt, member) == Role::kAdmin);
  CHECK(peer_role(1001, 1001, 998, gid_t{50}, member) == Role::kRead);   // supplementary
  CHECK(peer_role(1002, 50, 998, gid_t{50}, member) == Role::kRead);     // primary
  CHECK(peer_role(1002, 1002, 998, gid_t{50}, member) == Role::kNone);
  CHECK(peer_role(1001, 1001, 998, std::nullopt, member) == Role::kNone);  // no --socket-group
}
