// HTTP/1.1 request framing, strictly (RFC 9112): the request line and header
// lines of one request, judged from the bytes a connection has sent so far,
// and a chunked body decoded within a size cap. Pure functions over bytes, so
// every rule is unit-tested without a socket; HttpGate applies them while it
// reads, before http::Server sees a request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "api_error.h"

namespace forkwatch {

struct HttpLimits {
  // The defaults of docs/API.md, "Limits and framing".
  size_t max_request_line = 8000;   // bytes, CRLF excluded; 414 beyond
  size_t max_header_line = 8000;    // one header line; 431 beyond
  size_t max_header_bytes = 32768;  // every header line together; 431 beyond
  size_t max_headers = 100;         // 431 beyond
  size_t max_body = 1 << 20;        // bytes, chunked bodies once decoded; 413 beyond
};

struct HttpHead {
  std::string method, target, version;  // version: "HTTP/1.1" or "HTTP/1.0"
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, values trimmed
  size_t head_bytes = 0;                 // through the blank line
  uint64_t content_length = 0;           // 0 when there is no body or it is chunked
  bool chunked = false;
  bool expect_continue = false;          // Expect: 100-continue
  bool close = false;                    // Connection: close, or HTTP/1.0 without keep-alive

  // The first header of that name (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
};

// Nothing decided yet (more bytes are needed), a complete head, or a refusal.
// A refusal may come before the head is complete: an oversized request line
// or header block is refused as soon as it is too long.
using HeadParse = std::variant<std::monostate, HttpHead, ApiError>;
HeadParse parse_head(std::string_view bytes, const HttpLimits& limits);

struct ChunkedBody {
  std::string body;
  size_t consumed = 0;  // bytes of the chunked encoding, trailers included
};
// The same three outcomes for a chunked body at the start of `bytes`.
using ChunkedParse = std::variant<std::monostate, ChunkedBody, ApiError>;
ChunkedParse decode_chunked(std::string_view bytes, size_t max_body);

}  // namespace forkwatch
