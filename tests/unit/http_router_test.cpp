// http::Server: routing, decoding, HEAD, the JSON 404/405/500 and the reply's
// framing, from a parsed head to the bytes written, without a socket.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "http_router.h"

using namespace forkwatch;

namespace {

// Collects what the router writes; fails every write after `fail_after` bytes.
class Captured final : public http::ReplyStream {
 public:
  explicit Captured(size_t fail_after = SIZE_MAX) : fail_after_(fail_after) {}
  bool write(const char* d, size_t n) override {
    if (text.size() + n > fail_after_) return false;
    text.append(d, n);
    return true;
  }
  std::string text;

 private:
  size_t fail_after_;
};

HttpHead head_of(const std::string& raw) {
  HeadParse p = parse_head(raw, HttpLimits{});
  REQUIRE(std::holds_alternative<HttpHead>(p));
  return std::get<HttpHead>(p);
}

struct Reply {
  bool keep_open = false;
  std::string raw, head, body;
  int status() const { return std::stoi(raw.substr(9, 3)); }
  nlohmann::json json() const { return nlohmann::json::parse(body); }
};

Reply serve(const http::Server& svr, const std::string& request_head, std::string body = "", bool close_after = false) {
  Captured out;
  Reply r;
  r.keep_open = svr.serve(head_of(request_head), std::move(body), out, close_after);
  r.raw = out.text;
  size_t end = r.raw.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  r.head = r.raw.substr(0, end + 2);
  r.body = r.raw.substr(end + 4);
  return r;
}

std::string get(const std::string& target, const std::string& method = "GET") {
  return method + " " + target + " HTTP/1.1\r\nHost: h\r\n\r\n";
}

}  // namespace

TEST_CASE("the router picks the first matching route and decodes path, query and headers", "[unit]") {
  http::Server svr;
  std::string seen;
  svr.Get(R"(/items/([^/]+))", [&](const http::Request& req, http::Response& res) {
    seen = std::string(req.matches[1]) + "|" + req.get_param_value("q") + "|" + req.get_param_value("n", 1) + "|" +
           req.get_header_value("x-custom") + "|" + (req.has_param("absent") ? "yes" : "no");
    res.set_content("ok", "text/plain");
  });
  svr.Get(R"(/items/.*)", [&](const http::Request&, http::Response& res) { res.set_content("second", "text/plain"); });
  auto r = serve(svr, "GET /items/a%20b?q=x+y%2Bz&n=1&n=2 HTTP/1.1\r\nHost: h\r\nX-Custom: v\r\n\r\n");
  CHECK(r.status() == 200);
  CHECK(r.body == "ok");
  CHECK(seen == "a b|x y+z|2|v|no");
  CHECK(r.head.find("Content-Length: 2\r\n") != std::string::npos);
  CHECK(r.head.find("Connection: keep-alive\r\n") != std::string::npos);
  CHECK(r.keep_open);
  // '+' in a path is a plus, and the regex must match the whole path.
  CHECK(http::decode_url("/a+b%2f", false) == "/a+b/");
  CHECK(serve(svr, get("/items/x/y")).body == "second");
  CHECK(serve(svr, get("/items")).status() == 404);
}

TEST_CASE("HEAD is answered by the GET route, with the length and without the body", "[unit]") {
  http::Server svr;
  svr.Get("/file", [](const http::Request&, http::Response& res) { res.set_content("twelve bytes", "text/plain"); });
  auto r = serve(svr, get("/file", "HEAD"));
  CHECK(r.status() == 200);
  CHECK(r.head.find("Content-Length: 12\r\n") != std::string::npos);
  CHECK(r.body.empty());
  CHECK(r.keep_open);
}

