// Deterministic-schedule tests: the cases of cases.h, each explored by bounded-preemption
// exhaustive search, PCT (d = 2 and 3) and uniform random schedules, with the scheduler's own
// tests (the exhaustive mode enumerates what it should; a seed or a schedule replays exactly).
//
// The same file builds once per library variant (tests/dsched/CMakeLists.txt):
//   dsched_test                  the dsched build of the library: nothing may fail
//   dsched_fault_test            the dsched build with the planted faults
//                                (src/instrumentation/fault_injection.h, MIDATLAS_PLANTED_FAULTS):
//                                CTest runs it once per fault, with MIDATLAS_PLANTED_FAULT
//                                naming it, on the case that must find it; a case passes there
//                                only if some mode finds a failure
//
// Each line "dsched: case=... mode=... schedules=N complete|capped|FAILED" is one mode's
// exploration; docs/PROOF.md collects them.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "dsched/cases.h"
#include "dsched/explorer.h"
#include "dsched/scheduler.h"
#include "dsched/strategies.h"
#include "instrumentation/fault_injection.h"

namespace midatlas::dsched {
namespace {

void ExpectOutcome(const CaseResult& result) {
#if defined(MIDATLAS_PLANTED_FAULTS)
  const char* fault = internal::PlantedFaultName();
  ASSERT_NE(fault, nullptr) << "the fault build runs with MIDATLAS_PLANTED_FAULT=<NAME>";
  EXPECT_TRUE(result.any_failed()) << "no mode found the planted fault " << fault;
  for (const ModeReport& mode : result.modes) {
    std::printf("dsched: fault %s: mode %s %s\n", fault, mode.mode.c_str(),
                mode.failed ? ("found it in schedule " + std::to_string(mode.schedules)).c_str()
                            : ("did not find it in " + std::to_string(mode.schedules) +
                               " schedules")
                                  .c_str());
  }
#else
  for (const ModeReport& mode : result.modes) {
    EXPECT_FALSE(mode.failed) << mode.mode << " after " << mode.schedules
                              << " schedules: " << mode.failure;
  }
#endif
}

// --- the cases ----------------------------------------------------------------------------

TEST(Dsched, FreeStackPushPopRacesKeepEverySlotOnceUnderAba) {
  FreeStackAbaCase test_case;
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 3, .dfs_schedules = 200000,
                                    .pct_schedules = 3000, .random_schedules = 3000}));
}

TEST(Dsched, AContextWrittenAfterACountInSurvivesAPageReturn) {
  RegionReturnVsCountInCase test_case;
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 20000,
                                    .pct_schedules = 1000, .random_schedules = 1000}));
}

TEST(Dsched, HintProtocolKeepsLh1WhenAPushLandsInTheClearWindow) {
  HintWindowCase test_case;
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 3, .dfs_schedules = 200000,
                                    .pct_schedules = 2000, .random_schedules = 2000}));
}

TEST(Dsched, AllInUseIsReportedOnlyWhenEveryMidWasHeldAtSomeInstant) {
  HintWindowCase test_case(/*third_associate=*/true);
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 200000,
                                    .pct_schedules = 2000, .random_schedules = 2000}));
}

TEST(Dsched, FreezeFailsWhenAPopRacesTheDrain) {
  FreezeVsPopCase test_case;
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 20000,
                                    .pct_schedules = 2000, .random_schedules = 2000}));
}

TEST(Dsched, GrowerNeverInstallsIntoADirectoryBeingUnlinked) {
  GrowVsUnlinkCase test_case;
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 8000,
                                    .pct_schedules = 500, .random_schedules = 500}));
}

TEST(Dsched, HazardProtectionNeverReadsAReclaimedNode) {
  HazardProtectVsReclaimCase test_case;
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 20000,
                                    .pct_schedules = 3000, .random_schedules = 3000}));
}

TEST(Dsched, GuardedMapsNeverReadAContextWhoseRetirementRan) {
  GuardedMapVsRetireCase test_case;
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 20000,
                                    .pct_schedules = 2000, .random_schedules = 2000}));
}

TEST(Dsched, DissociateReassociateIterateHandEveryContextOnceInLeafZero) {
  DissociateReassociateIterateCase test_case(/*subordinate=*/false);
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 3, .dfs_schedules = 200000,
                                    .pct_schedules = 2000, .random_schedules = 2000}));
}

TEST(Dsched, DissociateReassociateIterateHandEveryContextOnceInASubordinateLeaf) {
  DissociateReassociateIterateCase test_case(/*subordinate=*/true);
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 5000,
                                    .pct_schedules = 500, .random_schedules = 500}));
}

