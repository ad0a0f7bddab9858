// TLS for the API's TCP listener, on OpenSSL directly. TlsContext holds the
// certificate and key (PEM) as an SSL_CTX that accepts TLS 1.2 or later;
// reload() re-reads the same files (SIGHUP, on the loop thread) and keeps the
// old pair when the new one is bad. new_session() is called by the gate
// thread for each accepted connection: a connection keeps the pair it was
// accepted with. The first load() dlopens forkwatch-tls.so (tls_backend.h)
// and initialises OpenSSL there, so a daemon without --tls-cert neither maps
// nor initialises OpenSSL. The `forkwatch` client loads it the same way, for
// an https:// URL only.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>

#include "sys_error.h"
#include "tls_backend.h"

namespace forkwatch {

// One connection's TLS state over a non-blocking socket. Used by one thread
// at a time (the gate while it reads, the pool thread while it writes a
// reply); the hand-over between them is what orders its use.
class TlsSession {
 public:
  using Io = TlsIo;

  TlsSession() = default;
  explicit TlsSession(ssl_st* ssl) : ssl_(ssl) {}
  TlsSession(TlsSession&& o) noexcept : ssl_(o.ssl_) { o.ssl_ = nullptr; }
  TlsSession& operator=(TlsSession&& o) noexcept;
  ~TlsSession();
  explicit operator bool() const { return ssl_ != nullptr; }

  // One step of the server handshake; kOk once it is done.
  Io handshake();
  // Bytes read (> 0), or -1 with `io` saying why none were.
  ssize_t read(char* buf, size_t size, Io& io);
  // Bytes written (> 0, perhaps fewer than size), or -1 with `io`.
  ssize_t write(const char* buf, size_t size, Io& io);
  // Decrypted bytes OpenSSL holds that the socket will not announce again.
  bool pending() const;
  // Sends close_notify, without waiting for the peer's.
  void close_notify();
  // The reason of the last failure (OpenSSL's error queue), for a log line.
  static std::string last_error();

 private:
  ssl_st* ssl_ = nullptr;
};

class TlsContext {
 public:
  // Reads and checks the pair: both readable, PEM, the key matching the
  // certificate. The error names the file and what is wrong with it.
  static Result<std::unique_ptr<TlsContext>> load(const std::string& cert_file, const std::string& key_file);
  // The client's side (the `forkwatch` command): verifies the server against
  // `ca_file`, or the system's CA store when it is "".
  static Result<std::unique_ptr<TlsContext>> load_client(const std::string& ca_file);
  ~TlsContext();

  // Re-reads the same files; on error the pair in use stays.
  Status reload();
  // A session for an accepted socket; empty on failure (out of memory).
  TlsSession new_session(int fd);
  // A client session that connects to `host` over `fd` (load_client only).
  TlsSession new_client_session(int fd, const std::string& host);

  const std::string& cert_file() const { return cert_file_; }
  const std::string& key_file() const { return key_file_; }

 private:
  TlsContext(std::string cert, std::string key) : cert_file_(std::move(cert)), key_file_(std::move(key)) {}
  const std::string cert_file_, key_file_;
  std::mutex mu_;
  ssl_ctx_st* ctx_ = nullptr;  // guarded by mu_; each SSL holds its own reference
};

}  // namespace forkwatch
