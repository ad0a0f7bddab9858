#include "http_head.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace forkwatch {
namespace {

// RFC 9110 5.6.2: the characters of a token (methods, header names).
bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(c); });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return (x | 0x20) == (y | 0x20); });
}

// Connection is a comma-separated list of options.
bool has_option(std::string_view list, std::string_view option) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, option)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

ApiError bad(std::string message) { return {400, "bad_request", std::move(message)}; }
ApiError too_large_head(std::string message) { return {431, "headers_too_large", std::move(message)}; }

// The end of the line that starts at `from` (the index of its CR), or npos
// when it has not arrived yet. A LF without its CR is refused: lenient line
// endings are how requests get smuggled past one parser and not another.
std::variant<size_t, ApiError> line_end(std::string_view bytes, size_t from) {
  size_t lf = bytes.find('\n', from);
  if (lf == std::string_view::npos) return std::string_view::npos;
  if (lf == from || bytes[lf - 1] != '\r') return bad("a line ends with LF alone (HTTP needs CRLF)");
  return lf - 1;
}

std::optional<ApiError> parse_request_line(std::string_view line, HttpHead& h) {
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return bad("the request line must be METHOD SP TARGET SP HTTP-VERSION");
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (!is_token(method)) return bad("the method is not a token");
  // Visible ASCII only: a raw byte >= 0x80 or a control character in the
  // target is refused, percent-encoded it is fine.
  if (target.empty() || !std::all_of(target.begin(), target.end(),
                                     [](char c) { return c > 0x20 && c < 0x7f; }))
    return bad("the request target must be visible ASCII (percent-encode other bytes)");
  if (target.front() != '/' && target != "*") return bad("the request target must start with /");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return bad("only HTTP/1.1 and HTTP/1.0 are served");
  h.method = method;
  h.target = target;
  h.version = version;
  return std::nullopt;
}

std::optional<ApiError> parse_header_line(std::string_view line, HttpHead& h) {
  if (line.front() == ' ' || line.front() == '\t')
    return bad("a header line starts with whitespace (obsolete line folding is refused)");
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return bad("a header line has no colon");
  std::string_view name = line.substr(0, colon);
  if (!is_token(name)) return bad("a header name is empty or holds a character a token cannot");
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  for (unsigned char c : value)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return bad("header " + std::string(name) + " holds a control character");
  h.headers.emplace_back(name, value);
  return std::nullopt;
}

// Framing decided from the headers (RFC 9112 6): one length, or chunked, never both.
std::optional<ApiError> judge_framing(HttpHead& h, const HttpLimits& limits) {
  const std::string* length = nullptr;
  const std::string* encoding = nullptr;
  int hosts = 0;
  for (const auto& [name, value] : h.headers) {
    if (iequals(name, "Content-Length")) {
      if (length && *length != value) return bad("two different Content-Length headers");
      length = &value;
    } else if (iequals(name, "Transfer-Encoding")) {
      if (encoding) return bad("more than one Transfer-Encoding header");
      encoding = &value;
    } else if (iequals(name, "Host")) {
      ++hosts;
    } else if (iequals(name, "Expect")) {
      if (!iequals(value, "100-continue")) return ApiError{417, "expectation_failed", "only Expect: 100-continue is understood"};
      h.expect_continue = true;
    } else if (iequals(name, "Connection")) {
      if (has_option(value, "close")) h.close = true;
    }
  }
  if (h.version == "HTTP/1.1" && hosts != 1) return bad("an HTTP/1.1 request needs exactly one Host header");
  if (hosts > 1) return bad("more than one Host header");
  if (h.version == "HTTP/1.0") {
    const std::string* conn = h.header("Connection");
    if (!conn || !has_option(*conn, "keep-alive")) h.close = true;
  }
  if (length && encoding) return bad("Content-Length and Transfer-Encoding together are refused");
  if (encoding) {
    if (h.version != "HTTP/1.1") return bad("Transfer-Encoding needs HTTP/1.1");
    if (!iequals(*encoding, "chunked")) return bad("the only Transfer-Encoding served is chunked");
    h.chunked = true;
  }
  if (length) {
    const char* end = length->data() + length->size();
    auto [p, ec] = std::from_chars(length->data(), end, h.content_length);
    if (length->empty() || p != end || (ec != std::errc() && ec != std::errc::result_out_of_range))
      return bad("Content-Length must be a decimal number");
    if (ec == std::errc::result_out_of_range)
      return ApiError{413, "too_large", "the body is larger than the limit (" + std::to_string(limits.max_body) + " bytes)"};
    if (h.content_length > limits.max_body)
      return ApiError{413, "too_large", "the body is larger than the limit (" + std::to_string(limits.max_body) + " bytes)"};
  }
  return std::nullopt;
}

}  // namespace

