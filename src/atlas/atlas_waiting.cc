// Waiting for a free MID (docs/DESIGN.md 10.8, WQ1-WQ4): the FIFO hand-off, blocking and
// asynchronous waits, cancellation.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <mutex>

#include "atlas/atlas_core.h"
#include "instrumentation/chaos.h"
#include "reclamation/asymmetric_fence.h"

namespace midatlas::internal {

namespace {

// A blocking caller's wake-up: a futex word of its own, so that a hand-off wakes exactly the
// thread it served, with one system call and no lock (the woken thread takes none either).
struct Parker {
  Atomic<std::uint32_t> served{0};

  [[nodiscard]] bool Served() const noexcept {
    // (wait:W10) acquire: pairs with (wait:W9); the handed MID was written before.
    return served.load(std::memory_order_acquire) != 0;
  }
  // Sleeps while not served, until `deadline` (none: no limit). WQ4: a wake-up that finds the
  // flag clear (spurious, or for an earlier user of this address) goes back to sleep.
  bool SleepUntilServed(WaitDeadline deadline) noexcept {
    while (!Served()) {
      timespec remaining{};
      timespec* timeout = nullptr;
      if (deadline) {
        const auto left = *deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) return false;
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        remaining.tv_sec = static_cast<time_t>(ns / 1000000000);
        remaining.tv_nsec = static_cast<long>(ns % 1000000000);
        timeout = &remaining;
      }
      syscall(SYS_futex, Word(), FUTEX_WAIT_PRIVATE, 0, timeout, nullptr, 0);
    }
    return true;
  }
  std::uint32_t* Word() noexcept {
    // The futex word is the atomic's own storage (std::atomic<std::uint32_t> is a plain 32-bit
    // word on Linux).
    static_assert(sizeof(Atomic<std::uint32_t>) == sizeof(std::uint32_t));
    return reinterpret_cast<std::uint32_t*>(&served);
  }
};

void WakeParked(Waiter* waiter, AtlasResult /*result*/, Mid /*mid*/) {
  auto* parker = static_cast<Parker*>(waiter->user);
  std::uint32_t* word = parker->Word();
  // (wait:W9) release: the waiter's MID (set under the queue's mutex) comes before the flag.
  parker->served.store(1, std::memory_order_release);
  // The waiter may return (ending the Parker) as soon as it sees the flag: only the address
  // is used from here on, and a wake-up of whoever sleeps there now is spurious to them.
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
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
  // Nothing to serve from while every MID is held: no associate attempt (a MID freed after
  // this look is served by its freer, WQ1).
  if (mids_in_use() >= max_mids_) return nullptr;
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
    // Published before the waiter leaves the queue: a caller that finds the queue empty
    // (wait:W4) comes after the hand-off's linearization point, the publication ((atlas:A2),
    // with G > 0 the live state (atlas:G2)), so it never overtakes this waiter.
    waiter->mid = PublishAtIndex(index, waiter->context);  // (atlas:A2)
    waits_.Unlink(waiter);
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

AtlasResult AtlasCore::Enqueue(Waiter* waiter, const WaitRequest& request) noexcept {
  Waiter* served = nullptr;
  {
    const std::lock_guard<Mutex> lock(waits_.mutex());
    // A waiter still queued keeps what it holds (its fields are only written below).
    if (waits_.Linked(waiter) && waits_.Contains(waiter)) return AtlasResult::kInvalidArgument;
    waiter->context = request.context;
    waiter->use_reserve = request.use_reserve;
    waiter->complete = request.complete;
    waiter->user = request.user;
    waiter->user_routine = request.user_routine;
    waiter->mid = 0;
    waits_.PushBack(waiter);  // (wait:W2)
    // (wait:W5) seq_cst fence: WQ1's Dekker pair. Either this waiter's tries below see a
    // freer's push (stack:S2), or that freer's count load (wait:W1) sees this waiter. Under
    // ThreadSanitizer, which ignores fences, the seq_cst RMW form (asymmetric_fence.h).
    SeqCstFence();
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

AtlasResult AtlasCore::AssociateAsync(const WaitRequest& request, Waiter* waiter,
                                      Mid* mid_out) noexcept {
  if (request.context == nullptr || mid_out == nullptr || waiter == nullptr ||
      request.complete == nullptr) {
    return AtlasResult::kInvalidArgument;
  }
  // With nobody queued, one lock-free try first; with waiters queued the caller goes behind
  // them at once (WQ3): the enqueue serves the queue, this waiter included, under one lock.
  if (!waits_.maybe_waiting()) {
    const AtlasResult now = AssociateUnqueued(request.context, mid_out, request.use_reserve);
    if (now != AtlasResult::kAllInUse) return now;
  }
  const AtlasResult queued = Enqueue(waiter, request);
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
  waiter.queue = nullptr;
  const AtlasResult queued = Enqueue(
      &waiter, {.context = context, .use_reserve = use_reserve, .complete = &WakeParked,
                .user = &parker});
  if (queued == AtlasResult::kOk) {
    *mid_out = waiter.mid;
    return AtlasResult::kOk;
  }
  if (!parker.SleepUntilServed(deadline)) {
    // The deadline passed: leave the queue, unless a hand-off took us first - then it is
    // completing, and its MID is ours.
    {
      const std::lock_guard<Mutex> lock(waits_.mutex());
      if (waits_.Linked(&waiter)) {
        waits_.Unlink(&waiter);
        return AtlasResult::kTimeout;
      }
    }
    parker.SleepUntilServed({});
  }
  *mid_out = waiter.mid;
  return AtlasResult::kOk;
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
