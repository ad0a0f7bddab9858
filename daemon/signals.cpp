#include "signals.h"
#include <signal.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include "parse_number.h"

namespace forkwatch {
namespace {

constexpr std::array<std::pair<const char*, int>, 31> kNames{{
    {"SIGHUP", SIGHUP},     {"SIGINT", SIGINT},       {"SIGQUIT", SIGQUIT}, {"SIGILL", SIGILL},
    {"SIGTRAP", SIGTRAP},   {"SIGABRT", SIGABRT},     {"SIGBUS", SIGBUS},   {"SIGFPE", SIGFPE},
    {"SIGKILL", SIGKILL},   {"SIGUSR1", SIGUSR1},     {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
    {"SIGPIPE", SIGPIPE},   {"SIGALRM", SIGALRM},     {"SIGTERM", SIGTERM}, {"SIGSTKFLT", SIGSTKFLT},
    {"SIGCHLD", SIGCHLD},   {"SIGCONT", SIGCONT},     {"SIGSTOP", SIGSTOP}, {"SIGTSTP", SIGTSTP},
    {"SIGTTIN", SIGTTIN},   {"SIGTTOU", SIGTTOU},     {"SIGURG", SIGURG},   {"SIGXCPU", SIGXCPU},
    {"SIGXFSZ", SIGXFSZ},   {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
    {"SIGIO", SIGIO},       {"SIGPWR", SIGPWR},       {"SIGSYS", SIGSYS},
}};

std::optional<int> parse_number(std::string_view text) { return parse_decimal<int>(text); }

}  // namespace

std::string signal_name(int sig) {
  for (const auto& [name, num] : kNames)
    if (num == sig) return name;
  if (sig >= SIGRTMIN && sig <= SIGRTMAX)
    return sig == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+" + std::to_string(sig - SIGRTMIN);
  return "SIG" + std::to_string(sig);
}

std::optional<int> parse_signal(std::string_view text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  std::optional<int> sig;
  if (std::isdigit(static_cast<unsigned char>(text[0]))) {
    sig = parse_number(text);
  } else {
    std::string up(text);
    std::transform(up.begin(), up.end(), up.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (!up.starts_with("SIG")) up = "SIG" + up;
    for (const auto& [name, num] : kNames)
      if (up == name) sig = num;
    if (!sig && up == "SIGRTMIN") sig = SIGRTMIN;
    if (!sig && up.starts_with("SIGRTMIN+"))
      if (auto off = parse_number(std::string_view(up).substr(9))) sig = SIGRTMIN + *off;
  }
  if (!sig || *sig < 1 || *sig > SIGRTMAX) return std::nullopt;
  return sig;
}

}  // namespace forkwatch
