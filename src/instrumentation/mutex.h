// The one mutex type of the library's blocking paths (the waiter queue). std::mutex in every
// build but the deterministic-schedule one, where a thread blocked in the kernel would stall
// the scheduler: there it is a test-and-test-and-set lock on Atomic, whose every step is a
// scheduling point, so the scheduler can run the holder while another thread spins.
#ifndef MIDATLAS_SRC_INSTRUMENTATION_MUTEX_H_
#define MIDATLAS_SRC_INSTRUMENTATION_MUTEX_H_

#include <mutex>

#include "instrumentation/atomic.h"

namespace midatlas::internal {

#if defined(MIDATLAS_DETERMINISTIC_SCHEDULE)
class Mutex {
 public:
  void lock() noexcept {
    // (mutex:X1) acquire: pairs with (mutex:X2), the previous holder's unlock; while it is
    // held, (mutex:X3) spins on plain loads.
    while (locked_.exchange(true, std::memory_order_acquire)) {
      // (mutex:X3) relaxed: only a hint to try the exchange again.
      while (locked_.load(std::memory_order_relaxed)) {
      }
    }
  }
  void unlock() noexcept {
    // (mutex:X2) release: the critical section happens-before the next (mutex:X1).
    locked_.store(false, std::memory_order_release);
  }

 private:
  Atomic<bool> locked_{false};
};
#else
using Mutex = std::mutex;
#endif

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_INSTRUMENTATION_MUTEX_H_