TEST(Dsched, DiscardDissociateAndReleaseHaveOneWinnerEach) {
  DiscardVsDissociateCase test_case(/*generation_bits=*/0);
  // Bound 1 complete (154 schedules); bound 2 sampled: a claimant's waiters spin.
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 2000,
                                    .pct_schedules = 2000, .random_schedules = 2000}));
}

TEST(Dsched, DiscardDissociateAndReleaseHaveOneWinnerEachWithGenerations) {
  DiscardVsDissociateCase test_case(/*generation_bits=*/4);
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 2000,
                                    .pct_schedules = 2000, .random_schedules = 2000}));
}

TEST(Dsched, AFreeRacingAnEnqueueIsNeverALostWakeUp) {
  HandOffCase test_case(HandOffCase::Race::kLostWakeUp);
  // Bound 2 is complete (6,115 schedules); a spinning lock waiter makes deeper bounds long.
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 8000,
                                    .pct_schedules = 1000, .random_schedules = 1000}));
}

TEST(Dsched, HandOffCancelAndANewCallerHaveOneWinner) {
  HandOffCase test_case(HandOffCase::Race::kCancel);
  ExpectOutcome(RunCase(test_case, {.dfs_bound = 2, .dfs_schedules = 2000,
                                    .pct_schedules = 1000, .random_schedules = 1000}));
}

#if !defined(MIDATLAS_PLANTED_FAULTS)

// --- the scheduler itself -----------------------------------------------------------------

// Two threads of three increments each on an instrumented word, logging their order.
class ThreeStepsEachCase final : public Case {
 public:
  [[nodiscard]] const char* name() const override { return "three_steps_each"; }
  [[nodiscard]] int threads() const override { return 2; }
  void Setup() override { order_.clear(); }
  void Run(int thread) override {
    for (int i = 0; i < 3; ++i) {
      // relaxed: the scheduler, not the order, decides what the test sees.
      word_.fetch_add(1, std::memory_order_relaxed);
      order_ += static_cast<char>('0' + thread);
    }
  }
  void Check() override { orders_.insert(order_); }
  void Teardown() override {}
  std::set<std::string> orders_;

 private:
  internal::Atomic<int> word_{0};
  std::string order_;
};

TEST(DschedScheduler, ExhaustiveModeWithoutABoundVisitsEveryInterleaving) {
  ThreeStepsEachCase test_case;
  TakeThreadRecord();
  Scheduler scheduler(2, TakeThreadRecord);
  BoundedDfsStrategy unbounded(6);
  const ModeReport report = Explore(test_case, scheduler, unbounded, 100000, 1e9);
  EXPECT_TRUE(report.complete);
  EXPECT_EQ(test_case.orders_.size(), 20U) << "C(6,3) interleavings of 3 + 3 steps";
}

TEST(DschedScheduler, ExhaustiveModeWithBoundZeroRunsEachThreadToItsEnd) {
  ThreeStepsEachCase test_case;
  TakeThreadRecord();
  Scheduler scheduler(2, TakeThreadRecord);
  BoundedDfsStrategy no_preemption(0);
  const ModeReport report = Explore(test_case, scheduler, no_preemption, 100000, 1e9);
  EXPECT_TRUE(report.complete);
  EXPECT_EQ(report.schedules, 2U);
  EXPECT_EQ(test_case.orders_, (std::set<std::string>{"000111", "111000"}));
}

TEST(DschedScheduler, ExhaustiveModeWithBoundOneAddsEverySinglePreemption) {
  ThreeStepsEachCase test_case;
  TakeThreadRecord();
  Scheduler scheduler(2, TakeThreadRecord);
  BoundedDfsStrategy one(1);
  const ModeReport report = Explore(test_case, scheduler, one, 100000, 1e9);
  EXPECT_TRUE(report.complete);
  // One preemption: a prefix of one thread, all of the other, the rest of the first.
  const std::set<std::string> want = {"000111", "111000", "011100", "001110",
                                      "100011", "110001"};
  EXPECT_EQ(test_case.orders_, want);
}

// A test-and-test-and-set lock, as the emergency record's (hazard_domain.cc (hp:E1)): each
// thread takes it once and releases it.
class SpinLockCase final : public Case {
 public:
  [[nodiscard]] const char* name() const override { return "spin_lock"; }
  [[nodiscard]] int threads() const override { return 2; }
  void Setup() override { entered_.clear(); }
  void Run(int thread) override {
    // acquire/release: the lock's own edges; the scheduler runs one thread at a time anyway.
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) {
      }
    }
    entered_ += static_cast<char>('0' + thread);
    locked_.store(false, std::memory_order_release);
  }
  void Check() override {
    if (entered_.size() != 2) Fail("not both threads entered: " + entered_);
  }
  void Teardown() override {}

 private:
  internal::Atomic<bool> locked_{false};
  std::string entered_;
};

