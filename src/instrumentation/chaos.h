// Chaos points: a build with MIDATLAS_CHAOS defined may yield or pause between the atomic steps
// of every algorithm, so that rare interleavings show up in seconds under the stress tests. In
// every other build MIDATLAS_CHAOS_POINT() compiles to nothing.
#ifndef MIDATLAS_SRC_INSTRUMENTATION_CHAOS_H_
#define MIDATLAS_SRC_INSTRUMENTATION_CHAOS_H_

namespace midatlas::internal {
// Yields, spins or sleeps for a few microseconds at random (per-thread generator).
void ChaosPoint() noexcept;
}  // namespace midatlas::internal

#if defined(MIDATLAS_CHAOS)
#define MIDATLAS_CHAOS_POINT() ::midatlas::internal::ChaosPoint()
#else
#define MIDATLAS_CHAOS_POINT() static_cast<void>(0)
#endif

#endif  // MIDATLAS_SRC_INSTRUMENTATION_CHAOS_H_
