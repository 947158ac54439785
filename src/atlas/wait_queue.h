// The FIFO of requests waiting for a free MID (docs/DESIGN.md 10.8): blocking callers, C
// wait blocks and C++ wait handles alike, in arrival order.
//
// The queue is a doubly linked list of caller-owned Waiter nodes under one mutex: a node is
// linked, served or cancelled only under it, so a hand-off and a cancel of the same node can
// never both succeed, and no node is ever touched by the queue after it left the list. The
// mutex is taken only while someone waits; the count beside it is what every other call
// reads, on a line of its own, so an atlas nobody waits on pays one load of a line nobody
// writes.
//
//   (wait:W1) the count, read by a freer after its push (seq_cst)  pairs with (wait:W2) and
//             the waiter's fence (wait:W5)
//   (wait:W2) the count, raised when a waiter is queued (relaxed store, under the mutex)
//   (wait:W3) the count, lowered when one leaves (relaxed store, under the mutex)
//   (wait:W4) the count, read by an associate for barging (relaxed)
#ifndef MIDATLAS_SRC_ATLAS_WAIT_QUEUE_H_
#define MIDATLAS_SRC_ATLAS_WAIT_QUEUE_H_

#include <cstdint>
#include <mutex>

#include "instrumentation/atomic.h"
#include "instrumentation/mutex.h"
#include "midatlas/mid_atlas.h"

namespace midatlas::internal {

enum class AtlasResult : std::uint8_t;
struct Waiter;

// Runs once per waiter that leaves the queue by hand-off (kOk, `mid` associated with its
// context) or by cancellation (kCancelled). It may end the waiter's storage.
using WaitCompletion = void (*)(Waiter* waiter, AtlasResult result, Mid mid);

// One queued request. Plain data, so that it can live in a C RX_MID_WAIT_BLOCK (64 bytes).
struct Waiter {
  Waiter* next;
  Waiter* prev;
  const void* queue;  // the queue it is linked on; null once it left
  void* context;
  void* user;                       // the completion's data
  void (*user_routine)();           // the completion's routine (a C PRX_MID_WAIT_ROUTINE)
  WaitCompletion complete;
  Mid mid;                          // set when it is served
  bool use_reserve;
};

class WaitQueue {
 public:
  Mutex& mutex() noexcept { return mutex_; }

  // Under mutex(): the list.
  [[nodiscard]] Waiter* front() const noexcept { return head_; }
  [[nodiscard]] bool Contains(const Waiter* waiter) const noexcept;
  [[nodiscard]] bool Linked(const Waiter* waiter) const noexcept { return waiter->queue == this; }
  void PushBack(Waiter* waiter) noexcept;
  void Unlink(Waiter* waiter) noexcept;

  // Waiters queued now. Every freer reads it after its push: a waiter raises it before its
  // own last try (with a full fence between), so of a freer and a waiter that race, at least
  // one sees the other - the freer serves the queue, or the waiter takes the MID.
  [[nodiscard]] std::uint32_t count() const noexcept {
    return count_.load(std::memory_order_seq_cst);  // (wait:W1) seq_cst: pairs with (wait:W2)
  }
  [[nodiscard]] bool maybe_waiting() const noexcept {
    // (wait:W4) relaxed: an associate that misses a waiter queued meanwhile arrived before it.
    return count_.load(std::memory_order_relaxed) != 0;
  }

 private:
  Mutex mutex_;
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
  alignas(64) Atomic<std::uint32_t> count_{0};
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_WAIT_QUEUE_H_
