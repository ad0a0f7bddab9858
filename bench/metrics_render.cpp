// bench-metrics-render: the CPU cost of rendering /metrics for N workers,
// without HTTP: a snapshot of N running workers (each with an output ring
// and a process in a /proc sample), rendered as Prometheus text and as
// OpenMetrics, median of --reps. Separates the renderer from the machine's
// load and the socket.
//   bench-metrics-render [--workers N] [--reps R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "metrics.h"
#include "worker_metrics.h"

namespace fw = forkwatch;

int main(int argc, char** argv) {
  int workers = 1000, reps = 51;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--workers")) workers = std::atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  fw::Snapshot s;
  std::vector<fw::ProcessInfo> procs;
  fw::WorkerTally tally;
  for (int i = 1; i <= workers; ++i) {
    fw::WorkerView w;
    w.id = i;
    w.name = "web:" + std::to_string(i);
    w.program = "web";
    w.state = "running";
    w.pid = 10'000 + i;
    w.started_at_ns = 1'796'000'000'000'000'000LL + i;
    w.output = std::make_shared<fw::OutputLog>("");
    s.workers.push_back(std::move(w));
    fw::ProcessInfo p;
    p.pid = 10'000 + i;
    p.ppid = 1;
    p.utime = 100 + static_cast<uint64_t>(i);
    p.stime = 50;
    p.rss_bytes = 4 << 20;
    p.num_threads = 4;
    procs.push_back(std::move(p));
    fw::Event e;
    e.kind = fw::EventKind::kExit;
    e.wait = fw::WaitRecord{};
    e.wait->worker_id = i;
    e.wait->status = fw::decode_wait_status(9);
    tally.publish(e);
  }
  auto t = std::make_shared<fw::TreeSample>();
  t->tree = std::make_shared<const fw::ProcessTree>(std::move(procs));
  t->taken_real_ns = INT64_MAX;
  s.tree = t;
  fw::SupervisorCounters counters;
  fw::MetricsInputs in{&s, &counters, nullptr, 0, nullptr, nullptr, &tally};
  for (bool om : {false, true}) {
    std::vector<double> ms;
    size_t bytes = 0;
    for (int r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      std::string text = fw::render_metrics(in);
      if (om) text = fw::to_openmetrics(text);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      bytes = text.size();
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%s, %d workers: %zu bytes, median %.2f ms, min %.2f ms\n", om ? "OpenMetrics" : "text 0.0.4", workers,
                bytes, ms[ms.size() / 2], ms[0]);
  }
}
