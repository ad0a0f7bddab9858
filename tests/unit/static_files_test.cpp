// Which request paths name a dashboard file: only regular files strictly
// inside the web root, whatever tricks the path or the file system play.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "static_files.h"
#include "temp_dir.h"

using namespace forkwatch;
namespace fs = std::filesystem;

namespace {

struct WebRoot {
  fwtest::TempDir outside{"forkwatch-static"};
  std::string root = outside.file("web");
  WebRoot() {
    fs::create_directories(root + "/js/sub");
    std::ofstream(root + "/index.html") << "<p>home</p>";
    std::ofstream(root + "/js/main.js") << "1";
    std::ofstream(root + "/js/sub/index.html") << "sub";
    std::ofstream(outside.file("secret.txt")) << "secret";
    fs::create_symlink(outside.file("secret.txt"), root + "/leak.txt");
    fs::create_symlink(root + "/js/main.js", root + "/alias.js");
    fs::create_directory_symlink(outside.path, root + "/up");
  }
  std::string real(const std::string& p) const { return fs::canonical(p).string(); }
};

}  // namespace

TEST_CASE("static files: the root and directories mean their index.html", "[unit]") {
  WebRoot w;
  StaticFiles files(w.root);
  REQUIRE(files.enabled());
  CHECK(files.resolve("/") == w.real(w.root + "/index.html"));
  CHECK(files.resolve("/index.html") == w.real(w.root + "/index.html"));
  CHECK(files.resolve("/js/main.js") == w.real(w.root + "/js/main.js"));
  CHECK(files.resolve("/js/sub/") == w.real(w.root + "/js/sub/index.html"));
  CHECK(files.resolve("/js/") == std::nullopt);  // no index.html there
  CHECK(files.resolve("/js") == std::nullopt);   // a directory is not a file
  CHECK(files.resolve("/missing.js") == std::nullopt);
}

TEST_CASE("static files: paths that climb, hide or smuggle name nothing", "[unit]") {
  WebRoot w;
  StaticFiles files(w.root);
  for (const char* path : {"", "index.html", "/../secret.txt", "/js/../../secret.txt", "/js/../index.html",
                           "/./index.html", "//index.html", "/js//main.js", "/..\\secret.txt",
                           "/js\\main.js"}) {
    INFO("path: " << path);
    CHECK(files.resolve(path) == std::nullopt);
  }
  CHECK(files.resolve(std::string_view("/index.html\0.js", 15)) == std::nullopt);
}

TEST_CASE("static files: a symlink counts by where it ends up", "[unit]") {
  WebRoot w;
  StaticFiles files(w.root);
  CHECK(files.resolve("/leak.txt") == std::nullopt);       // points outside the root
  CHECK(files.resolve("/up/secret.txt") == std::nullopt);  // through a directory link
  CHECK(files.resolve("/alias.js") == w.real(w.root + "/js/main.js"));
}

TEST_CASE("static files: no root, a missing root or / serves nothing", "[unit]") {
  CHECK_FALSE(StaticFiles("").enabled());
  CHECK_FALSE(StaticFiles("/no/such/dir/forkwatch").enabled());
  CHECK_FALSE(StaticFiles("/").enabled());
  CHECK(StaticFiles("").resolve("/index.html") == std::nullopt);
}

TEST_CASE("static files: types say their charset, so the server sends them as they are", "[unit]") {
  CHECK(StaticFiles::content_type("/a/index.html") == "text/html; charset=utf-8");
  CHECK(StaticFiles::content_type("app.css") == "text/css; charset=utf-8");
  CHECK(StaticFiles::content_type("main.js") == "application/javascript; charset=utf-8");
  CHECK(StaticFiles::content_type("favicon.svg") == "image/svg+xml");
  CHECK(StaticFiles::content_type("blob") == "application/octet-stream");
  CHECK(StaticFiles::content_type(".js") == "application/octet-stream");
}