const std::string* HttpHead::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (iequals(n, name)) return &v;
  return nullptr;
}

HeadParse parse_head(std::string_view bytes, const HttpLimits& limits) {
  // A CRLF or two before a request is allowed (RFC 9112 2.2); more is noise.
  size_t start = 0;
  while (start < 4 && bytes.substr(start, 2) == "\r\n") start += 2;
  auto first = line_end(bytes, start);
  if (auto* r = std::get_if<ApiError>(&first)) return *r;
  size_t eol = std::get<size_t>(first);
  if (eol == std::string_view::npos) {
    if (bytes.size() - start > limits.max_request_line + 1)
      return ApiError{414, "uri_too_long", "the request line is longer than " + std::to_string(limits.max_request_line) + " bytes"};
    return std::monostate{};
  }
  if (eol - start > limits.max_request_line)
    return ApiError{414, "uri_too_long", "the request line is longer than " + std::to_string(limits.max_request_line) + " bytes"};
  HttpHead h;
  if (auto r = parse_request_line(bytes.substr(start, eol - start), h)) return *r;

  size_t pos = eol + 2, count = 0;
  const size_t headers_start = pos;
  for (;;) {
    auto next = line_end(bytes, pos);
    if (auto* r = std::get_if<ApiError>(&next)) return *r;
    size_t end = std::get<size_t>(next);
    const size_t so_far = (end == std::string_view::npos ? bytes.size() : end) - headers_start;
    const size_t line_len = (end == std::string_view::npos ? bytes.size() : end) - pos;
    if (so_far > limits.max_header_bytes)
      return too_large_head("the headers are longer than " + std::to_string(limits.max_header_bytes) + " bytes");
    if (line_len > limits.max_header_line)
      return too_large_head("a header line is longer than " + std::to_string(limits.max_header_line) + " bytes");
    if (end == std::string_view::npos) return std::monostate{};
    if (end == pos) {  // the blank line
      h.head_bytes = end + 2;
      break;
    }
    std::string_view line = bytes.substr(pos, end - pos);
    if (line.find('\r') != std::string_view::npos) return bad("a header line holds a bare CR");
    if (++count > limits.max_headers)
      return too_large_head("more than " + std::to_string(limits.max_headers) + " header lines");
    if (auto r = parse_header_line(line, h)) return *r;
    pos = end + 2;
  }
  if (auto r = judge_framing(h, limits)) return *r;
  return h;
}

ChunkedParse decode_chunked(std::string_view bytes, size_t max_body) {
  constexpr size_t kMaxChunkLine = 1024, kMaxTrailers = 8192;
  ChunkedBody out;
  size_t pos = 0;
  for (;;) {
    auto next = line_end(bytes, pos);
    if (auto* r = std::get_if<ApiError>(&next)) return *r;
    size_t eol = std::get<size_t>(next);
    if (eol == std::string_view::npos)
      return bytes.size() - pos > kMaxChunkLine ? ChunkedParse{bad("a chunk size line is too long")}
                                                : ChunkedParse{std::monostate{}};
    std::string_view line = bytes.substr(pos, eol - pos);
    std::string_view digits = line.substr(0, line.find(';'));
    uint64_t size = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size, 16);
    if (digits.empty() || p != digits.data() + digits.size() ||
        (ec != std::errc() && ec != std::errc::result_out_of_range))
      return bad("a chunk size is not a hexadecimal number");
    if (ec == std::errc::result_out_of_range)
      return ApiError{413, "too_large", "the body is larger than the limit (" + std::to_string(max_body) + " bytes)"};
    pos = eol + 2;
    if (size == 0) break;
    if (size > max_body - out.body.size())
      return ApiError{413, "too_large", "the body is larger than the limit (" + std::to_string(max_body) + " bytes)"};
    if (bytes.size() - pos < size + 2) return std::monostate{};
    if (bytes.substr(pos + size, 2) != "\r\n") return bad("a chunk does not end with CRLF");
    out.body.append(bytes.substr(pos, size));
    pos += size + 2;
  }
  // Trailer fields, read and dropped, up to the blank line.
  const size_t trailers_start = pos;
  for (;;) {
    auto next = line_end(bytes, pos);
    if (auto* r = std::get_if<ApiError>(&next)) return *r;
    size_t eol = std::get<size_t>(next);
    if (eol == std::string_view::npos)
      return bytes.size() - trailers_start > kMaxTrailers ? ChunkedParse{too_large_head("the trailers are too long")}
                                                          : ChunkedParse{std::monostate{}};
    if (eol - trailers_start > kMaxTrailers) return too_large_head("the trailers are too long");
    const bool blank = eol == pos;
    pos = eol + 2;
    if (blank) break;
  }
  out.consumed = pos;
  return out;
}

}  // namespace forkwatch
