// The one atomic type the algorithms use. Every shared word of the atlas, the hazard domain,
// the free stacks, the hints and the NetName table is an `Atomic<T>`, and every standalone
// fence goes through `AtomicThreadFence`, so that a test build can swap in instrumented
// atomics that hand control to a deterministic scheduler at each operation - running the
// shipped algorithms, never a copy of them. In every other build these are exactly
// std::atomic and std::atomic_thread_fence: the alias adds no code.
#ifndef MIDATLAS_SRC_INSTRUMENTATION_ATOMIC_H_
#define MIDATLAS_SRC_INSTRUMENTATION_ATOMIC_H_

#include <atomic>

namespace midatlas::internal {

template <typename T>
using Atomic = std::atomic<T>;

inline void AtomicThreadFence(std::memory_order order) noexcept {
  std::atomic_thread_fence(order);
}

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_INSTRUMENTATION_ATOMIC_H_
