// Allocation failure injection for tests. failing_allocation.cc replaces every form of the
// global operator new and operator delete in each test binary that links it (a replacement
// the standard permits for global allocation functions). Each replacement forwards to the
// definition it displaces - the C++ runtime's, or a sanitizer's, so that sanitizers still
// pair every allocation with the operator delete that frees it - except that an armed
// injection may fail it: a throwing form then throws std::bad_alloc, a nothrow form returns
// nullptr. Deallocation is never affected, sized or not; it is only counted.
//
// A sweep (in the manner of SQLite's out-of-memory tests) arms "fail allocation N" around a
// workload for N = 1, 2, 3, ... until a run finishes without reaching allocation N:
//
//   FailingAllocations injection({.fail_at = n});
//   RunTheWorkload();                  // no GoogleTest assertion in here: it allocates too
//   injection.Disarm();
//   if (!injection.reached()) ...      // the workload made fewer than n allocations: done
#ifndef MIDATLAS_TESTS_FAILING_ALLOCATION_H_
#define MIDATLAS_TESTS_FAILING_ALLOCATION_H_

#include <cstdint>

namespace midatlas::testing_support {

// Whose allocations an injection counts (and fails).
enum class AllocationThreads : std::uint8_t {
  // Only the thread that armed it: GoogleTest and every other thread run untouched. A fresh
  // thread arms its own injection as its first action.
  kArmingThread,
  // Every thread of the process, for workloads that start threads of their own.
  kEveryThread,
};

// Which forms of operator new an injection counts (and fails).
enum class AllocationForms : std::uint8_t {
  // Throwing and nothrow, plain and aligned, new and new[]: every allocation the code under
  // test makes, the std::string of a status message as well as the library's maps.
  kEvery,
  // The nothrow forms only: the library's own allocations of atlases, maps and records.
  kNothrowOnly,
};

// What becomes of the counted allocations after the one that fails.
enum class AfterFailure : std::uint8_t {
  kSucceed,  // only allocation fail_at fails (a transient shortage)
  kFail,     // allocation fail_at and every later one fail (memory stays exhausted)
};

struct FailurePlan {
  // The counted allocation that fails, counting from 1 at arming. 0: none fails (the
  // injection only counts, e.g. to learn how many allocations a workload makes).
  long fail_at = 1;
  AfterFailure after = AfterFailure::kSucceed;
  AllocationThreads threads = AllocationThreads::kArmingThread;
  AllocationForms forms = AllocationForms::kEvery;
};

// What an injection saw, read after it was disarmed.
struct InjectionReport {
  long seen = 0;      // counted allocation attempts, the failed ones included
  long failures = 0;  // of those, the ones that failed
  bool reached = false;  // seen >= fail_at > 0: the run got as far as its failure point
};

// Armed for its lifetime, or until Disarm. One injection at a time in the process; arm and
// disarm it on one thread (under kEveryThread, while no other thread allocates, or only
// between joins).
class FailingAllocations {
 public:
  explicit FailingAllocations(FailurePlan plan);
  FailingAllocations(const FailingAllocations&) = delete;
  FailingAllocations& operator=(const FailingAllocations&) = delete;
  ~FailingAllocations();

  // Stops counting and failing; the counts stay readable. Idempotent.
  void Disarm();

  [[nodiscard]] long seen() const;
  [[nodiscard]] long failures() const;
  [[nodiscard]] bool reached() const;
  [[nodiscard]] InjectionReport report() const;

 private:
  FailurePlan plan_;
  bool armed_ = true;
};

// Blocks allocated by operator new (any form, any thread) and not yet given back to operator
// delete, process-wide. Two readings around a single-threaded piece of work that should leave
// nothing behind must be equal; unlike LeakSanitizer this names the exact run that leaked,
// and works in every build.
long LiveAllocations();

// The original interface, kept for the tests written against it: counts and fails only the
// nothrow forms, on every thread. The next `successes_first` of them succeed, then they fail
// (only the next one, or every one until disarmed).
class FailNothrowAllocations {
 public:
  enum class Mode { kOnlyTheNext, kEveryOneFromThen };

  FailNothrowAllocations(long successes_first, Mode mode);
  FailNothrowAllocations(const FailNothrowAllocations&) = delete;
  FailNothrowAllocations& operator=(const FailNothrowAllocations&) = delete;
  ~FailNothrowAllocations() = default;

  // Failures delivered by the injection armed last (this one while it lives).
  static long failures();

 private:
  FailingAllocations injection_;
};

}  // namespace midatlas::testing_support

#endif  // MIDATLAS_TESTS_FAILING_ALLOCATION_H_
