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
  // (wait:W2) seq_cst: with the fence the waiter runs before its last try, the Dekker pair of
  // a freer's push (stack:S2) and its count load (wait:W1).
  count_.fetch_add(1, std::memory_order_seq_cst);
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
  // (wait:W3) seq_cst: as (wait:W2).
  count_.fetch_sub(1, std::memory_order_seq_cst);
}

}  // namespace midatlas::internal
