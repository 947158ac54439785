// The one atomic type the algorithms use. Every shared word of the atlas, the hazard domain,
// the free stacks, the hints and the NetName table is an `Atomic<T>`, and every standalone
// fence goes through `AtomicThreadFence`, so that a test build can swap in instrumented
// atomics that hand control to a deterministic scheduler at each operation - running the
// shipped algorithms, never a copy of them. In every other build these are exactly
// std::atomic and std::atomic_thread_fence: the alias adds no code.
//
// The deterministic-schedule build (MIDATLAS_DETERMINISTIC_SCHEDULE, the `midatlas_dsched`
// test variants of the library) takes the instrumented type from tests/dsched/atomic.h: the
// same layout as std::atomic<T> (maps placement-construct arrays of them in raw memory), and
// a call into the scheduler before each operation on a scheduled thread.
#ifndef MIDATLAS_SRC_INSTRUMENTATION_ATOMIC_H_
#define MIDATLAS_SRC_INSTRUMENTATION_ATOMIC_H_

#include <atomic>

#if defined(MIDATLAS_DETERMINISTIC_SCHEDULE)
#include "dsched/atomic.h"  // tests/dsched/: on the include path of the dsched variants only
#endif

namespace midatlas::internal {

#if defined(MIDATLAS_DETERMINISTIC_SCHEDULE)
// Under the deterministic scheduler: each operation is a scheduling point (tests/dsched/).
inline constexpr bool kDeterministicSchedule = true;

template <typename T>
using Atomic = ::midatlas::dsched::Atomic<T>;

inline void AtomicThreadFence(std::memory_order order) noexcept {
  ::midatlas::dsched::ThreadFence(order);
}
#else
inline constexpr bool kDeterministicSchedule = false;

template <typename T>
using Atomic = std::atomic<T>;

inline void AtomicThreadFence(std::memory_order order) noexcept {
  std::atomic_thread_fence(order);
}
#endif

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_INSTRUMENTATION_ATOMIC_H_
