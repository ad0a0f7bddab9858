// Supervisor: the commands the API posts to the loop.
#include "supervisor_worker.h"

#include "sampler.h"
#include "signals.h"

namespace forkwatch {

void Supervisor::on_commands() {
  std::vector<std::pair<std::promise<CommandReply>, CommandReply>> answered;
  for (auto& p : commands_.take()) {
    // A command whose caller already answered "timed out" (or whose deadline
    // passed while the loop was busy) is dropped: carrying it out now would
    // make that answer a lie. Its promise breaks, unanswered.
    if (!p.claim->take(monotonic_ns())) {
      log::warning("dropped an API command that waited past its deadline");
      continue;
    }
    if (auto* s = std::get_if<SampleNow>(&p.command)) {
      if (sampler_) {
        sampler_->request(s->all);
        sample_waiters_.emplace_back(*s, std::move(p.reply));
        continue;
      }
      p.reply.set_value(CommandReply{ReplyCode::kFailed, "no sampler", {}});
      continue;
    }
    answered.emplace_back(std::move(p.reply), handle(p.command));
  }
  // The callers read the snapshot next: publish before answering, once for
  // the whole batch. A snapshot per command copied every worker's view per
  // spawn: 1,000 starts over 8 clients cost O(n²) (bench/RESULTS.md, issue 17).
  publish_if_dirty();
  for (auto& [promise, reply] : answered) promise.set_value(std::move(reply));
}

CommandReply Supervisor::handle(Command& c) {
  auto not_found = [](int64_t id) {
    return CommandReply{ReplyCode::kNotFound, "no worker with id " + std::to_string(id), {}};
  };
  if (auto* s = std::get_if<StartWorker>(&c)) {
    if (shutting_down_) return {ReplyCode::kConflict, "the daemon is shutting down", {}};
    if (workers_.size() >= options_.max_workers)
      return {ReplyCode::kLimit, "already " + std::to_string(workers_.size()) + " workers (the limit)", {}};
    std::string name = s->spec.name.empty() ? (s->program.empty() ? s->spec.command[0] : s->program) : s->spec.name;
    // The stored spec carries the name, or a restart refuses to restore it.
    ProgramSpec spec = s->spec;
    if (spec.name.empty()) spec.name = name;
    Worker& w = create_worker(std::move(spec), s->program, name, s->persistent, "");
    input(w, WorkerInput::kStart);
    if (w.start_failed) {
      // It never ran: the caller hears why, and nothing is left behind (no
      // worker, no stored row). A process killed for want of an output watch
      // is still reaped and recorded, then the worker goes.
      CommandReply failed{ReplyCode::kFailed, "could not start " + name + ": " + w.fatal_reason, {}};
      if (w.pid > 0) {
        w.remove_after_stop = true;
        input(w, WorkerInput::kStop);
      } else {
        remove_worker(w.id);
      }
      return failed;
    }
    persist(w);
    return {ReplyCode::kOk, "", view(w)};
  }
  int64_t id = std::visit([](auto& x) -> int64_t {
    if constexpr (requires { x.id; }) return x.id; else return 0;
  }, c);
  Worker* w = find(id);
  if (!w) return not_found(id);
  if (std::holds_alternative<StopWorker>(c)) {
    w->restart_after_stop = false;
    stop_after_part_of(*w);
    if (w->pid <= 0) {
      w->stop.stop_cause = ExitCause::kStopRequested;
      stop_leftovers(*w);  // its main process is gone, what it left is not
    }
    persist(*w);
  } else if (std::holds_alternative<RestartWorker>(c)) {
    if (shutting_down_) return {ReplyCode::kConflict, "the daemon is shutting down", {}};
    if (w->state == WorkerState::kRunning || w->state == WorkerState::kStarting ||
        w->state == WorkerState::kStopping) {
      w->restart_after_stop = true;
      w->start_limit.reset();
      stop_after_part_of(*w);
    } else {
      if (w->state == WorkerState::kBackoff) input(*w, WorkerInput::kStop);
      ++w->restarts;
      ++counters_.restarts;
      w->consecutive_failures = 0;
      w->start_limit.reset();  // asked for by a person: like systemctl reset-failed
      input(*w, WorkerInput::kStart);
    }
    persist(*w);
  } else if (std::holds_alternative<RemoveWorker>(c)) {
    WorkerView v = view(*w);
    persist(*w, /*removed=*/true);
    if (w->state == WorkerState::kRunning || w->state == WorkerState::kStarting ||
        w->state == WorkerState::kStopping) {
      w->remove_after_stop = true;
      stop_after_part_of(*w);
    } else {
      if (w->state == WorkerState::kBackoff) input(*w, WorkerInput::kStop);
      remove_worker(id);
    }
    return {ReplyCode::kOk, "", v};
  } else if (auto* p = std::get_if<PauseWorker>(&c)) {
    const bool has_tree = w->pid > 0 || !host_->members(id).empty();
    if (!has_tree)
      return {ReplyCode::kConflict, "worker " + std::to_string(id) + " has no process to " +
                                        (p->pause ? "pause" : "resume") + " (state " +
                                        std::string(worker_state_name(w->state)) + ")", view(*w)};
    if (w->state == WorkerState::kStopping && p->pause)
      return {ReplyCode::kConflict, "worker " + std::to_string(id) + " is stopping", view(*w)};
    if (w->paused != p->pause) {
      if (auto st = host_->freeze(id, p->pause); !st)
        return {ReplyCode::kConflict, st.error().message(), view(*w)};
      w->paused = p->pause;
      Event e;
      e.kind = p->pause ? EventKind::kPause : EventKind::kResume;
      e.worker_id = id;
      e.pid = w->pid > 0 ? w->pid : 0;
      e.detail = p->pause ? "tree frozen (cgroup.freeze)" : "tree thawed";
      emit(std::move(e));
      dirty_ = true;
    }
  } else if (auto* sig = std::get_if<SignalWorker>(&c)) {
    if (w->pid <= 0)
      return {ReplyCode::kConflict, "worker " + std::to_string(id) + " has no running process (state " +
                                        std::string(worker_state_name(w->state)) + ")", view(*w)};
    if (int err = host_->signal_group(w->pid, sig->signal); err != 0)
      return {ReplyCode::kFailed, "kill(-" + std::to_string(w->pid) + ", " + signal_name(sig->signal) +
                                      "): " + strerror(err), view(*w)};
  }
  return {ReplyCode::kOk, "", view(*w)};
}

}  // namespace forkwatch
