// Runs a Case - a few logical threads calling the real library, and the checks that must hold
// after each execution - under the deterministic scheduler, once per schedule, in each mode:
// bounded-preemption exhaustive search, PCT, uniform random. Every execution starts from the
// same state (Setup), so an execution is a function of its schedule.
//
// A failure prints the case, the mode, how many schedules ran before it, what broke, the
// schedule, and the environment that replays it:
//   MIDATLAS_DSCHED_SCHEDULE='0x12 1x3 ...'         replays that exact schedule (any mode)
//   MIDATLAS_DSCHED_MODE=random|pct2|pct3 MIDATLAS_DSCHED_SEED=S
//                                                   runs that mode from seed S: its first
//                                                   execution is the failing one
// Budget, from the environment (scripts/soak raises it):
//   MIDATLAS_DSCHED_SCALE    multiplies every mode's schedule budget (default 1)
//   MIDATLAS_DSCHED_SECONDS  wall-clock cap per mode (default 20)
//   MIDATLAS_DSCHED_SEED     base seed of the seeded modes (default: drawn and printed)
//   MIDATLAS_DSCHED_BOUND    preemption bound of the exhaustive mode (default: the case's)
//   MIDATLAS_DSCHED_MODE     only these modes, comma-separated: dfs, pct2, pct3, random
#ifndef MIDATLAS_TESTS_DSCHED_EXPLORER_H_
#define MIDATLAS_TESTS_DSCHED_EXPLORER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsched/scheduler.h"
#include "dsched/strategies.h"

namespace midatlas::dsched {

class Case {
 public:
  virtual ~Case() = default;
  [[nodiscard]] virtual const char* name() const = 0;
  [[nodiscard]] virtual int threads() const = 0;
  // Main thread, unscheduled, before each execution: a fresh structure in a fixed state.
  virtual void Setup() = 0;
  // Logical thread `thread`'s part of the execution.
  virtual void Run(int thread) = 0;
  // Main thread, after every logical thread returned: the quiescent checks; report with Fail.
  virtual void Check() = 0;
  // Main thread, after Check: frees what Setup made.
  virtual void Teardown() = 0;

  // Records a broken check (the first one of an execution is kept). Callable from logical
  // threads (only one runs at a time) and from Check.
  void Fail(const std::string& what) {
    if (failure_.empty()) failure_ = what;
  }
  [[nodiscard]] const std::string& failure() const { return failure_; }
  void ClearFailure() { failure_.clear(); }

 private:
  std::string failure_;
};

struct ModeReport {
  std::string mode;
  std::uint64_t schedules = 0;  // executions run (including the failing one)
  bool complete = false;        // exhaustive mode: every schedule within the bound was run
  bool failed = false;
  std::string failure;
  std::string schedule;         // the failing schedule, formatted
  std::string replay;           // the environment that replays it
  std::uint64_t max_steps = 0;  // the longest execution, in scheduling points
  double seconds = 0;
};

struct CaseBudget {
  int dfs_bound = 2;                    // highest preemption bound of the exhaustive mode
  std::uint64_t dfs_schedules = 20000;  // cap on each bound of the exhaustive mode
  std::uint64_t pct_schedules = 2000;   // per PCT depth (2 and 3)
  std::uint64_t random_schedules = 2000;
};

struct CaseResult {
  std::vector<ModeReport> modes;
  [[nodiscard]] bool any_failed() const;
};

// Runs every mode (or only the replay asked for in the environment) and prints one line per
// mode: "dsched: case=... mode=... schedules=... complete|capped|FAILED ...". The exhaustive
// mode runs bound 0, 1, ..., dfs_bound in turn (iterative context bounding), each to its end,
// stopping at the first bound that is capped or fails. Each mode stops at its first failure
// and runs independently of the others.
CaseResult RunCase(Case& test_case, const CaseBudget& budget);

// One exploration of `test_case` under `strategy`, at most `schedules` executions.
ModeReport Explore(Case& test_case, Scheduler& scheduler, Strategy& strategy,
                   std::uint64_t schedules, double seconds);

// Runs `schedule` once on a fresh scheduler; the case's failure (empty if none) and whether
// the execution followed the schedule to its end.
struct ReplayOutcome {
  std::string failure;
  std::vector<std::uint8_t> schedule;
  bool followed = false;
};
ReplayOutcome Replay(Case& test_case, Scheduler& scheduler, const std::vector<std::uint8_t>& schedule);

// One execution from the case's fresh state under `strategy` (whose BeginExecution the caller
// has called); the case's failure, if any, is left in it.
ExecutionTrace RunExecution(Case& test_case, Scheduler& scheduler, Strategy& strategy);

// Every logical thread's set-up: its hazard record, taken once, unscheduled.
void TakeThreadRecord();

std::uint64_t EnvNumber(const char* name, std::uint64_t fallback);

}  // namespace midatlas::dsched

#endif  // MIDATLAS_TESTS_DSCHED_EXPLORER_H_
