// http::Server: routes one whole request to its handler and writes the reply.
// HttpGate has already read and framed the request (HttpHead and body); the
// router decodes the target, picks the route, runs the handler on the pool
// thread that called serve(), and writes status, headers and body to a
// ReplyStream (plain socket or TLS). Routes are declared once, before the
// first request; after that every member is read-only, so any number of pool
// threads may call serve() at once. The names follow cpp-httplib's, which
// this replaces in the daemon, so routes read the same (svr.Get(regex, fn)).
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http_head.h"

namespace forkwatch::http {

// Case-insensitive, for header names (RFC 9110 5.1).
struct CaseLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, CaseLess>;
using Params = std::multimap<std::string, std::string>;

// Where a reply goes. write() sends all of it or fails (the client left, or
// no progress within the gate's write timeout).
class ReplyStream {
 public:
  virtual ~ReplyStream() = default;
  virtual bool write(const char* data, size_t size) = 0;
};

struct Request {
  std::string method, target, version;
  std::string path;  // percent-decoded ('+' stays '+')
  Params params;     // the query, decoded ('+' is a space)
  Headers headers;
  std::string body;
  std::smatch matches;  // of the route's pattern against path

  bool has_header(const std::string& key) const;
  // The id-th value of that header, or "".
  std::string get_header_value(const std::string& key, size_t id = 0) const;
  bool has_param(const std::string& key) const;
  std::string get_param_value(const std::string& key, size_t id = 0) const;
};

// What a content provider writes to. A false write means the client is gone:
// the provider returns false and the reply ends.
class DataSink {
 public:
  explicit DataSink(std::function<bool(const char*, size_t)> write) : write_(std::move(write)) {}
  bool write(const char* data, size_t size) { return write_(data, size); }
  bool write(std::string_view s) { return write_(s.data(), s.size()); }

 private:
  std::function<bool(const char*, size_t)> write_;
};

// Sized: called until `length` bytes have been written, from `offset`.
using ContentProvider = std::function<bool(size_t offset, size_t length, DataSink& sink)>;
// Chunked (an event stream): called again while it returns true; it must
// block (wait for data or a heartbeat), never spin.
using ChunkedContentProvider = std::function<bool(size_t offset, DataSink& sink)>;
// Called once when the reply ends; true when it was written whole.
using ContentProviderReleaser = std::function<void(bool success)>;

struct Response {
  int status = -1;  // -1: not set; 200 once routed
  Headers headers;
  std::string body;

  bool has_header(const std::string& key) const;
  std::string get_header_value(const std::string& key) const;
  // Replaces any header of that name.
  void set_header(const std::string& key, const std::string& value);
  void set_content(std::string body, const std::string& content_type);
  void set_redirect(const std::string& url, int status = 302);
  void set_content_provider(size_t length, const std::string& content_type, ContentProvider provider,
                            ContentProviderReleaser releaser = nullptr);
  void set_chunked_content_provider(const std::string& content_type, ChunkedContentProvider provider,
                                    ContentProviderReleaser releaser = nullptr);

  // Set by the providers above; the writer reads them.
  size_t content_length = 0;
  ContentProvider provider;
  ChunkedContentProvider chunked_provider;
  ContentProviderReleaser releaser;
};

// "%41+b" -> "A+b" (path) or "A b" (query, plus_is_space).
std::string decode_url(std::string_view s, bool plus_is_space);
// "a=1&b=%20" -> {a:1, b:" "}.
Params parse_query(std::string_view query);

class Server {
 public:
  using Handler = std::function<void(const Request&, Response&)>;
  enum class HandlerResponse { Handled, Unhandled };
  using PreRouting = std::function<HandlerResponse(const Request&, Response&)>;
  using ExceptionHandler = std::function<void(const Request&, Response&, std::exception_ptr)>;

  // Patterns are regexes matched against the whole decoded path; the first
  // route declared that matches wins. HEAD is answered by the GET routes.
  Server& Get(const std::string& pattern, Handler h);
  Server& Post(const std::string& pattern, Handler h);
  Server& Put(const std::string& pattern, Handler h);
  Server& Patch(const std::string& pattern, Handler h);
  Server& Delete(const std::string& pattern, Handler h);
  // A GET (or HEAD) no route matched, before it becomes a 404 (static files).
  void set_fallback(Handler h) { fallback_ = std::move(h); }

  // Runs before routing; Handled: its response is the reply.
  void set_pre_routing_handler(PreRouting h) { pre_routing_ = std::move(h); }
  // For every reply with a status of 400 or more (404 and 405 from the
  // router itself have an empty body when it is called).
  void set_error_handler(Handler h) { error_handler_ = std::move(h); }
  void set_exception_handler(ExceptionHandler h) { exception_handler_ = std::move(h); }
  // After each reply is written.
  void set_logger(std::function<void(const Request&, const Response&)> f) { logger_ = std::move(f); }
  void set_default_headers(Headers h) { default_headers_ = std::move(h); }
  void set_keep_alive_timeout_s(int64_t s) { keep_alive_s_ = s; }

  // Serves one request; true when the whole reply was written and the
  // connection may carry another request (not close_after, not HTTP/1.0
  // without keep-alive, not a reply that ended early).
  bool serve(const HttpHead& head, std::string body, ReplyStream& out, bool close_after) const;

 private:
  struct Route {
    std::string method;
    std::regex pattern;
    Handler handler;
  };
  Server& add(std::string method, const std::string& pattern, Handler h);
  void route(Request& req, Response& res) const;
  bool write_reply(const Request& req, Response& res, ReplyStream& out, bool close) const;

  std::vector<Route> routes_;
  Handler fallback_, error_handler_;
  PreRouting pre_routing_;
  ExceptionHandler exception_handler_;
  std::function<void(const Request&, const Response&)> logger_;
  Headers default_headers_;
  int64_t keep_alive_s_ = 5;
};

}  // namespace forkwatch::http
