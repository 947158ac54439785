#include "reference/flat_atomic_atlas.h"

#include <algorithm>

namespace midatlas::reference {

FlatAtomicAtlas::FlatAtomicAtlas(std::uint32_t max_mids)
    : max_mids_(std::min(max_mids, kSlots)),
      contexts_(new std::atomic<void*>[kSlots]),
      next_(new std::atomic<std::uint32_t>[kSlots]) {
  // relaxed throughout: the object is unshared until the constructor returns, and handing it
  // to other threads is the caller's synchronization.
  for (std::uint32_t mid = 0; mid < kSlots; ++mid) {
    contexts_[mid].store(nullptr, std::memory_order_relaxed);
    next_[mid].store(mid + 1 < max_mids_ ? mid + 1 : kNone, std::memory_order_relaxed);
  }
  head_.store(Pack(max_mids_ > 0 ? 0 : kNone, 0), std::memory_order_relaxed);
}

bool FlatAtomicAtlas::Associate(void* context, std::uint16_t* mid) noexcept {
  if (context == nullptr || mid == nullptr) return false;
  // (F1) acquire: pairs with (F4), so the link of the top we read next was written before it.
  std::uint64_t word = head_.load(std::memory_order_acquire);
  while (true) {
    const std::uint32_t top = Top(word);
    if (top == kNone) return false;
    // relaxed: if `top` was popped and pushed again since we read the head, this link may be
    // stale, but then the tag moved on and the CAS below fails.
    const std::uint32_t next = next_[top].load(std::memory_order_relaxed);
    // (F2) acquire CAS: pairs with the (F4) that freed `top`, so the previous owner's use of
    // the MID happens-before ours. On failure `word` is the head the CAS saw (acquire, as
    // (F1)), and the next tag derives from it, never from a stale copy.
    if (head_.compare_exchange_weak(word, Pack(next, Tag(word) + 1), std::memory_order_acquire,
                                    std::memory_order_acquire)) {
      // A popped slot holds null, so until this store Map and MapAndDissociate see it free.
      // (F3) release: pairs with (F5), (F6), (F8): what the caller wrote into *context
      // before associating is visible to whoever maps the MID to it.
      contexts_[top].store(context, std::memory_order_release);
      *mid = static_cast<std::uint16_t>(top);
      return true;
    }
  }
}

void* FlatAtomicAtlas::Map(std::uint16_t mid) const noexcept {
  // (F5) acquire: pairs with (F3)/(F8). MIDs >= max_mids are never pushed, so their slots stay
  // null and need no range check.
  return contexts_[mid].load(std::memory_order_acquire);
}

void* FlatAtomicAtlas::MapAndDissociate(std::uint16_t mid) noexcept {
  std::atomic<void*>& cell = contexts_[mid];
  // relaxed pre-check: a MID not in use must not write the slot's cache line; a null seen
  // here is a valid answer by itself.
  if (cell.load(std::memory_order_relaxed) == nullptr) return nullptr;
  // (F6) acquire exchange: pairs with (F3)/(F8). Of racing exchanges exactly one reads the
  // non-null context, and only that one pushes the MID back.
  void* context = cell.exchange(nullptr, std::memory_order_acquire);
  if (context != nullptr) Push(mid);
  return context;
}

void FlatAtomicAtlas::Push(std::uint32_t mid) noexcept {
  // relaxed: the CAS below validates it, and a failed CAS hands back the current head.
  std::uint64_t word = head_.load(std::memory_order_relaxed);
  while (true) {
    // relaxed: published by the release CAS below.
    next_[mid].store(Top(word), std::memory_order_relaxed);
    // (F4) release CAS: pairs with (F1)/(F2): the link, and everything the owner did with the
    // MID (its exchange to null included), happen-before the next popper's use of it.
    if (head_.compare_exchange_weak(word, Pack(mid, Tag(word) + 1), std::memory_order_release,
                                    std::memory_order_relaxed)) {
      return;
    }
  }
}

bool FlatAtomicAtlas::Reassociate(std::uint16_t mid, void* new_context) noexcept {
  if (new_context == nullptr) return false;
  std::atomic<void*>& cell = contexts_[mid];
  // (F7) relaxed: the CAS validates the value, and we never read through it.
  void* current = cell.load(std::memory_order_relaxed);
  while (current != nullptr) {
    // (F8) release CAS: pairs with (F5)/(F6), publishing the new context. Comparing against
    // the non-null current value means a MID freed meanwhile is never resurrected.
    if (cell.compare_exchange_weak(current, new_context, std::memory_order_release,
                                   std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

std::size_t FlatAtomicAtlas::bytes() const noexcept {
  return sizeof(*this) +
         kSlots * (sizeof(std::atomic<void*>) + sizeof(std::atomic<std::uint32_t>));
}

}  // namespace midatlas::reference
