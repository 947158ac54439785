// The out-of-memory sweep, in the manner of SQLite's: a workload runs again and again, with
// allocation 1, then 2, then 3, ... failing (failing_allocation.h), until a run completes
// without reaching the failing allocation. Every run must give only documented answers, leak
// nothing and leave the structure fully usable once memory is back.
//
// While the injection is armed no GoogleTest assertion may run (it allocates, and would be
// failed itself), so a workload records what it saw go wrong in a Violations and the run
// asserts on it once the injection is disarmed.
#ifndef MIDATLAS_TESTS_ALLOCATION_FAILURE_SWEEP_H_
#define MIDATLAS_TESTS_ALLOCATION_FAILURE_SWEEP_H_

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "reclamation/hazard_domain.h"
#include "support/failing_allocation.h"

namespace midatlas::testing_support {

// What a workload saw go wrong while allocation could fail, kept without allocating.
class Violations {
 public:
  // Records a broken expectation unless `holds`. `what` must outlive the record (a string
  // literal); `detail` says which call or value (a MID, an index, a status code).
  void Expect(bool holds, const char* what, long detail = 0) noexcept {
    if (holds) return;
    if (count_ == 0) {
      first_ = what;
      first_detail_ = detail;
    }
    ++count_;
  }

  [[nodiscard]] long count() const noexcept { return count_; }

  // Allocates: call it once the injection is disarmed.
  [[nodiscard]] std::string Describe() const {
    if (count_ == 0) return "none";
    return std::string(first_) + " (" + std::to_string(first_detail_) + ")" +
           (count_ > 1 ? ", and " + std::to_string(count_ - 1) + " more" : std::string());
  }

 private:
  long count_ = 0;
  const char* first_ = "";
  long first_detail_ = 0;
};

struct SweepSummary {
  long points = 0;  // allocations the workload makes when none fails
  long runs = 0;    // runs that reached their failing allocation (fail_at = 1..runs)
  double seconds = 0;
};

// Runs `run(plan)` first with no allocation failing (fail_at 0: that run makes the one-time
// allocations - the thread's hazard record, static state - so every later run starts from the
// same state, and counts the workload's allocation points), then with plan.fail_at = 1, 2,
// 3, ... until a run reports that it did not reach its failing allocation. `run` arms a
// FailingAllocations with the plan around its workload, disarms it, asserts on what the
// workload did, and returns the injection's report. The sweep stops at the first run that
// fails an assertion (its fail_at is in the trace) and fails when `max_runs` runs did not
// suffice.
template <typename Run>
SweepSummary SweepAllocationFailures(const char* name, FailurePlan plan, long max_runs,
                                     Run&& run) {
  const auto start = std::chrono::steady_clock::now();
  SweepSummary summary;
  {
    SCOPED_TRACE(std::string(name) + ": the run with no allocation failing");
    plan.fail_at = 0;
    const InjectionReport baseline = run(plan);
    summary.points = baseline.seen;
    EXPECT_EQ(baseline.failures, 0);
  }
  for (long n = 1; !::testing::Test::HasFailure(); ++n) {
    if (n > max_runs) {
      ADD_FAILURE() << name << ": allocation " << max_runs
                    << " still failed inside the workload; raise the bound if it grew";
      break;
    }
    SCOPED_TRACE(std::string(name) + ": allocation " + std::to_string(n) + " fails" +
                 (plan.after == AfterFailure::kFail ? ", and every one after it" : ""));
    plan.fail_at = n;
    const InjectionReport report = run(plan);
    if (!report.reached) break;
    EXPECT_GE(report.failures, 1);
    summary.runs = n;
  }
  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[  SWEEP   ] %s: %ld allocation points, %ld runs with a failure, %.2f s\n", name,
              summary.points, summary.runs, summary.seconds);
  ::testing::Test::RecordProperty("allocation_points", std::to_string(summary.points));
  ::testing::Test::RecordProperty("failing_runs", std::to_string(summary.runs));
  return summary;
}

// Takes every hazard record the domain has free, and one more it must allocate, so that the
// next thread to need a record allocates it. Released at the end of the scope.
class PinEveryFreeRecord {
 public:
  PinEveryFreeRecord() {
    internal::HazardDomain& domain = internal::HazardDomain::Default();
    while (true) {
      const std::size_t before = domain.record_count();
      internal::HazardRecord* record = domain.AcquireRecord();
      if (record == nullptr) break;  // not expected: nothing is armed here
      pinned_.push_back(record);
      if (domain.record_count() != before) break;  // it allocated: none was free
    }
  }
  PinEveryFreeRecord(const PinEveryFreeRecord&) = delete;
  PinEveryFreeRecord& operator=(const PinEveryFreeRecord&) = delete;
  ~PinEveryFreeRecord() {
    for (internal::HazardRecord* record : pinned_) {
      internal::HazardDomain::Default().ReleaseRecord(record);
    }
  }

 private:
  std::vector<internal::HazardRecord*> pinned_;
};

// Hazard-record state a process creates once and keeps: the default domain, this thread's
// record, and the emergency record (registered with the domain when it is first lent, to a
// thread that cannot allocate a record of its own). Made before any run is measured, so that
// a run is charged only for what it does.
inline void MakeOneTimeRecordState() {
  static const bool kMade = [] {
    static_cast<void>(internal::ThisThreadRecord());
    const PinEveryFreeRecord pin;
    std::thread([] {
      FailingAllocations injection({.fail_at = 1, .after = AfterFailure::kFail});
      const internal::RecordLease lease;  // no record can be allocated: the emergency one
    }).join();
    return true;
  }();
  static_cast<void>(kMade);
}

// Checks that a run gave back every block it took from operator new. Hazard records are the
// exception: the domain keeps them for good (a thread's goes to the next thread), so the
// records a run added - a pinned one, a fresh thread's - may remain.
class LeakCheck {
 public:
  LeakCheck()
      : live_((MakeOneTimeRecordState(), LiveAllocations())),
        records_(internal::HazardDomain::Default().record_count()) {}

  void ExpectNothingLeaked() const {
    // Retired maps and nodes that no hazard holds any more are freed first.
    internal::HazardDomain::Default().Reclaim();
    EXPECT_EQ(LiveAllocations() - live_,
              static_cast<long>(internal::HazardDomain::Default().record_count() - records_))
        << "the run leaked";
  }

 private:
  long live_;
  std::size_t records_;
};

}  // namespace midatlas::testing_support

#endif  // MIDATLAS_TESTS_ALLOCATION_FAILURE_SWEEP_H_
