// A lock-free stack of free slot indices for one leaf map, with a tagged head (no ABA).
//
// The links live in the leaf's `links()` array, one per slot; the head word packs the top
// index, the number of free slots and an ABA tag:
//
//    63                    34 33                17 16                 0
//   +------------------------+--------------------+--------------------+
//   |        tag (30)        |     free (17)      |      top (17)      |
//   +------------------------+--------------------+--------------------+
//
//   top  = slot index of the first free slot, kNone when the stack is empty, or kFrozen when
//          the leaf is being detached (INVARIANT FS1: a frozen head never changes again).
//   free = number of slots on the stack (0 when frozen).
//   tag  = incremented by every successful CAS (push, pop, freeze), so a CAS that read a head
//          before another thread popped and re-pushed the same top fails (INVARIANT FS2).
//
// The free count living in the head word is what makes freezing safe: a leaf is frozen by one
// CAS that also proves every valid slot is on the stack (INVARIANT FS3: frozen => no MID of the
// leaf is held, and none can be taken again).
//
// Ordering: push is a release CAS and pop an acquire CAS, so everything the previous owner of
// a slot did happens-before the next owner takes it. Both are seq_cst because the leaf-hint
// bitmap protocol (leaf_hints.h) needs a single total order of "stack became empty/non-empty"
// and "hint bit cleared/set"; on x86 and ARMv8 a seq_cst CAS costs what an acq_rel one does.
#ifndef MIDATLAS_SRC_ATLAS_FREE_STACK_H_
#define MIDATLAS_SRC_ATLAS_FREE_STACK_H_

#include <atomic>
#include <cstdint>

#include "instrumentation/atomic.h"
#include "instrumentation/chaos.h"
#include "instrumentation/fault_injection.h"
#include "instrumentation/invariants.h"

namespace midatlas::internal {

class FreeStack {
 public:
  static constexpr std::uint32_t kTopBits = 17;
  static constexpr std::uint32_t kFreeBits = 17;
  static constexpr std::uint32_t kTagBits = 30;
  static constexpr std::uint32_t kNone = (1U << kTopBits) - 1;
  static constexpr std::uint32_t kFrozen = kNone - 1;
  static_assert(kTopBits + kFreeBits + kTagBits == 64, "head word is exactly 64 bits");
  static_assert(kFrozen > 65536, "sentinels must not collide with slot indices 0..65535");
  static_assert((1U << kFreeBits) > 65536, "free count must hold a 65536-slot leaf");

  struct Head {
    std::uint32_t top = kNone;
    std::uint32_t free = 0;
    std::uint32_t tag = 0;

    [[nodiscard]] bool frozen() const noexcept { return top == kFrozen; }
    [[nodiscard]] bool empty() const noexcept { return top == kNone || top == kFrozen; }

    [[nodiscard]] std::uint64_t Pack() const noexcept {
      return static_cast<std::uint64_t>(top) |
             (static_cast<std::uint64_t>(free) << kTopBits) |
             (static_cast<std::uint64_t>(tag & kTagMask) << (kTopBits + kFreeBits));
    }
    static Head Unpack(std::uint64_t word) noexcept {
      return Head{static_cast<std::uint32_t>(word & kTopMask),
                  static_cast<std::uint32_t>((word >> kTopBits) & kFreeMask),
                  static_cast<std::uint32_t>(word >> (kTopBits + kFreeBits))};
    }
  };

  struct PopResult {
    std::uint32_t index = kNone;  // kNone when nothing was popped
    std::uint32_t free_after = 0;
  };

  FreeStack() = default;
  FreeStack(const FreeStack&) = delete;
  FreeStack& operator=(const FreeStack&) = delete;

  // Before the leaf is shared: puts slots [begin, end) on the stack, `begin` on top, so that
  // the lowest index is handed out first.
  void InitUnshared(Atomic<std::uint32_t>* links, std::uint32_t begin,
                    std::uint32_t end) noexcept {
    InitUnshared(links, begin, end, nullptr, nullptr);
  }
  // As above, less the slots s with s + skip_base in [skip, skip_end) (sorted, distinct):
  // those are never on the stack, so they are never handed out (EX1). Returns how many slots
  // are on it.
  std::uint32_t InitUnshared(Atomic<std::uint32_t>* links, std::uint32_t begin,
                             std::uint32_t end, const std::uint32_t* skip,
                             const std::uint32_t* skip_end, std::uint32_t skip_base = 0) noexcept {
    std::uint32_t top = kNone;
    std::uint32_t free = 0;
    // Built from the top down, so that the lowest slot ends on top.
    const std::uint32_t* next_skip = skip_end;
    for (std::uint32_t i = end; i-- > begin;) {
      while (next_skip != skip && *(next_skip - 1) > i + skip_base) --next_skip;
      if (next_skip != skip && *(next_skip - 1) == i + skip_base) continue;
      links[i].store(top, std::memory_order_relaxed);  // unshared
      top = i;
      ++free;
    }
    const Head head{top, free, 0};
    head_.store(head.Pack(), std::memory_order_relaxed);  // published by the install (atlas:A3)
    return free;
  }

