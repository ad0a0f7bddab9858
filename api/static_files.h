// The dashboard's files, served by our own handler rather than httplib's
// mount point: the mount point stats the web root for every request (the API
// included) and Brotli-compresses every text/* file at quality 11, 35-60 ms a
// file under load. Files are read per request, so an edited dashboard is
// served at once, and answered through a sized content provider, which the
// router sends as it is (never compressed).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace forkwatch {

class StaticFiles {
 public:
  // `root`: the web directory. Empty, or a directory that does not exist: no files.
  explicit StaticFiles(const std::string& root);
  bool enabled() const { return !root_.empty(); }

  // The file a request path names: strictly inside the root, a regular file,
  // "/" and paths ending in "/" meaning their index.html. No "." or ".."
  // segments, no empty segments, no backslashes or NULs: such a path names
  // nothing, whatever the file system holds.
  std::optional<std::string> resolve(std::string_view request_path) const;

  static std::string_view content_type(std::string_view file_path);

 private:
  std::string root_;  // realpath of the root, without a trailing '/'
};

}  // namespace forkwatch
