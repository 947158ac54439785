#include "instrumentation/test_hooks.h"

#include <atomic>

namespace midatlas::internal {

namespace {
// Set between joins (see SetTestHook), so the pointer publishes nothing: every access is
// relaxed, and the atomic only keeps a hook point on another thread free of a data race.
std::atomic<TestHook> g_test_hook{nullptr};
}  // namespace

TestHook SetTestHook(TestHook hook) noexcept {
  return g_test_hook.exchange(hook, std::memory_order_relaxed);  // see g_test_hook
}

void RunTestHook(TestHookPoint point) noexcept {
  const TestHook hook = g_test_hook.load(std::memory_order_relaxed);  // see g_test_hook
  if (hook != nullptr) hook(point);
}

}  // namespace midatlas::internal
