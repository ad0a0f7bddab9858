#include "http_router.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <strings.h>

namespace forkwatch::http {
namespace {

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

template <typename Map>
std::string value_of(const Map& h, const std::string& key, size_t id) {
  auto [first, last] = h.equal_range(key);
  for (auto it = first; it != last; ++it, --id)
    if (id == 0) return it->second;
  return {};
}

}  // namespace

bool CaseLess::operator()(const std::string& a, const std::string& b) const {
  return strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string decode_url(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += plus_is_space && s[i] == '+' ? ' ' : s[i];
  }
  return out;
}

Params parse_query(std::string_view q) {
  Params out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = decode_url(pair.substr(0, eq), true);
      std::string value = eq == std::string_view::npos ? std::string() : decode_url(pair.substr(eq + 1), true);
      out.emplace(std::move(key), std::move(value));
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

bool Request::has_header(const std::string& key) const { return headers.find(key) != headers.end(); }
std::string Request::get_header_value(const std::string& key, size_t id) const { return value_of(headers, key, id); }
bool Request::has_param(const std::string& key) const { return params.find(key) != params.end(); }
std::string Request::get_param_value(const std::string& key, size_t id) const { return value_of(params, key, id); }

bool Response::has_header(const std::string& key) const { return headers.find(key) != headers.end(); }
std::string Response::get_header_value(const std::string& key) const { return value_of(headers, key, 0); }

void Response::set_header(const std::string& key, const std::string& value) {
  // A value with CR or LF would split the reply (response splitting): refused.
  if (key.find_first_of("\r\n:") != std::string::npos || value.find_first_of("\r\n") != std::string::npos) return;
  headers.erase(key);
  headers.emplace(key, value);
}

void Response::set_content(std::string b, const std::string& content_type) {
  body = std::move(b);
  set_header("Content-Type", content_type);
  provider = nullptr;
  chunked_provider = nullptr;
}

void Response::set_redirect(const std::string& url, int s) {
  set_header("Location", url);
  status = s;
}

void Response::set_content_provider(size_t length, const std::string& content_type, ContentProvider p,
                                    ContentProviderReleaser r) {
  set_header("Content-Type", content_type);
  content_length = length;
  provider = std::move(p);
  chunked_provider = nullptr;
  releaser = std::move(r);
}

void Response::set_chunked_content_provider(const std::string& content_type, ChunkedContentProvider p,
                                            ContentProviderReleaser r) {
  set_header("Content-Type", content_type);
  chunked_provider = std::move(p);
  provider = nullptr;
  releaser = std::move(r);
}

Server& Server::add(std::string method, const std::string& pattern, Handler h) {
  routes_.push_back({std::move(method), std::regex(pattern), std::move(h)});
  return *this;
}
Server& Server::Get(const std::string& p, Handler h) { return add("GET", p, std::move(h)); }
Server& Server::Post(const std::string& p, Handler h) { return add("POST", p, std::move(h)); }
Server& Server::Put(const std::string& p, Handler h) { return add("PUT", p, std::move(h)); }
Server& Server::Patch(const std::string& p, Handler h) { return add("PATCH", p, std::move(h)); }
Server& Server::Delete(const std::string& p, Handler h) { return add("DELETE", p, std::move(h)); }

void Server::route(Request& req, Response& res) const {
  if (pre_routing_ && pre_routing_(req, res) == HandlerResponse::Handled) return;
  const std::string method = req.method == "HEAD" ? "GET" : req.method;
  std::string allowed;
  for (const Route& r : routes_) {
    std::smatch m;
    if (!std::regex_match(req.path, m, r.pattern)) continue;
    if (r.method == method) {
      req.matches = std::move(m);
      res.status = 200;
      r.handler(req, res);
      return;
    }
    if (allowed.find(r.method) == std::string::npos) allowed += (allowed.empty() ? "" : ", ") + r.method;
  }
  if (fallback_ && method == "GET") {
    res.status = 200;
    fallback_(req, res);
    return;
  }
  if (!allowed.empty()) {
    if (allowed.find("GET") != std::string::npos) allowed += ", HEAD";
    res.set_header("Allow", allowed);
    res.status = 405;
  } else {
    res.status = 404;
  }
}

bool Server::serve(const HttpHead& head, std::string body, ReplyStream& out, bool close_after) const {
  Request req;
  req.method = head.method;
  req.target = head.target;
  req.version = head.version;
  const size_t q = head.target.find('?');
  req.path = decode_url(std::string_view(head.target).substr(0, q), false);
  if (q != std::string::npos) req.params = parse_query(std::string_view(head.target).substr(q + 1));
  for (const auto& [name, value] : head.headers) req.headers.emplace(name, value);
  req.body = std::move(body);

  Response res;
  res.headers = default_headers_;
  try {
    route(req, res);
  } catch (...) {
    // A handler may have set half a reply: the 500 replaces it.
    Response fresh;
    fresh.headers = default_headers_;
    fresh.status = 500;
    if (exception_handler_) {
      try {
        exception_handler_(req, fresh, std::current_exception());
      } catch (...) {
      }
    }
    res = std::move(fresh);
  }
  if (res.status == -1) res.status = 200;
  if (res.status >= 400 && error_handler_) {
    try {
      error_handler_(req, res);
    } catch (...) {
    }
  }
  if (res.status >= 400 && res.body.empty() && !res.provider && !res.chunked_provider)
    res.set_content(error_body({res.status, "error", "HTTP " + std::to_string(res.status)}),
                    "application/json; charset=utf-8");
  const bool close = close_after || head.close;
  const bool whole = write_reply(req, res, out, close);
  if (logger_) logger_(req, res);
  return whole && !close;
}

bool Server::write_reply(const Request& req, Response& res, ReplyStream& out, bool close) const {
  const bool head_only = req.method == "HEAD";
  const bool chunked = static_cast<bool>(res.chunked_provider);
  std::string text = "HTTP/1.1 " + std::to_string(res.status) + " " + reason_phrase(res.status) + "\r\n";
  for (const auto& [name, value] : res.headers) text.append(name).append(": ").append(value).append("\r\n");
  if (chunked)
    text += "Transfer-Encoding: chunked\r\n";
  else
    text += "Content-Length: " + std::to_string(res.provider ? res.content_length : res.body.size()) + "\r\n";
  if (close)
    text += "Connection: close\r\n";
  else
    text += "Connection: keep-alive\r\nKeep-Alive: timeout=" + std::to_string(keep_alive_s_) + "\r\n";
  text += "\r\n";

  auto release = [&](bool ok) {
    if (res.releaser) res.releaser(ok);
    return ok;
  };
  if (head_only) return release(out.write(text.data(), text.size()));
  if (!res.provider && !chunked) {
    // One write for head and body: a small reply is one segment.
    text += res.body;
    return out.write(text.data(), text.size());
  }
  if (!out.write(text.data(), text.size())) return release(false);
  bool write_failed = false;
  try {
    if (res.provider) {
      size_t offset = 0;
      DataSink sink([&](const char* d, size_t n) {
        if (write_failed || !out.write(d, n)) return !(write_failed = true);
        offset += n;
        return true;
      });
      while (offset < res.content_length) {
        const size_t before = offset;
        if (!res.provider(offset, res.content_length - offset, sink) || offset == before) return release(false);
      }
      return release(true);
    }
    size_t offset = 0;
    DataSink sink([&](const char* d, size_t n) {
      if (write_failed) return false;
      if (n == 0) return true;  // an empty chunk would end the stream
      char size_line[24];
      const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
      std::string chunk;
      chunk.reserve(static_cast<size_t>(len) + n + 2);
      chunk.append(size_line, static_cast<size_t>(len)).append(d, n).append("\r\n");
      if (!out.write(chunk.data(), chunk.size())) return !(write_failed = true);
      offset += n;
      return true;
    });
    while (!write_failed && res.chunked_provider(offset, sink)) {
    }
  } catch (...) {
    return release(false);
  }
  // The stream ended (the daemon is stopping, or the client left): the last
  // chunk is sent if the client is still there, and the connection closes.
  if (!write_failed) out.write("0\r\n\r\n", 5);
  release(!write_failed);
  return false;
}

}  // namespace forkwatch::http
