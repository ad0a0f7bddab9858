// TlsBackend: the OpenSSL calls TLS needs, behind one table that
// forkwatch-tls.so (api/tls_openssl.cpp, linked with libssl) exports as
// forkwatch_tls_backend(). forkwatchd itself links no OpenSSL: TlsContext
// dlopens the module the first time a pair is loaded, so a daemon without
// --tls-cert maps neither libssl nor libcrypto (1.4 MiB of VmRSS, measured).
// The handles are OpenSSL's SSL_CTX and SSL; errors are returned as text.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

struct ssl_st;
struct ssl_ctx_st;

namespace forkwatch {

// What one TLS call asks for next; the module maps SSL_get_error onto it.
enum class TlsIo { kOk, kWantRead, kWantWrite, kClosed, kError };

struct TlsBackend {
  // Initialises OpenSSL (explicitly: strings and config); "" when it worked.
  virtual std::string init() const = 0;
  // A server context for the PEM pair, TLS 1.2 or later; nullptr with `error`
  // naming the file and what is wrong with it.
  virtual ssl_ctx_st* make_ctx(const std::string& cert, const std::string& key, std::string& error) const = 0;
  virtual void free_ctx(ssl_ctx_st* ctx) const = 0;
  virtual ssl_st* new_session(ssl_ctx_st* ctx, int fd) const = 0;
  virtual void free_session(ssl_st* ssl) const = 0;
  virtual TlsIo handshake(ssl_st* ssl) const = 0;
  virtual ssize_t read(ssl_st* ssl, char* buf, size_t size, TlsIo& io) const = 0;
  virtual ssize_t write(ssl_st* ssl, const char* buf, size_t size, TlsIo& io) const = 0;
  virtual bool pending(ssl_st* ssl) const = 0;
  virtual void close_notify(ssl_st* ssl) const = 0;
  virtual std::string last_error() const = 0;
  // The `forkwatch` client's side: a context that verifies the daemon's
  // certificate against `ca_file` ("" for the system's CA store), and a
  // session that connects to `host` (a name, checked with SNI, or an IP).
  virtual ssl_ctx_st* make_client_ctx(const std::string& ca_file, std::string& error) const = 0;
  virtual ssl_st* new_client_session(ssl_ctx_st* ctx, int fd, const std::string& host) const = 0;

 protected:
  ~TlsBackend() = default;
};

}  // namespace forkwatch

// The module's one export.
extern "C" const forkwatch::TlsBackend* forkwatch_tls_backend();
