// Signal names and numbers both ways ("SIGTERM", "TERM", "15" -> 15).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace forkwatch {

// The canonical name ("SIGTERM"), or "SIG<n>" for a number without a name
// (real-time signals are "SIGRTMIN+n").
std::string signal_name(int sig);

// Accepts "SIGTERM", "TERM", "sigterm", "15", "SIGRTMIN+2". nullopt when the
// text names no signal that kill(2) can send (1..SIGRTMAX).
std::optional<int> parse_signal(std::string_view text);

}  // namespace forkwatch