// Runs thread 0 until it holds the lock (its first two picks), then always thread 1 - the
// spinner - whenever the scheduler allows.
class StarveTheHolderStrategy final : public Strategy {
 public:
  [[nodiscard]] std::string Name() const override { return "starve_the_holder"; }
  void BeginExecution(std::uint64_t) override {}
  int Pick(const Choice& choice) override {
    const bool one = (choice.enabled & 2U) != 0;
    if (choice.step < 2 && (choice.enabled & 1U) != 0) return 0;
    if (one && !(choice.must_switch && choice.current == 1)) return 1;
    return choice.must_switch || (choice.enabled & (1U << choice.current)) == 0
               ? std::countr_zero(choice.enabled & ~(1U << choice.current))
               : choice.current;
  }
  [[nodiscard]] std::string ReplayHint() const override { return "starve_the_holder"; }
};

TEST(DschedScheduler, ASpinnerCannotStarveTheLockHolderForever) {
  SpinLockCase test_case;
  TakeThreadRecord();
  Scheduler scheduler(2, TakeThreadRecord);
  StarveTheHolderStrategy strategy;
  strategy.BeginExecution(0);
  const ExecutionTrace trace = RunExecution(test_case, scheduler, strategy);
  EXPECT_EQ(test_case.failure(), "");
  // Thread 1 spun until the fairness bound made it yield, then thread 0 released the lock.
  EXPECT_GT(trace.schedule.size(), std::size_t{Scheduler::kFairnessBound});
  EXPECT_LT(trace.schedule.size(), std::size_t{3 * Scheduler::kFairnessBound});
}

// Runs `executions` executions of `strategy` and returns their schedules.
std::vector<std::vector<std::uint8_t>> Schedules(Case& test_case, Scheduler& scheduler,
                                                 Strategy& strategy, std::uint64_t first,
                                                 std::uint64_t executions) {
  std::vector<std::vector<std::uint8_t>> schedules;
  for (std::uint64_t i = first; i < first + executions; ++i) {
    strategy.BeginExecution(i);
    schedules.push_back(RunExecution(test_case, scheduler, strategy).schedule);
  }
  return schedules;
}

TEST(DschedReplay, ASeedReproducesTheSameSchedulesEveryTime) {
  HintWindowCase test_case(/*third_associate=*/true);
  TakeThreadRecord();
  Scheduler scheduler(3, TakeThreadRecord);
  constexpr std::uint64_t kSeed = 20240601;
  RandomStrategy random_a(kSeed);
  RandomStrategy random_b(kSeed);
  const auto first = Schedules(test_case, scheduler, random_a, 0, 20);
  EXPECT_EQ(first, Schedules(test_case, scheduler, random_b, 0, 20));
  // Execution 7 of seed S is execution 0 of seed S + 7: the seed a failure prints.
  RandomStrategy random_c(kSeed + 7);
  EXPECT_EQ(first[7], Schedules(test_case, scheduler, random_c, 0, 1)[0]);
  // And different seeds do give different schedules.
  EXPECT_GT(std::set<std::vector<std::uint8_t>>(first.begin(), first.end()).size(), 10U);

  PctStrategy pct_a(kSeed, 3, 300);
  PctStrategy pct_b(kSeed + 4, 3, 300);
  const auto pct = Schedules(test_case, scheduler, pct_a, 0, 10);
  EXPECT_EQ(pct[4], Schedules(test_case, scheduler, pct_b, 0, 1)[0]);
}

TEST(DschedReplay, ARecordedScheduleReplaysExactly) {
  HintWindowCase test_case(/*third_associate=*/true);
  TakeThreadRecord();
  Scheduler scheduler(3, TakeThreadRecord);
  RandomStrategy random(99);
  for (const auto& schedule : Schedules(test_case, scheduler, random, 0, 10)) {
    std::vector<std::uint8_t> parsed;
    ASSERT_TRUE(ParseSchedule(FormatSchedule(schedule), &parsed));
    ASSERT_EQ(parsed, schedule);
    const ReplayOutcome outcome = Replay(test_case, scheduler, parsed);
    EXPECT_TRUE(outcome.followed);
    EXPECT_EQ(outcome.schedule, schedule);
  }
}

#endif  // !MIDATLAS_PLANTED_FAULTS

}  // namespace
}  // namespace midatlas::dsched
