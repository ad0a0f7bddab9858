#include <signal.h>

#include <catch2/catch.hpp>

#include "signals.h"

using forkwatch::parse_signal;
using forkwatch::signal_name;

TEST_CASE("signal names and numbers parse both ways", "[unit]") {
  CHECK(parse_signal("SIGTERM") == SIGTERM);
  CHECK(parse_signal("term") == SIGTERM);
  CHECK(parse_signal("19") == SIGSTOP);
  CHECK(parse_signal("SIGRTMIN+2") == SIGRTMIN + 2);
  CHECK(signal_name(SIGSEGV) == "SIGSEGV");
  CHECK(signal_name(SIGRTMIN + 1) == "SIGRTMIN+1");
}

TEST_CASE("signals that do not exist are refused", "[unit]") {
  CHECK_FALSE(parse_signal(""));
  CHECK_FALSE(parse_signal("SIGNOPE"));
  CHECK_FALSE(parse_signal("0"));
  CHECK_FALSE(parse_signal("-9"));
  CHECK_FALSE(parse_signal("65"));
  CHECK_FALSE(parse_signal("9x"));
  CHECK_FALSE(parse_signal("99999999999999999999"));
}
