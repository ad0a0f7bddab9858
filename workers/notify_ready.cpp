// notify-ready: tells its supervisor it is ready over the sd_notify(3)
// datagram protocol, by hand (no libsystemd): NOTIFY_SOCKET names an
// AF_UNIX datagram socket ("@name" is abstract), and each datagram holds
// newline-separated assignments such as READY=1 and STATUS=text. Then it
// keeps running (sending WATCHDOG=1 if asked) until SIGTERM, or exits.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>
#include <algorithm>

#include "common.h"

using namespace forkwatch::workers;

namespace {

constexpr const char* kUsage =
    "usage: notify-ready [--delay-ms T] [--after-file PATH] [--status TEXT] [--watchdog-ms T] [--send TEXT]...\n"
    "                    [--flood N] [--exit CODE]\n"
    "\n"
    "Sends READY=1 on $NOTIFY_SOCKET, then runs until SIGTERM.\n"
    "  --delay-ms T     wait T ms before READY=1 (default 0)\n"
    "  --after-file P   wait until file P exists before READY=1 (a test's trigger)\n"
    "  --status TEXT    send STATUS=TEXT first\n"
    "  --no-ready       never send READY=1 (a start that times out)\n"
    "  --watchdog-ms T  then send WATCHDOG=1 every T ms\n"
    "  --send TEXT      one more datagram, as given (after READY=1)\n"
    "  --flood N        then send N datagrams per second (STATUS=flood) until stopped\n"
    "  --exit CODE      exit with CODE right after READY=1 instead of running on\n";

int notify_fd = -1;
sockaddr_un notify_addr{};
socklen_t notify_len = 0;

void open_notify() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) usage_error("NOTIFY_SOCKET is not set");
  const size_t n = std::strlen(path);
  if (n >= sizeof notify_addr.sun_path) usage_error("NOTIFY_SOCKET is too long");
  notify_addr.sun_family = AF_UNIX;
  std::memcpy(notify_addr.sun_path, path, n);
  if (path[0] == '@') notify_addr.sun_path[0] = '\0';  // abstract namespace
  notify_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (notify_fd < 0) fatal("socket");
}

bool send_notify(const std::string& text) {
  return sendto(notify_fd, text.data(), text.size(), MSG_NOSIGNAL,
                reinterpret_cast<sockaddr*>(&notify_addr), notify_len) >= 0;
}

void sleep_ms(long long ms) {
  timespec ts = from_ms(ms);
  while (nanosleep(&ts, &ts) != 0 && !stop_requested) {
  }
}

}  // namespace

int main(int argc, char** argv) {
  program_name = "notify-ready";
  long long delay_ms = 0, watchdog_ms = 0, flood = 0;
  int exit_code = -1;
  bool ready = true;
  std::string status, after_file;
  std::vector<std::string> extra;
  for (ArgReader args(argc, argv, kUsage, /*inline_values=*/true); args.next();) {
    if (args.is("--delay-ms")) delay_ms = args.number(0, 86'400'000);
    else if (args.is("--after-file")) after_file = args.value();
    else if (args.is("--status")) status = args.value();
    else if (args.is_switch("--no-ready")) ready = false;
    else if (args.is("--watchdog-ms")) watchdog_ms = args.number(1, 86'400'000);
    else if (args.is("--send")) extra.emplace_back(args.value());
    else if (args.is("--flood")) flood = args.number(1, 10'000'000);
    else if (args.is("--exit")) exit_code = static_cast<int>(args.number(0, 255));
    else args.unknown();
  }
  catch_stop_signals();
  open_notify();
  if (!status.empty()) send_notify("STATUS=" + status);
  if (delay_ms > 0) sleep_ms(delay_ms);
  while (!after_file.empty() && access(after_file.c_str(), F_OK) != 0 && !stop_requested) sleep_ms(10);
  if (ready && !send_notify("READY=1")) fatal("sendto NOTIFY_SOCKET");
  for (const auto& e : extra) send_notify(e);
  if (exit_code >= 0) return exit_code;
  while (!stop_requested) {
    if (flood > 0) {
      // A burst per millisecond: about `flood` a second, however fast the reader.
      for (long long i = 0; i < std::max(1LL, flood / 1000) && !stop_requested; ++i) send_notify("STATUS=flood");
      sleep_ms(1);
    } else if (watchdog_ms > 0) {
      send_notify("WATCHDOG=1");
      sleep_ms(watchdog_ms);
    } else {
      pause();
    }
  }
  return 0;
}
