#include "dsched/explorer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>

#include "reclamation/hazard_domain.h"

namespace midatlas::dsched {
namespace {

// What is running, for the report of a process that aborts mid-execution (a broken debug
// invariant inside the library, src/instrumentation/invariants.h).
struct Active {
  const Case* test_case = nullptr;
  const Scheduler* scheduler = nullptr;
  const Strategy* strategy = nullptr;
  std::uint64_t execution = 0;
};
Active active;

void OnAbort(int signal_number) {
  if (active.test_case != nullptr && active.scheduler != nullptr && active.strategy != nullptr) {
    // Not async-signal-safe, but the process is going down anyway, and this names the
    // schedule that brought it down.
    std::fprintf(stderr,
                 "dsched: ABORTED case=%s mode=%s in schedule %llu; schedule so far: %s\n"
                 "dsched:   replay: %s (MIDATLAS_DSCHED_SCHEDULE='<the schedule above>' too)\n",
                 active.test_case->name(), active.strategy->Name().c_str(),
                 static_cast<unsigned long long>(active.execution + 1),
                 FormatSchedule(active.scheduler->schedule_so_far()).c_str(),
                 active.strategy->ReplayHint().c_str());
    std::fflush(stderr);
  }
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

std::string TestFilter() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return "";
  return std::string(" --gtest_filter=") + info->test_suite_name() + "." + info->name();
}

void PrintReport(const Case& test_case, const ModeReport& report) {
  const char* outcome = report.failed ? "FAILED" : report.complete ? "complete" : "capped";
  std::printf("dsched: case=%s mode=%s schedules=%llu %s max_steps=%llu seconds=%.2f\n",
              test_case.name(), report.mode.c_str(),
              static_cast<unsigned long long>(report.schedules), outcome,
              static_cast<unsigned long long>(report.max_steps), report.seconds);
  if (report.failed) {
    std::printf("dsched: FAIL case=%s mode=%s in schedule %llu: %s\n"
                "dsched:   schedule (thread x steps): %s\n"
                "dsched:   replay: %s %s%s\n",
                test_case.name(), report.mode.c_str(),
                static_cast<unsigned long long>(report.schedules), report.failure.c_str(),
                report.schedule.c_str(), report.replay.c_str(),
                ::testing::internal::GetArgvs().empty()
                    ? "dsched_test"
                    : ::testing::internal::GetArgvs()[0].c_str(),
                TestFilter().c_str());
  }
  std::fflush(stdout);
}

std::vector<std::function<void()>> BodiesOf(Case& test_case) {
  std::vector<std::function<void()>> bodies;
  for (int i = 0; i < test_case.threads(); ++i) bodies.emplace_back([&test_case, i] { test_case.Run(i); });
  return bodies;
}

// One execution from a fresh state; the case's failure is left in it.
ExecutionTrace RunOnce(Case& test_case, Scheduler& scheduler, Strategy& strategy,
                       const std::vector<std::function<void()>>& bodies) {
  test_case.ClearFailure();
  test_case.Setup();
  ExecutionTrace trace = scheduler.Run(bodies, strategy);
  test_case.Check();
  test_case.Teardown();
  // Every execution starts with an empty retired list, so that its scans are the same.
  internal::HazardDomain::Default().Reclaim();
  return trace;
}

}  // namespace

bool CaseResult::any_failed() const {
  return std::any_of(modes.begin(), modes.end(), [](const ModeReport& m) { return m.failed; });
}

std::uint64_t EnvNumber(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): tests, one thread
  if (text == nullptr || *text == '\0') return fallback;
  return std::strtoull(text, nullptr, 10);
}

void TakeThreadRecord() { static_cast<void>(internal::TryThisThreadRecord()); }

ExecutionTrace RunExecution(Case& test_case, Scheduler& scheduler, Strategy& strategy) {
  return RunOnce(test_case, scheduler, strategy, BodiesOf(test_case));
}

ModeReport Explore(Case& test_case, Scheduler& scheduler, Strategy& strategy,
                   std::uint64_t schedules, double seconds) {
  ModeReport report;
  report.mode = strategy.Name();
  const auto bodies = BodiesOf(test_case);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (std::uint64_t i = 0; i < schedules && elapsed() < seconds; ++i) {
    active = Active{&test_case, &scheduler, &strategy, i};
    strategy.BeginExecution(i);
    const ExecutionTrace trace = RunOnce(test_case, scheduler, strategy, bodies);
    ++report.schedules;
    report.max_steps = std::max<std::uint64_t>(report.max_steps, trace.schedule.size());
    if (!test_case.failure().empty()) {
      report.failed = true;
      report.failure = test_case.failure();
      report.schedule = FormatSchedule(trace.schedule);
      report.replay = strategy.ReplayHint();
      break;
    }
    if (!strategy.Advance()) {
      report.complete = true;
      break;
    }
  }
  active = Active{};
  report.seconds = elapsed();
  return report;
}

