// ApiClient: the `forkwatch` client's connection to forkwatchd. One request
// at a time from one thread, except stop(), which another thread may call to
// abort a streaming request (the events command does, on SIGINT). Replies are
// values; the caller maps them onto the client's exit codes (1: the daemon
// said no, 3: it could not be reached). Header-only for the same reason as
// client_format.h.
#pragma once

#include <httplib.h>

#include <functional>
#include <optional>
#include <string>

namespace forkwatch::client {

struct Reply {
  int status = 0;          // HTTP status; 0 when the daemon could not be reached
  std::string body;
  std::string transport;   // why it could not be reached ("Connection", "Read", ...)
  bool ok() const { return status >= 200 && status < 300; }
};

class ApiClient {
 public:
  // `url` is scheme://host[:port], already checked by the caller.
  ApiClient(const std::string& url, std::string token) : cli_(url), token_(std::move(token)) {
    cli_.set_connection_timeout(3);
    // The daemon answers a command within its own 10 s budget, or says 503.
    cli_.set_read_timeout(15);
    cli_.set_write_timeout(10);
  }

  Reply get(const std::string& path) { return wrap(cli_.Get(path, headers())); }
  Reply post(const std::string& path, const std::string& body) {
    return wrap(cli_.Post(path, headers(), body, "application/json"));
  }
  Reply del(const std::string& path) { return wrap(cli_.Delete(path, headers())); }

  // A streaming GET: `on_data` gets the body as it arrives while the status is
  // 200 and returns false to stop; an error reply's body is collected instead.
  Reply stream(const std::string& path, httplib::Headers extra, std::chrono::seconds read_timeout,
               const std::function<bool(const char*, size_t)>& on_data) {
    cli_.set_read_timeout(read_timeout.count());
    httplib::Headers h = headers();
    h.insert(extra.begin(), extra.end());
    int status = 0;
    std::string error_body;
    auto res = cli_.Get(
        path, h,
        [&](const httplib::Response& r) {
          status = r.status;
          return true;
        },
        [&](const char* data, size_t n) {
          if (status != 200) {
            error_body.append(data, n);
            return error_body.size() < (1 << 20);
          }
          return on_data(data, n);
        });
    Reply out;
    out.status = status;
    out.body = error_body;
    // A stream we ended ourselves (Canceled) or one that the daemon closed
    // after a 200 is not a failure to reach it.
    if (status == 0) out.transport = httplib::to_string(res.error());
    return out;
  }

  // Aborts a request in flight on another thread.
  void stop() { cli_.stop(); }

 private:
  httplib::Headers headers() const {
    httplib::Headers h;
    if (!token_.empty()) h.emplace("Authorization", "Bearer " + token_);
    return h;
  }

  static Reply wrap(const httplib::Result& r) {
    Reply out;
    if (!r) {
      out.transport = httplib::to_string(r.error());
      return out;
    }
    out.status = r->status;
    out.body = r->body;
    return out;
  }

  httplib::Client cli_;
  std::string token_;
};

// Feeds text/event-stream bytes in; calls `on_event(id, type, data)` for each
// complete event (blank-line terminated); comments (": heartbeat") are skipped.
class SseParser {
 public:
  using Handler = std::function<bool(const std::string& id, const std::string& type, const std::string& data)>;
  explicit SseParser(Handler on_event) : on_event_(std::move(on_event)) {}

  // Returns false when the handler asked to stop.
  bool feed(const char* data, size_t n) {
    buf_.append(data, n);
    size_t start = 0;
    for (size_t nl; (nl = buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string line = buf_.substr(start, nl - start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        if (!data_.empty() || !type_.empty()) {
          bool go_on = on_event_(id_, type_.empty() ? "message" : type_, data_);
          type_.clear();
          data_.clear();
          if (!go_on) {
            buf_.erase(0, nl + 1);
            return false;
          }
        }
        continue;
      }
      if (line[0] == ':') continue;
      const size_t colon = line.find(':');
      std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field == "id") id_ = value;
      else if (field == "event") type_ = value;
      else if (field == "data") data_ += (data_.empty() ? "" : "\n") + value;
    }
    buf_.erase(0, start);
    return true;
  }

 private:
  Handler on_event_;
  std::string buf_;
  std::string id_;  // the last id persists between events, as the SSE spec says
  std::string type_;
  std::string data_;
};

}  // namespace forkwatch::client
