#include "tls.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <utility>

namespace forkwatch {
namespace {

// Set once, by the first TlsContext::load(), before any session exists.
const TlsBackend* g_backend = nullptr;

// The module beside the executable (the build tree, an unpacked tarball),
// else where it is installed (the workers' libexec directory).
// `flag` names what asked for TLS in the errors: --tls-cert, or an https:// URL.
Result<const TlsBackend*> load_backend(const std::string& flag) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  if (g_backend) return g_backend;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  std::string own_dir = n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string();
  own_dir = own_dir.substr(0, own_dir.rfind('/') + 1);
  std::string tried;
  for (const std::string& dir : {own_dir, own_dir + "../libexec/forkwatch/", std::string(FORKWATCH_LIBEXEC_DIR) + "/"}) {
    const std::string path = dir + "forkwatch-tls.so";
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      tried += (tried.empty() ? "" : "; ") + std::string(dlerror());
      continue;
    }
    auto get = reinterpret_cast<const TlsBackend* (*)()>(dlsym(h, "forkwatch_tls_backend"));
    if (!get) return plain_error(flag + ": " + path + " has no forkwatch_tls_backend");
    const TlsBackend* b = get();
    if (std::string e = b->init(); !e.empty()) return plain_error(flag + ": " + e);
    g_backend = b;
    return b;
  }
  // Built with -DFORKWATCH_TLS=OFF there is no module to find.
  return plain_error(flag + ": TLS support (forkwatch-tls.so) cannot be loaded" +
                     (FORKWATCH_TLS ? "" : " (this build has none: cmake -DFORKWATCH_TLS=ON)") + ": " + tried);
}

}  // namespace

TlsSession& TlsSession::operator=(TlsSession&& o) noexcept {
  std::swap(ssl_, o.ssl_);
  return *this;
}

TlsSession::~TlsSession() {
  if (ssl_) g_backend->free_session(ssl_);
}

TlsSession::Io TlsSession::handshake() { return g_backend->handshake(ssl_); }
ssize_t TlsSession::read(char* buf, size_t size, Io& io) { return g_backend->read(ssl_, buf, size, io); }
ssize_t TlsSession::write(const char* buf, size_t size, Io& io) { return g_backend->write(ssl_, buf, size, io); }
bool TlsSession::pending() const { return g_backend->pending(ssl_); }
void TlsSession::close_notify() { g_backend->close_notify(ssl_); }
std::string TlsSession::last_error() { return g_backend ? g_backend->last_error() : "TLS is not loaded"; }

Result<std::unique_ptr<TlsContext>> TlsContext::load(const std::string& cert, const std::string& key) {
  auto backend = load_backend("--tls-cert");
  if (!backend) return backend.error();
  std::string error;
  ssl_ctx_st* ctx = (*backend)->make_ctx(cert, key, error);
  if (!ctx) return plain_error(error);
  std::unique_ptr<TlsContext> out(new TlsContext(cert, key));
  out->ctx_ = ctx;
  return out;
}

Result<std::unique_ptr<TlsContext>> TlsContext::load_client(const std::string& ca_file) {
  auto backend = load_backend("https");
  if (!backend) return backend.error();
  std::string error;
  ssl_ctx_st* ctx = (*backend)->make_client_ctx(ca_file, error);
  if (!ctx) return plain_error(error);
  std::unique_ptr<TlsContext> out(new TlsContext(ca_file, ""));
  out->ctx_ = ctx;
  return out;
}

TlsContext::~TlsContext() {
  if (ctx_) g_backend->free_ctx(ctx_);
}

Status TlsContext::reload() {
  std::string error;
  ssl_ctx_st* ctx = g_backend->make_ctx(cert_file_, key_file_, error);
  if (!ctx) return plain_error(error);
  std::lock_guard lock(mu_);
  g_backend->free_ctx(ctx_);  // connections accepted with it hold their own reference
  ctx_ = ctx;
  return Ok{};
}

TlsSession TlsContext::new_session(int fd) {
  std::lock_guard lock(mu_);
  return TlsSession(g_backend->new_session(ctx_, fd));
}

TlsSession TlsContext::new_client_session(int fd, const std::string& host) {
  std::lock_guard lock(mu_);
  return TlsSession(g_backend->new_client_session(ctx_, fd, host));
}

}  // namespace forkwatch
