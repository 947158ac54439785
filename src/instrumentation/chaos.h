// Chaos points: a build with MIDATLAS_CHAOS defined may yield or pause between the atomic steps
// of every algorithm, so that rare interleavings show up in seconds under the stress tests. In
// the deterministic-schedule build (MIDATLAS_DETERMINISTIC_SCHEDULE, tests/dsched/) each chaos
// point is a scheduling point, like every atomic operation. In every other build
// MIDATLAS_CHAOS_POINT() compiles to nothing.
#ifndef MIDATLAS_SRC_INSTRUMENTATION_CHAOS_H_
#define MIDATLAS_SRC_INSTRUMENTATION_CHAOS_H_

#include "instrumentation/atomic.h"

namespace midatlas::internal {
// Yields, spins or sleeps for a few microseconds at random (per-thread generator).
void ChaosPoint() noexcept;
}  // namespace midatlas::internal

#if defined(MIDATLAS_DETERMINISTIC_SCHEDULE)
#define MIDATLAS_CHAOS_POINT() ::midatlas::dsched::SchedulingPoint()
#elif defined(MIDATLAS_CHAOS)
#define MIDATLAS_CHAOS_POINT() ::midatlas::internal::ChaosPoint()
#else
#define MIDATLAS_CHAOS_POINT() static_cast<void>(0)
#endif

#endif  // MIDATLAS_SRC_INSTRUMENTATION_CHAOS_H_
