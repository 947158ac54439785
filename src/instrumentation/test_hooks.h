// Test hooks: named points in the library where a test build (MIDATLAS_TEST_HOOKS defined)
// calls back into the test, on the thread that reaches the point, so that a regression test
// can run a deterministic schedule there - another "thread's" steps, performed inline - instead
// of hoping that a timing window opens. In every other build MIDATLAS_TEST_HOOK(point) compiles
// to nothing, so the shipped library carries neither the call nor the check.
//
// A hook runs with no hazard slot of the caller's taken (each point says what else holds), so
// the callback may call the library, the atlas that reached the point included.
#ifndef MIDATLAS_SRC_INSTRUMENTATION_TEST_HOOKS_H_
#define MIDATLAS_SRC_INSTRUMENTATION_TEST_HOOKS_H_

#include <cstdint>

namespace midatlas::internal {

enum class TestHookPoint : std::uint8_t {
  // AtlasCore::ConfirmAllInUse: a collect found every leaf attached and full, and has not
  // yet decided whether it matches the previous collect. The walk's guards are released.
  kAllInUseCollected,
};

using TestHook = void (*)(TestHookPoint point) noexcept;

// Installs `hook` (nullptr: none) for every thread and returns the one it replaces. Install
// and remove it while no library call runs that could reach a hook point (between joins).
TestHook SetTestHook(TestHook hook) noexcept;

// Calls the installed hook, if any, with `point`.
void RunTestHook(TestHookPoint point) noexcept;

}  // namespace midatlas::internal

#if defined(MIDATLAS_TEST_HOOKS)
#define MIDATLAS_TEST_HOOK(point) \
  ::midatlas::internal::RunTestHook(::midatlas::internal::TestHookPoint::point)
#else
#define MIDATLAS_TEST_HOOK(point) static_cast<void>(0)
#endif

#endif  // MIDATLAS_SRC_INSTRUMENTATION_TEST_HOOKS_H_
