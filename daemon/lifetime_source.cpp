#include "lifetime_source.h"

#include <sched.h>

#include <algorithm>
#include <cstring>
#include <time.h>
#include <unistd.h>

#include "live_tree.h"
#include "log.h"

namespace forkwatch {
LifetimeSource::LifetimeSource(EventLoop& loop, LifetimeTracker& tracker, ProcessEventStats& stats,
                               LifetimeSourceOptions options)
    : loop_(loop), tracker_(tracker), stats_(stats), options_(std::move(options)) {}

LifetimeSource::~LifetimeSource() {
  if (connector_) loop_.remove(connector_->fd());
  if (tick_) loop_.cancel_timer(tick_);
}

bool LifetimeSource::start() {
  auto c = ProcConnector::open(options_.rcvbuf_bytes);
  if (!c) {
    stats_.mode = "sampling";
    stats_.reason = c.error().message();
    log::warning("process events: " + stats_.reason + "; the tree stays sampled and no lifetimes are kept");
    return false;
  }
  connector_.emplace(std::move(*c));
  if (auto st = loop_.add(connector_->fd(), [this](uint32_t) { on_readable(); }); !st) {
    stats_.mode = "sampling";
    stats_.reason = st.error().message();
    connector_.reset();
    return false;
  }
  stats_.mode = "proc_connector";
  stats_.rcvbuf = connector_->rcvbuf();
  // The reader that re-reads /proc after a loss keeps no PID/stat open
  // between its rare scans (a budget of 0): kept, they were one fd per
  // process alive at the last gap, held until the next one (CI's crash-loop
  // test saw the daemon's fds step up after a gap and stay).
  reader_ = std::make_unique<ProcReader>(options_.proc_root, 0);
  return true;
}

std::string LifetimeSource::raise_loop_priority() {
  // SCHED_RESET_ON_FORK: the workers and threads this thread creates start
  // as SCHED_OTHER, nice 0, as if the daemon had no priority at all.
  sched_param p{};
  p.sched_priority = 1;
  if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &p) != 0)
    return std::string("sched_setscheduler(SCHED_FIFO): ") + strerror(errno);
  return "";
}

void LifetimeSource::on_readable() {
  batch_.clear();
  uint64_t lost = 0;
  ProcConnector::Drain d = connector_->drain([&](const ProcEvent& e) {
    lost += seq_.observe(e);
    if (e.op != ProcOp::kAck) batch_.push_back(e);
  });
  stats_.malformed += d.malformed;
  tracker_.apply(batch_, realtime_ns() - monotonic_ns());
  if (d.overrun) {
    ++stats_.overruns;
    stats_.rcvbuf = connector_->enlarge(options_.max_rcvbuf_bytes);
    // ENOBUFS says the kernel dropped at least one message. When nothing
    // read after it shows the jump in its CPU's sequence (the drops were the
    // last of the burst, or on a CPU that sent nothing since), the sequence
    // count says 0: the loss is still one at least, never none.
    lost = std::max<uint64_t>(lost, 1);
  }
  if (d.overrun || lost > 0) {
    stats_.lost += lost;
    tracker_.record_gap({realtime_ns(), lost, d.overrun ? "overrun" : "sequence"});
    resync();
    log::warning("process events: " + std::to_string(lost) + " lost (" + (d.overrun ? "receive buffer overrun" : "sequence gap") +
                 "); /proc re-read, receive buffer now " + std::to_string(stats_.rcvbuf.load()) + " bytes");
  }
  arm_tick();
}

void LifetimeSource::resync() {
  ScanOptions opts;
  opts.threads = false;
  auto sample = reader_->scan(opts);
  if (!sample) {
    log::warning("process events: re-reading /proc failed: " + sample.error().message());
    return;
  }
  const int64_t boot_to_mono = monotonic_ns() - boottime_ns();
  tracker_.resync(sample->processes, realtime_ns(), boot_to_mono, sysconf(_SC_CLK_TCK));
}

void LifetimeSource::arm_tick() {
  if (tick_) return;
  tick_ = loop_.add_timer(monotonic_ns() + LifetimeTracker::kWindowNs, [this] {
    tick_ = 0;
    tracker_.tick(monotonic_ns(), realtime_ns() - monotonic_ns());
    // Asleep while nothing is left to write or to send: an idle daemon stays idle.
    if (tracker_.busy()) arm_tick();
  });
}

}  // namespace forkwatch
