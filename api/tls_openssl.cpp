// forkwatch-tls.so: TlsBackend on OpenSSL. Loaded by TlsContext only when
// --tls-cert is given (forkwatchd) or the URL is https:// (forkwatch); the
// only file of the project that includes OpenSSL.
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tls_backend.h"

namespace forkwatch {
namespace {

class OpenSslBackend final : public TlsBackend {
 public:
  std::string init() const override {
    if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, nullptr) == 1) return {};
    return "OpenSSL failed to initialise: " + last_error();
  }

  ssl_ctx_st* make_ctx(const std::string& cert, const std::string& key, std::string& error) const override {
    // A file OpenSSL cannot read says only "system lib": say which and why first.
    for (auto [flag, path] : {std::pair{"--tls-cert", &cert}, std::pair{"--tls-key", &key}}) {
      FILE* f = std::fopen(path->c_str(), "re");
      if (!f) {
        error = std::string(flag) + " " + *path + ": cannot read: " + std::strerror(errno);
        return nullptr;
      }
      std::fclose(f);
    }
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
      error = "TLS: SSL_CTX_new: " + last_error();
      return nullptr;
    }
    auto fail = [&](std::string what) -> ssl_ctx_st* {
      error = std::move(what) + ": " + last_error();
      SSL_CTX_free(ctx);
      return nullptr;
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // No renegotiation (a client-driven CPU sink in TLS 1.2), no session
    // tickets to rotate keys for; writes from the pool thread may be partial.
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
      return fail("--tls-cert " + cert + ": not a PEM certificate");
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      // OpenSSL compares the key with the certificate as it loads it.
      if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
        return fail("--tls-key " + key + ": does not match the certificate in " + cert);
      return fail("--tls-key " + key + ": not a PEM private key");
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
      return fail("--tls-key " + key + ": does not match the certificate in " + cert);
    return ctx;
  }

  void free_ctx(ssl_ctx_st* ctx) const override { SSL_CTX_free(ctx); }

  ssl_st* new_session(ssl_ctx_st* ctx, int fd) const override {
    SSL* ssl = SSL_new(ctx);  // holds its own reference to ctx
    if (!ssl) return nullptr;
    if (SSL_set_fd(ssl, fd) != 1) {
      SSL_free(ssl);
      return nullptr;
    }
    SSL_set_accept_state(ssl);
    return ssl;
  }

  void free_session(ssl_st* ssl) const override { SSL_free(ssl); }

  TlsIo handshake(ssl_st* ssl) const override {
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl);
    return r == 1 ? TlsIo::kOk : io_of(ssl, r);
  }

  ssize_t read(ssl_st* ssl, char* buf, size_t size, TlsIo& io) const override {
    ERR_clear_error();
    errno = 0;
    size_t got = 0;
    if (SSL_read_ex(ssl, buf, size, &got) == 1) {
      io = TlsIo::kOk;
      return static_cast<ssize_t>(got);
    }
    io = io_of(ssl, 0);
    return -1;
  }

  ssize_t write(ssl_st* ssl, const char* buf, size_t size, TlsIo& io) const override {
    ERR_clear_error();
    errno = 0;
    size_t done = 0;
    if (SSL_write_ex(ssl, buf, size, &done) == 1) {
      io = TlsIo::kOk;
      return static_cast<ssize_t>(done);
    }
    io = io_of(ssl, 0);
    return -1;
  }

  bool pending(ssl_st* ssl) const override { return SSL_has_pending(ssl) == 1; }

  void close_notify(ssl_st* ssl) const override {
    ERR_clear_error();
    if (SSL_is_init_finished(ssl)) SSL_shutdown(ssl);
  }

  ssl_ctx_st* make_client_ctx(const std::string& ca_file, std::string& error) const override {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
      error = "TLS: SSL_CTX_new: " + last_error();
      return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    const int loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                                       : SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
    if (loaded != 1) {
      error = (ca_file.empty() ? std::string("the system's CA store") : "--cacert " + ca_file) +
              ": cannot be loaded: " + last_error();
      SSL_CTX_free(ctx);
      return nullptr;
    }
    return ctx;
  }

  ssl_st* new_client_session(ssl_ctx_st* ctx, int fd, const std::string& host) const override {
    SSL* ssl = SSL_new(ctx);
    if (!ssl) return nullptr;
    in6_addr ip{};
    const bool is_ip = inet_pton(AF_INET, host.c_str(), &ip) == 1 || inet_pton(AF_INET6, host.c_str(), &ip) == 1;
    // An address is checked against the certificate's IP names; a host name
    // is sent (SNI) and checked against its DNS names.
    const bool named = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1
                             : SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 && SSL_set1_host(ssl, host.c_str()) == 1;
    if (!named || SSL_set_fd(ssl, fd) != 1) {
      SSL_free(ssl);
      return nullptr;
    }
    SSL_set_connect_state(ssl);
    return ssl;
  }

  std::string last_error() const override {
    unsigned long e = ERR_get_error();
    if (e == 0) return errno ? std::strerror(errno) : "unknown error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
  }

 private:
  static TlsIo io_of(SSL* ssl, int ret) {
    switch (SSL_get_error(ssl, ret)) {
      case SSL_ERROR_WANT_READ: return TlsIo::kWantRead;
      case SSL_ERROR_WANT_WRITE: return TlsIo::kWantWrite;
      case SSL_ERROR_ZERO_RETURN: return TlsIo::kClosed;
      case SSL_ERROR_SYSCALL:
        // EOF without close_notify: the client went away.
        return ERR_peek_error() == 0 && errno == 0 ? TlsIo::kClosed : TlsIo::kError;
      default: return TlsIo::kError;
    }
  }
};

}  // namespace
}  // namespace forkwatch

extern "C" const forkwatch::TlsBackend* forkwatch_tls_backend() {
  static const forkwatch::OpenSslBackend backend;
  return &backend;
}
