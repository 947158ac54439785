// Allocation failure injection for tests. The library allocates its atlas object and every
// map through the nothrow forms of operator new; failing_allocation.cc replaces those forms in
// each test binary that links it (a replacement the standard permits for global allocation
// functions) so that a test can make them fail. Unarmed, each forwards to the matching
// throwing form, so sanitizers still pair every allocation with the operator delete that
// frees it.
#ifndef MIDATLAS_TESTS_FAILING_ALLOCATION_H_
#define MIDATLAS_TESTS_FAILING_ALLOCATION_H_

namespace midatlas::testing_support {

// Arms the injection for its lifetime: the next `successes_first` nothrow allocations
// succeed, then they fail (only the next one, or every one until disarmed). Arm, use and read
// it from one thread, between joins.
class FailNothrowAllocations {
 public:
  enum class Mode { kOnlyTheNext, kEveryOneFromThen };

  FailNothrowAllocations(long successes_first, Mode mode);
  FailNothrowAllocations(const FailNothrowAllocations&) = delete;
  FailNothrowAllocations& operator=(const FailNothrowAllocations&) = delete;
  ~FailNothrowAllocations();

  static long failures();
};

}  // namespace midatlas::testing_support

#endif  // MIDATLAS_TESTS_FAILING_ALLOCATION_H_