ReplayOutcome Replay(Case& test_case, Scheduler& scheduler,
                     const std::vector<std::uint8_t>& schedule) {
  ReplayStrategy strategy(schedule);
  const auto bodies = BodiesOf(test_case);
  active = Active{&test_case, &scheduler, &strategy, 0};
  const ExecutionTrace trace = RunOnce(test_case, scheduler, strategy, bodies);
  active = Active{};
  return ReplayOutcome{test_case.failure(), trace.schedule,
                       !strategy.diverged() && trace.schedule == schedule};
}

CaseResult RunCase(Case& test_case, const CaseBudget& budget) {
  static const bool kHandlerInstalled = [] {
    std::signal(SIGABRT, OnAbort);
    return true;
  }();
  static_cast<void>(kHandlerInstalled);
  TakeThreadRecord();  // the main thread's record first, then the logical threads' in order
  Scheduler scheduler(test_case.threads(), TakeThreadRecord);
  CaseResult result;

  // MIDATLAS_DSCHED_SCHEDULE: replay one schedule and nothing else.
  if (const char* text = std::getenv("MIDATLAS_DSCHED_SCHEDULE"); text != nullptr && *text != '\0') {  // NOLINT(concurrency-mt-unsafe)
    std::vector<std::uint8_t> schedule;
    if (!ParseSchedule(text, &schedule)) {
      ADD_FAILURE() << "MIDATLAS_DSCHED_SCHEDULE is not a schedule: " << text;
      return result;
    }
    const ReplayOutcome outcome = Replay(test_case, scheduler, schedule);
    ModeReport report;
    report.mode = "replay";
    report.schedules = 1;
    report.max_steps = outcome.schedule.size();
    report.failed = !outcome.failure.empty();
    report.failure = outcome.failure;
    report.schedule = FormatSchedule(outcome.schedule);
    report.replay = std::string("MIDATLAS_DSCHED_SCHEDULE='") + text + "'";
    PrintReport(test_case, report);
    if (!outcome.followed) {
      std::printf("dsched: the execution did not follow the schedule (build or case changed)\n");
    }
    result.modes.push_back(report);
    return result;
  }

  const std::uint64_t scale = EnvNumber("MIDATLAS_DSCHED_SCALE", 1);
  const auto seconds = static_cast<double>(EnvNumber("MIDATLAS_DSCHED_SECONDS", 20));
  std::random_device random;
  const std::uint64_t seed =
      EnvNumber("MIDATLAS_DSCHED_SEED", (std::uint64_t{random()} << 32) ^ random());
  const char* mode_env = std::getenv("MIDATLAS_DSCHED_MODE");  // NOLINT(concurrency-mt-unsafe)
  const std::string only = mode_env == nullptr ? "" : mode_env;
  const int bound = static_cast<int>(EnvNumber("MIDATLAS_DSCHED_BOUND",
                                               static_cast<std::uint64_t>(budget.dfs_bound)));

  // PCT needs k, the length of an execution: one run without preemption measures it.
  SequentialStrategy sequential;
  const std::uint64_t steps = Explore(test_case, scheduler, sequential, 1, 1e9).max_steps;
  std::printf("dsched: case=%s threads=%d seed=%llu sequential_steps=%llu\n", test_case.name(),
              test_case.threads(), static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(steps));

  auto run = [&](const std::string& name, Strategy& strategy, std::uint64_t schedules) {
    if (!only.empty() && ("," + only + ",").find("," + name + ",") == std::string::npos) return;
    ModeReport report = Explore(test_case, scheduler, strategy, schedules * scale, seconds);
    PrintReport(test_case, report);
    if (report.failed) {
      // A failure must replay: the same schedule, the same failure.
      std::vector<std::uint8_t> schedule;
      ParseSchedule(report.schedule, &schedule);
      const ReplayOutcome again = Replay(test_case, scheduler, schedule);
      const bool same = again.followed && again.failure == report.failure;
      std::printf("dsched:   replayed the schedule: %s\n",
                  same ? "same schedule, same failure" : "DIFFERENT");
      EXPECT_TRUE(same) << "a failing schedule did not reproduce: " << again.failure;
    }
    result.modes.push_back(std::move(report));
  };
  // Iterative context bounding: bound 0, 1, ... each to its end, until one is capped or fails,
  // so the report says up to which bound every schedule was run.
  for (int b = 0; b <= bound; ++b) {
    BoundedDfsStrategy dfs(b);
    run("dfs", dfs, budget.dfs_schedules);
    if (result.modes.empty() || !result.modes.back().complete) break;
  }
  PctStrategy pct2(seed, 2, steps);
  run("pct2", pct2, budget.pct_schedules);
  PctStrategy pct3(seed, 3, steps);
  run("pct3", pct3, budget.pct_schedules);
  RandomStrategy uniform(seed);
  run("random", uniform, budget.random_schedules);
  return result;
}

}  // namespace midatlas::dsched