TEST_CASE("unknown paths are a JSON 404, other methods a JSON 405 with Allow", "[unit]") {
  http::Server svr;
  svr.Get("/thing", [](const http::Request&, http::Response& res) { res.set_content("x", "text/plain"); });
  svr.Delete("/thing", [](const http::Request&, http::Response& res) { res.set_content("x", "text/plain"); });
  auto missing = serve(svr, get("/nothing"));
  CHECK(missing.status() == 404);
  CHECK(missing.head.find("Content-Type: application/json") != std::string::npos);
  CHECK(missing.json()["error"]["code"].is_string());
  auto wrong = serve(svr, "POST /thing HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  CHECK(wrong.status() == 405);
  CHECK(wrong.head.find("Allow: GET, DELETE, HEAD\r\n") != std::string::npos);
  CHECK(wrong.json()["error"].is_object());
  // The error handler sees the status and may say more.
  svr.set_error_handler([](const http::Request& req, http::Response& res) {
    res.set_content("{\"error\":{\"code\":\"mine\",\"message\":\"" + req.path + "\"}}", "application/json");
  });
  CHECK(serve(svr, get("/nothing")).json()["error"]["code"] == "mine");
  // A fallback takes the GETs no route did, and only those.
  svr.set_fallback([](const http::Request& req, http::Response& res) { res.set_content(req.path, "text/plain"); });
  CHECK(serve(svr, get("/other")).body == "/other");
  CHECK(serve(svr, "PUT /other HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").status() == 404);
}

TEST_CASE("a handler that throws is answered 500 JSON, with or without an exception handler", "[unit]") {
  http::Server svr;
  svr.set_default_headers({{"X-Content-Type-Options", "nosniff"}});
  svr.Get("/boom", [](const http::Request&, http::Response& res) {
    res.set_header("X-Half", "set");
    throw std::runtime_error("broken");
  });
  auto plain = serve(svr, get("/boom"));
  CHECK(plain.status() == 500);
  CHECK(plain.json()["error"].is_object());
  CHECK(plain.head.find("X-Half") == std::string::npos);  // the half reply is gone
  CHECK(plain.head.find("X-Content-Type-Options: nosniff\r\n") != std::string::npos);
  std::string what;
  svr.set_exception_handler([&](const http::Request&, http::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    }
    res.status = 500;
    res.set_content(R"({"error":{"code":"internal","message":"handled"}})", "application/json");
  });
  auto handled = serve(svr, get("/boom"));
  CHECK(what == "broken");
  CHECK(handled.status() == 500);
  CHECK(handled.json()["error"]["message"] == "handled");
}

TEST_CASE("the reply says Connection: close when asked or for HTTP/1.0, and the connection is not kept", "[unit]") {
  http::Server svr;
  svr.Get("/", [](const http::Request&, http::Response& res) { res.set_content("x", "text/plain"); });
  auto last = serve(svr, get("/"), "", true);
  CHECK(last.head.find("Connection: close\r\n") != std::string::npos);
  CHECK_FALSE(last.keep_open);
  auto old = serve(svr, "GET / HTTP/1.0\r\n\r\n");
  CHECK(old.head.find("Connection: close\r\n") != std::string::npos);
  CHECK_FALSE(old.keep_open);
  // A header value cannot split the reply.
  http::Response res;
  res.set_header("X-Bad", "a\r\nSet-Cookie: evil=1");
  CHECK_FALSE(res.has_header("X-Bad"));
}

TEST_CASE("sized and chunked providers are written framed, and a failed write ends a stream", "[unit]") {
  http::Server svr;
  svr.Get("/sized", [](const http::Request&, http::Response& res) {
    auto text = std::make_shared<std::string>("0123456789");
    res.set_content_provider(text->size(), "text/plain", [text](size_t off, size_t len, http::DataSink& sink) {
      return sink.write(text->data() + off, std::min<size_t>(len, 4));  // in pieces
    });
  });
  int calls = 0;
  bool released_ok = true, released = false;
  svr.Get("/stream", [&](const http::Request&, http::Response& res) {
    res.set_chunked_content_provider(
        "text/event-stream",
        [&](size_t, http::DataSink& sink) {
          ++calls;
          return sink.write("data: hi\n\n", 10);
        },
        [&](bool ok) {
          released = true;
          released_ok = ok;
        });
  });
  auto sized = serve(svr, get("/sized"));
  CHECK(sized.body == "0123456789");
  CHECK(sized.head.find("Content-Length: 10\r\n") != std::string::npos);
  CHECK(sized.keep_open);

  // The client leaves after the head and two events: the provider sees the
  // failed write, the stream ends, the releaser hears it did not end whole.
  const size_t head_bytes = serve(svr, get("/stream", "HEAD")).raw.size();
  released = false;
  Captured out(head_bytes + 2 * 15);
  CHECK_FALSE(svr.serve(head_of(get("/stream")), "", out, false));
  CHECK(out.text.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(out.text.substr(head_bytes) == "a\r\ndata: hi\n\n\r\na\r\ndata: hi\n\n\r\n");
  CHECK(calls == 3);
  CHECK(released);
  CHECK_FALSE(released_ok);
}
