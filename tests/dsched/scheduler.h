// A deterministic scheduler: N logical threads, run one at a time, switching only at
// scheduling points - every operation of an instrumented atomic (atomic.h), every fence, every
// chaos point of the library - with each choice made by a Strategy (strategies.h).
//
// Logical threads are real std::threads, kept for the scheduler's whole life (so each keeps its
// thread_local hazard record from one execution to the next), that run only while they hold a
// baton: a binary semaphore per thread. At a scheduling point the running thread asks the
// strategy who runs next; if it is another thread it releases that thread's semaphore and
// waits on its own. So an execution is a sequence of picks, the schedule, and the same
// schedule always produces the same execution: nothing else decides who runs.
//
// Fairness: a thread that takes kFairnessBound steps in a row while another is enabled must
// yield (Choice::must_switch); the strategy picks someone else. So a spinning thread (the
// emergency record's lock in hazard_domain.cc) cannot starve the thread it waits for, under any
// strategy. Lock-free retry loops need no such help: their retries fail only because another
// thread made progress.
#ifndef MIDATLAS_TESTS_DSCHED_SCHEDULER_H_
#define MIDATLAS_TESTS_DSCHED_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <semaphore>
#include <string>
#include <vector>

#include "dsched/atomic.h"

namespace midatlas::dsched {

// What a strategy sees at a scheduling point.
struct Choice {
  // The thread that reached the point and may go on, or -1 when none may: at the start of an
  // execution, or when the running thread has just finished. A pick of another thread while
  // `current` is enabled is a preemption.
  int current = -1;
  std::uint32_t enabled = 0;  // bit i: thread i has not finished
  std::uint64_t step = 0;     // picks made so far in this execution
  bool must_switch = false;   // fairness: the strategy must pick a thread other than `current`
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  // A name for reports: "random", "pct(d=3)", "dfs(bound=2)", "replay".
  [[nodiscard]] virtual std::string Name() const = 0;
  // Before execution number `index` (0, 1, 2, ... within one exploration).
  virtual void BeginExecution(std::uint64_t index) = 0;
  // An enabled thread; never `current` when must_switch is set.
  virtual int Pick(const Choice& choice) = 0;
  // After an execution: false when nothing is left to explore (exhaustive modes only).
  virtual bool Advance() { return true; }
  // How to run the last execution again, for a failure report ("MIDATLAS_DSCHED_SEED=...").
  [[nodiscard]] virtual std::string ReplayHint() const = 0;
};

struct ExecutionTrace {
  std::vector<std::uint8_t> schedule;  // the thread picked at each scheduling point
  int preemptions = 0;                 // picks of another thread while `current` was enabled
};

// "0x12 1x3 0x40": the schedule as runs of (thread x picks).
std::string FormatSchedule(const std::vector<std::uint8_t>& schedule);
// The inverse of FormatSchedule; false on malformed text.
bool ParseSchedule(const std::string& text, std::vector<std::uint8_t>* schedule);

struct LogicalThread;

class Scheduler {
 public:
  static constexpr std::uint32_t kFairnessBound = 2000;
  // An execution longer than this is a livelock: it is reported, with its schedule, and the
  // process aborts.
  static constexpr std::uint64_t kStepLimit = 2'000'000;
  static constexpr int kMaxThreads = 8;

  // `threads` logical threads. Each runs `thread_setup` once, unscheduled, one thread after the
  // other (so that what they set up - their hazard records - is laid out the same way in every
  // run of the process), before any execution.
  Scheduler(int threads, const std::function<void()>& thread_setup);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs bodies[i] on logical thread i under `strategy` until every body has returned.
  ExecutionTrace Run(const std::vector<std::function<void()>>& bodies, Strategy& strategy);

  [[nodiscard]] int threads() const noexcept { return static_cast<int>(threads_.size()); }

  // The schedule of the execution in progress (or the last one), for a report from a signal
  // handler or an invariant failure inside the library.
  [[nodiscard]] const std::vector<std::uint8_t>& schedule_so_far() const noexcept {
    return trace_.schedule;
  }

 private:
  friend void detail::SchedulingPointSlow(LogicalThread& self) noexcept;
  friend struct LogicalThread;

  void Point(LogicalThread& self) noexcept;
  void Finish(LogicalThread& self) noexcept;
  int PickAndRecord(int current, bool must_switch) noexcept;
  void WorkerLoop(LogicalThread& self);

  std::vector<std::unique_ptr<LogicalThread>> threads_;
  std::binary_semaphore done_{0};
  std::binary_semaphore ready_{0};
  // Written by main before an execution, read and written by whichever thread holds the baton
  // during it (each hand-over is a semaphore release/acquire).
  const std::vector<std::function<void()>>* bodies_ = nullptr;
  Strategy* strategy_ = nullptr;
  std::uint32_t enabled_ = 0;
  std::uint32_t consecutive_ = 0;  // picks in a row of the running thread
  int running_ = -1;
  ExecutionTrace trace_;
  bool stop_ = false;
};

}  // namespace midatlas::dsched

#endif  // MIDATLAS_TESTS_DSCHED_SCHEDULER_H_
