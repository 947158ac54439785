// Waiting for a free MID (docs/DESIGN.md 10.8, WQ1-WQ4): the FIFO hand-off, blocking and
// asynchronous waits, cancellation.
#include <condition_variable>
#include <mutex>

#include "atlas/atlas_core.h"
#include "instrumentation/chaos.h"

namespace midatlas::internal {

namespace {

// A blocking caller's wake-up: its own mutex and condition variable, so that a hand-off
// wakes exactly the thread it served.
struct Parker {
  std::mutex mutex;
  std::condition_variable woken;
  bool served = false;
};

void WakeParked(Waiter* waiter, AtlasResult /*result*/, Mid /*mid*/) {
  auto* parker = static_cast<Parker*>(waiter->user);
  const std::lock_guard<std::mutex> lock(parker->mutex);
  parker->served = true;
  // Under the mutex: the waiter may return (ending the Parker) as soon as it sees `served`.
  parker->woken.notify_one();
}

}  // namespace

void AtlasCore::CompleteServed(Waiter* served) noexcept {
  while (served != nullptr) {
    Waiter* next = served->next;  // read first: the completion may end the waiter
    served->next = nullptr;
    served->complete(served, AtlasResult::kOk, served->mid);
    served = next;
  }
}

// Under the queue's mutex. WQ2: oldest first; a waiter without the reserve flag that finds
// the unreserved capacity taken is passed over only for waiters that may use the reserve.
Waiter* AtlasCore::ServeQueueLocked() noexcept {
  Waiter* served_head = nullptr;
  Waiter** served_tail = &served_head;
  bool unreserved_full = false;
  Waiter* waiter = waits_.front();
  while (waiter != nullptr) {
    Waiter* next = waiter->next;
    if (unreserved_full && !waiter->use_reserve) {
      waiter = next;
      continue;
    }
    Mid mid = 0;
    const AtlasResult result = AssociateUnqueued(waiter->context, &mid, waiter->use_reserve);
    if (result == AtlasResult::kOk) {
      waits_.Unlink(waiter);
      waiter->mid = mid;
      *served_tail = waiter;
      served_tail = &waiter->next;
    } else if (result == AtlasResult::kAllInUse && reserved_ != 0 && !waiter->use_reserve) {
      // Only the unreserved capacity is taken: a waiter that may use the reserve still fits.
      unreserved_full = true;
    } else {
      break;  // nothing free for anyone (or memory short): the next free serves them
    }
    waiter = next;
  }
  return served_head;
}

Waiter* AtlasCore::ServeQueue() noexcept {
  const std::lock_guard<Mutex> lock(waits_.mutex());
  return ServeQueueLocked();
}

void AtlasCore::Settle(FreeOutcome outcome) noexcept {
  CompleteServed(outcome.handed);
  if (outcome.serve_queue) CompleteServed(ServeQueue());
}

// The freed (leaf, slot) is ours: its context taken, not pushed. Under the queue's mutex the
// oldest eligible waiter leaves the queue and the slot is published with its context, so a
// cancel either finds it queued or finds it served, never between.
Waiter* AtlasCore::HandOff(std::uint32_t index) noexcept {
  const std::lock_guard<Mutex> lock(waits_.mutex());
  // The MID stays held and admitted; an unreserved waiter may have it only while the MIDs
  // admitted (this one included) stay within the unreserved capacity (RS1).
  const bool unreserved_ok =
      reserved_ == 0 ||
      // (atlas:Q3) acquire: pairs with (atlas:Q2); an overcount only sends the MID to the
      // free stack, where the serve after the push finds it for whoever may take it.
      admitted_.load(std::memory_order_acquire) <= max_mids_ - reserved_;
  for (Waiter* waiter = waits_.front(); waiter != nullptr; waiter = waiter->next) {
    if (!waiter->use_reserve && !unreserved_ok) continue;
    waits_.Unlink(waiter);
    waiter->mid = PublishAtIndex(index, waiter->context);  // (atlas:A2)
    return waiter;
  }
  return nullptr;
}

void AtlasCore::FreeLeafZeroSlotToWaiters(std::uint32_t slot) noexcept {
  Settle(ReleaseSlot(dir0(), *leaf0_, slot));
}

// WQ3: no barging. A caller that finds waiters queued first serves them from what is free;
// it may take a MID only if no waiter still queued could have used it.
AtlasResult AtlasCore::AssociateBehindWaiters(void* context, Mid* mid_out,
                                              bool use_reserve) noexcept {
  Waiter* served = nullptr;
  AtlasResult result = AtlasResult::kAllInUse;
  {
    const std::lock_guard<Mutex> lock(waits_.mutex());
    served = ServeQueueLocked();
    bool blocked = false;
    for (const Waiter* waiter = waits_.front(); waiter != nullptr; waiter = waiter->next) {
      // A waiter still queued found nothing it may take; the caller may take only what the
      // waiters may not: the reserve, when they are all unreserved.
      if (waiter->use_reserve || !use_reserve) {
        blocked = true;
        break;
      }
    }
    if (!blocked) result = AssociateUnqueued(context, mid_out, use_reserve);
  }
  CompleteServed(served);
  return result;
}

AtlasResult AtlasCore::Enqueue(Waiter* waiter) noexcept {
  Waiter* served = nullptr;
  {
    const std::lock_guard<Mutex> lock(waits_.mutex());
    if (waits_.Linked(waiter) && waits_.Contains(waiter)) return AtlasResult::kInvalidArgument;
    waits_.PushBack(waiter);  // (wait:W2)
    // (wait:W5) seq_cst fence: WQ1's Dekker pair. Either this waiter's tries below see a
    // freer's push (stack:S2), or that freer's count load (wait:W1) sees this waiter.
    AtomicThreadFence(std::memory_order_seq_cst);
    served = ServeQueueLocked();
  }
  bool self = false;
  Waiter* others = nullptr;
  Waiter** tail = &others;
  for (Waiter* w = served; w != nullptr;) {
    Waiter* next = w->next;
    w->next = nullptr;
    if (w == waiter) {
      self = true;
    } else {
      *tail = w;
      tail = &w->next;
    }
    w = next;
  }
  CompleteServed(others);
  return self ? AtlasResult::kOk : AtlasResult::kPending;
}

AtlasResult AtlasCore::AssociateAsync(void* context, bool use_reserve, Waiter* waiter,
                                      Mid* mid_out) noexcept {
  if (context == nullptr || mid_out == nullptr || waiter == nullptr ||
      waiter->complete == nullptr) {
    return AtlasResult::kInvalidArgument;
  }
  const AtlasResult now = Associate(context, mid_out, use_reserve);
  if (now != AtlasResult::kAllInUse) return now;
  waiter->context = context;
  waiter->use_reserve = use_reserve;
  waiter->mid = 0;
  const AtlasResult queued = Enqueue(waiter);
  if (queued == AtlasResult::kOk) *mid_out = waiter->mid;
  return queued;
}

AtlasResult AtlasCore::AssociateWait(void* context, Mid* mid_out, bool use_reserve,
                                     WaitDeadline deadline) noexcept {
  if (context == nullptr || mid_out == nullptr) return AtlasResult::kInvalidArgument;
  const AtlasResult now = Associate(context, mid_out, use_reserve);
  if (now != AtlasResult::kAllInUse) return now;
  if (deadline && *deadline <= std::chrono::steady_clock::now()) return AtlasResult::kTimeout;
  Parker parker;
  Waiter waiter{};
  waiter.context = context;
  waiter.use_reserve = use_reserve;
  waiter.user = &parker;
  waiter.complete = &WakeParked;
  const AtlasResult queued = Enqueue(&waiter);
  if (queued == AtlasResult::kOk) {
    *mid_out = waiter.mid;
    return AtlasResult::kOk;
  }
  {
    std::unique_lock<std::mutex> lock(parker.mutex);
    // WQ4: a wake-up without a hand-off (spurious) goes back to sleep; only `served` or the
    // deadline ends the wait.
    if (deadline) {
      parker.woken.wait_until(lock, *deadline, [&] { return parker.served; });
    } else {
      parker.woken.wait(lock, [&] { return parker.served; });
    }
    if (parker.served) {
      *mid_out = waiter.mid;
      return AtlasResult::kOk;
    }
  }
  // The deadline passed: leave the queue, unless a hand-off took us first - then it is
  // completing, and its MID is ours.
  {
    const std::lock_guard<Mutex> lock(waits_.mutex());
    if (waits_.Linked(&waiter)) {
      waits_.Unlink(&waiter);
      return AtlasResult::kTimeout;
    }
  }
  std::unique_lock<std::mutex> lock(parker.mutex);
  parker.woken.wait(lock, [&] { return parker.served; });
  *mid_out = waiter.mid;
  return AtlasResult::kOk;
}

bool AtlasCore::IsQueued(const Waiter* waiter) noexcept {
  const std::lock_guard<Mutex> lock(waits_.mutex());
  return waits_.Linked(waiter) && waits_.Contains(waiter);
}

bool AtlasCore::CancelWait(Waiter* waiter) noexcept {
  if (waiter == nullptr) return false;
  {
    const std::lock_guard<Mutex> lock(waits_.mutex());
    if (!waits_.Linked(waiter)) return false;
    waits_.Unlink(waiter);
  }
  waiter->complete(waiter, AtlasResult::kCancelled, 0);
  return true;
}

void AtlasCore::CancelAllWaiters() noexcept {
  // Single-threaded (destruction): no blocking caller can be queued.
  while (Waiter* waiter = waits_.front()) {
    waits_.Unlink(waiter);
    waiter->complete(waiter, AtlasResult::kCancelled, 0);
  }
}

}  // namespace midatlas::internal