  [[nodiscard]] Head Load() const noexcept {
    // (stack:S0) seq_cst: the hint re-check (hints:L2) and the all-in-use double collect
    // (AC6) need this load in the single total order with (stack:S2)-(stack:S4). A plain
    // load on x86.
    return Head::Unpack(head_.load(std::memory_order_seq_cst));
  }

  PopResult Pop(Atomic<std::uint32_t>* links) noexcept {
    // (stack:S1) acquire: pairs with (stack:S2); the link we read next was written before
    // that push.
    std::uint64_t word = head_.load(std::memory_order_acquire);
    while (true) {
      const auto top = static_cast<std::uint32_t>(word & kTopMask);
      if (top >= kFrozen) return PopResult{};  // kNone or kFrozen
      // (stack:S6) relaxed: if `top` was popped and pushed again since we read the head, the
      // link may be stale, but then the tag changed and the CAS (stack:S3) fails (FS2).
      const std::uint32_t next = links[top].load(std::memory_order_relaxed);
      MIDATLAS_CHAOS_POINT();
      // free - 1 and tag + 1 in one add; the tag sits in the top bits, so it wraps mod 2^30.
      const std::uint64_t popped = ((word & ~kTopMask) + kTagOne - kFreeOne) | next;
      // (stack:S3) seq_cst CAS (acquire part pairs with (stack:S2): the previous owner's
      // writes to the slot's context happen-before ours; seq_cst for LH1). On failure `word`
      // holds the value the CAS saw, acquire as (stack:S1), so the next tag derives from the
      // current head, never from a stale copy.
      if (head_.compare_exchange_weak(word, popped, std::memory_order_seq_cst,
                                      std::memory_order_acquire)) {
        return PopResult{top, FreeOf(popped)};
      }
      // Planted fault (test builds only, fault_injection.h): skip the retry and hand out
      // `top` although another thread may have popped it.
      if (kFaultPopNoRetry) return PopResult{top, FreeOf(popped)};
    }
  }

  // Returns the number of free slots after the push. The leaf must not be frozen (FS3: a held
  // slot keeps it from being frozen).
  std::uint32_t Push(Atomic<std::uint32_t>* links, std::uint32_t index) noexcept {
    std::uint64_t word = head_.load(std::memory_order_relaxed);  // validated by the CAS
    while (true) {
      MIDATLAS_INVARIANT((word & kTopMask) != kFrozen, "FS1",
                         "a slot was pushed onto a frozen leaf (FS3: a held slot keeps a leaf "
                         "from being frozen)");
      // (stack:S5) relaxed: published by the release part of (stack:S2).
      links[index].store(static_cast<std::uint32_t>(word & kTopMask), std::memory_order_relaxed);
      MIDATLAS_CHAOS_POINT();
      const std::uint64_t pushed = ((word & ~kTopMask) + kTagOne + kFreeOne) | index;
      // (stack:S2) seq_cst CAS (release part: the slot's link (stack:S5) and everything the
      // old owner did happen-before the next popper's (stack:S1)/(stack:S3) and its link
      // read (stack:S6); seq_cst for LH1).
      if (head_.compare_exchange_weak(word, pushed, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        return FreeOf(pushed);
      }
    }
  }

  // Freezes the stack if all `valid_slots` slots are on it (FS3). Returns true if this call
  // froze it.
  bool TryFreeze(std::uint32_t valid_slots) noexcept {
    std::uint64_t word = head_.load(std::memory_order_relaxed);  // validated by the CAS
    while (true) {
      const Head head = Head::Unpack(word);
      // (The planted fault FREEZE_IGNORES_COUNT, fault_injection.h, skips the count check.)
      if (head.frozen() || (head.free != valid_slots && !kFaultFreezeIgnoresCount)) return false;
      const Head frozen{kFrozen, 0, head.tag + 1};
      // (stack:S4) seq_cst CAS: after it no pop or push can succeed (FS1), and the hint
      // protocol sees it in the same total order as (stack:S2)/(stack:S3).
      if (head_.compare_exchange_weak(word, frozen.Pack(), std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
        return true;
      }
    }
  }

 private:
  static constexpr std::uint64_t kTopMask = (std::uint64_t{1} << kTopBits) - 1;
  static constexpr std::uint64_t kFreeMask = (std::uint64_t{1} << kFreeBits) - 1;
  static constexpr std::uint32_t kTagMask = (1U << kTagBits) - 1;
  static constexpr std::uint64_t kFreeOne = std::uint64_t{1} << kTopBits;
  static constexpr std::uint64_t kTagOne = std::uint64_t{1} << (kTopBits + kFreeBits);

  static std::uint32_t FreeOf(std::uint64_t word) noexcept {
    return static_cast<std::uint32_t>((word >> kTopBits) & kFreeMask);
  }

  Atomic<std::uint64_t> head_{Head{}.Pack()};
};

static_assert(sizeof(FreeStack) == 8, "the head is one word");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "64-bit CAS must be lock-free");

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_FREE_STACK_H_
