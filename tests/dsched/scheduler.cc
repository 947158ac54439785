#include "dsched/scheduler.h"

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

namespace midatlas::dsched {

struct LogicalThread {
  int id = 0;
  Scheduler* owner = nullptr;
  std::binary_semaphore go{0};  // the baton: acquired to run, released by whoever picks us
  std::thread os_thread;
};

namespace detail {

constinit thread_local LogicalThread* current_thread = nullptr;

void SchedulingPointSlow(LogicalThread& self) noexcept { self.owner->Point(self); }

}  // namespace detail

std::string FormatSchedule(const std::vector<std::uint8_t>& schedule) {
  std::string out;
  std::size_t i = 0;
  while (i < schedule.size()) {
    std::size_t j = i;
    while (j < schedule.size() && schedule[j] == schedule[i]) ++j;
    if (!out.empty()) out += ' ';
    out += std::to_string(schedule[i]) + "x" + std::to_string(j - i);
    i = j;
  }
  return out;
}

bool ParseSchedule(const std::string& text, std::vector<std::uint8_t>* schedule) {
  schedule->clear();
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == ' ') {
      ++pos;
      continue;
    }
    char* end = nullptr;
    const unsigned long thread = std::strtoul(text.c_str() + pos, &end, 10);
    if (end == text.c_str() + pos || *end != 'x' || thread >= Scheduler::kMaxThreads) return false;
    const char* count_start = end + 1;
    const unsigned long count = std::strtoul(count_start, &end, 10);
    if (end == count_start || count == 0) return false;
    schedule->insert(schedule->end(), count, static_cast<std::uint8_t>(thread));
    pos = static_cast<std::size_t>(end - text.c_str());
  }
  return !schedule->empty();
}

Scheduler::Scheduler(int threads, const std::function<void()>& thread_setup) {
  if (threads < 1 || threads > kMaxThreads) std::abort();
  for (int i = 0; i < threads; ++i) {
    auto thread = std::make_unique<LogicalThread>();
    thread->id = i;
    thread->owner = this;
    LogicalThread& self = *thread;
    threads_.push_back(std::move(thread));
    self.os_thread = std::thread([this, &self, &thread_setup] {
      if (thread_setup) thread_setup();
      ready_.release();
      WorkerLoop(self);
    });
    ready_.acquire();  // one after the other: the same set-up order in every run
  }
}

Scheduler::~Scheduler() {
  stop_ = true;
  for (auto& thread : threads_) thread->go.release();
  for (auto& thread : threads_) thread->os_thread.join();
}

void Scheduler::WorkerLoop(LogicalThread& self) {
  while (true) {
    self.go.acquire();  // picked for the first time in an execution (or told to stop)
    if (stop_) return;
    detail::current_thread = &self;
    (*bodies_)[static_cast<std::size_t>(self.id)]();
    detail::current_thread = nullptr;  // what the thread does from here on is not scheduled
    Finish(self);
  }
}

int Scheduler::PickAndRecord(int current, bool must_switch) noexcept {
  const Choice choice{current, enabled_, trace_.schedule.size(), must_switch};
  const int next = strategy_->Pick(choice);
  if (next < 0 || next >= threads() || (enabled_ & (1U << next)) == 0 ||
      (must_switch && next == current)) {
    std::fprintf(stderr,
                 "dsched: strategy %s picked thread %d, which may not run (enabled mask %#x, "
                 "current %d) at step %zu; schedule so far: %s\n",
                 strategy_->Name().c_str(), next, enabled_, current, trace_.schedule.size(),
                 FormatSchedule(trace_.schedule).c_str());
    std::abort();
  }
  if (current >= 0 && next != current) ++trace_.preemptions;
  consecutive_ = next == running_ ? consecutive_ + 1 : 1;
  running_ = next;
  trace_.schedule.push_back(static_cast<std::uint8_t>(next));
  if (trace_.schedule.size() > kStepLimit) {
    std::fprintf(stderr, "dsched: %llu steps in one execution (livelock?) under %s; %s\n",
                 static_cast<unsigned long long>(kStepLimit), strategy_->Name().c_str(),
                 strategy_->ReplayHint().c_str());
    std::abort();
  }
  return next;
}

void Scheduler::Point(LogicalThread& self) noexcept {
  const bool others = (enabled_ & ~(1U << self.id)) != 0;
  const int next = PickAndRecord(self.id, others && consecutive_ >= kFairnessBound);
  if (next == self.id) return;
  threads_[static_cast<std::size_t>(next)]->go.release();
  self.go.acquire();
}

void Scheduler::Finish(LogicalThread& self) noexcept {
  enabled_ &= ~(1U << self.id);
  if (enabled_ == 0) {
    done_.release();
    return;
  }
  const int next = PickAndRecord(-1, false);
  threads_[static_cast<std::size_t>(next)]->go.release();
}

ExecutionTrace Scheduler::Run(const std::vector<std::function<void()>>& bodies,
                              Strategy& strategy) {
  if (bodies.size() != threads_.size()) std::abort();
  bodies_ = &bodies;
  strategy_ = &strategy;
  enabled_ = threads() == 32 ? ~0U : (1U << threads()) - 1;
  consecutive_ = 0;
  running_ = -1;
  trace_ = ExecutionTrace{};
  const int first = PickAndRecord(-1, false);
  threads_[static_cast<std::size_t>(first)]->go.release();
  done_.acquire();
  return trace_;
}

}  // namespace midatlas::dsched
