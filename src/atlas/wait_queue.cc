#include "atlas/wait_queue.h"

namespace midatlas::internal {

bool WaitQueue::Contains(const Waiter* waiter) const noexcept {
  for (const Waiter* w = head_; w != nullptr; w = w->next) {
    if (w == waiter) return true;
  }
  return false;
}

void WaitQueue::PushBack(Waiter* waiter) noexcept {
  waiter->next = nullptr;
  waiter->prev = tail_;
  waiter->queue = this;
  if (tail_ != nullptr) {
    tail_->next = waiter;
  } else {
    head_ = waiter;
  }
  tail_ = waiter;
  // (wait:W2) relaxed: only this mutex's holder writes the count, so a store suffices; the
  // seq_cst fence the waiter runs next (wait:W5) makes it, with a freer's push (stack:S2) and
  // count load (wait:W1), WQ1's Dekker pair.
  count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void WaitQueue::Unlink(Waiter* waiter) noexcept {
  if (waiter->prev != nullptr) {
    waiter->prev->next = waiter->next;
  } else {
    head_ = waiter->next;
  }
  if (waiter->next != nullptr) {
    waiter->next->prev = waiter->prev;
  } else {
    tail_ = waiter->prev;
  }
  waiter->next = nullptr;
  waiter->prev = nullptr;
  waiter->queue = nullptr;
  // (wait:W3) relaxed: as (wait:W2); a freer that reads the old count only takes the mutex
  // to find nobody to serve.
  count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

}  // namespace midatlas::internal
