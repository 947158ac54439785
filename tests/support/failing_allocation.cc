// See failing_allocation.h.
#include "support/failing_allocation.h"

#include <atomic>
#include <cstddef>
#include <new>

namespace {

// -1: unarmed. n >= 0: the next n nothrow allocations succeed, then they fail (only the first
// of them, or every one until disarmed).
std::atomic<long> g_successes_before_failure{-1};
std::atomic<bool> g_fail_only_once{true};
std::atomic<long> g_failures_delivered{0};

bool ShouldFailNothrowAllocation() noexcept {
  // relaxed throughout: the injection is armed, used and read by one thread, between joins.
  long remaining = g_successes_before_failure.load(std::memory_order_relaxed);
  while (remaining >= 0) {
    long next = remaining - 1;
    if (remaining == 0 && !g_fail_only_once.load(std::memory_order_relaxed)) next = 0;
    if (g_successes_before_failure.compare_exchange_weak(
            remaining, next, std::memory_order_relaxed, std::memory_order_relaxed)) {
      if (remaining != 0) return false;
      g_failures_delivered.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

}  // namespace

namespace midatlas::testing_support {

FailNothrowAllocations::FailNothrowAllocations(long successes_first, Mode mode) {
  g_fail_only_once.store(mode == Mode::kOnlyTheNext, std::memory_order_relaxed);
  g_failures_delivered.store(0, std::memory_order_relaxed);
  g_successes_before_failure.store(successes_first, std::memory_order_relaxed);
}

FailNothrowAllocations::~FailNothrowAllocations() {
  g_successes_before_failure.store(-1, std::memory_order_relaxed);
}

long FailNothrowAllocations::failures() {
  return g_failures_delivered.load(std::memory_order_relaxed);
}

}  // namespace midatlas::testing_support


void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  if (ShouldFailNothrowAllocation()) return nullptr;
  try {
    return ::operator new(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  if (ShouldFailNothrowAllocation()) return nullptr;
  try {
    return ::operator new[](size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  if (ShouldFailNothrowAllocation()) return nullptr;
  try {
    return ::operator new(size, alignment);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void* operator new[](std::size_t size, std::align_val_t alignment,
                     const std::nothrow_t&) noexcept {
  if (ShouldFailNothrowAllocation()) return nullptr;
  try {
    return ::operator new[](size, alignment);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
