#include "static_files.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

namespace forkwatch {
namespace {

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

bool safe_segment(std::string_view seg) {
  if (seg.empty() || seg == "." || seg == "..") return false;
  return seg.find_first_of(std::string_view("\\\0", 2)) == std::string_view::npos;
}

}  // namespace

StaticFiles::StaticFiles(const std::string& root) {
  struct stat st{};
  std::string real = root.empty() ? std::string() : real_path(root);
  if (!real.empty() && stat(real.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) root_ = real;
  if (root_ == "/") root_.clear();  // serving the whole file system is never meant
}

std::optional<std::string> StaticFiles::resolve(std::string_view path) const {
  if (root_.empty() || path.empty() || path[0] != '/') return std::nullopt;
  std::string rel(path.substr(1));
  if (rel.empty() || rel.back() == '/') rel += "index.html";
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    if (!safe_segment(std::string_view(rel).substr(start, end - start))) return std::nullopt;
    start = end + 1;
  }
  // Symlinks may point anywhere: what counts is where the path ends up.
  std::string real = real_path(root_ + "/" + rel);
  if (real.size() <= root_.size() + 1 || real.compare(0, root_.size(), root_) != 0 || real[root_.size()] != '/')
    return std::nullopt;
  struct stat st{};
  if (stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return real;
}

std::string_view StaticFiles::content_type(std::string_view file) {
  struct Type {
    std::string_view ext, type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "application/javascript; charset=utf-8"},
      {".mjs", "application/javascript; charset=utf-8"},
      {".json", "application/json; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const Type& t : kTypes)
    if (file.size() > t.ext.size() && file.substr(file.size() - t.ext.size()) == t.ext) return t.type;
  return "application/octet-stream";
}

}  // namespace forkwatch
