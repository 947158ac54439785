// The quarantine of discarded MIDs (docs/DESIGN.md 10.6): a word and a late context per
// index, allocated on an atlas's first discard, so that an atlas nobody discards from carries
// nothing and its paths test one pointer only where they already missed.
//
// A word is (sequence << 32) | (phase << 16) | mid:
//   mid       the exact value discarded (with G > 0 it carries the generation), so a stale
//             value of the same index is told apart without reading the generation state
//   phase     kIdle, kPending (a discard has claimed the index and not yet taken the
//             context), kDiscarded, or kDiscarded | kLateTaken (a late MapAndDissociate
//             took the late context)
//   sequence  advances on every claim, so that a reader that validates a word by CAS never
//             mistakes the next quarantine of the same index for the one it read (ABA)
//
//   (discard:Q1) every transition of a word (acq_rel CAS)  pairs with (discard:Q3)
//   (discard:Q2) loads a word (acquire)                   pairs with (discard:Q3)
//   (discard:Q3) the claimant's publication (release)
//   (discard:Q7)/(discard:Q8) the late context's cell (relaxed: ordered by the word)
//   (discard:Q4)/(discard:Q5)/(discard:Q6) the count (relaxed)
//   (discard:Q9) publishes the table (release CAS)        pairs with (discard:Q10)
#ifndef MIDATLAS_SRC_ATLAS_DISCARD_TABLE_H_
#define MIDATLAS_SRC_ATLAS_DISCARD_TABLE_H_

#include <cstdint>
#include <memory>

#include "instrumentation/atomic.h"

namespace midatlas::internal {

class DiscardTable {
 public:
  static constexpr std::uint32_t kIdle = 0;
  static constexpr std::uint32_t kPending = 1;
  static constexpr std::uint32_t kDiscarded = 2;
  static constexpr std::uint32_t kLateTaken = 4;

  struct Word {
    std::uint64_t raw;
    [[nodiscard]] std::uint32_t phase() const noexcept { return (raw >> 16) & 0xFFFF; }
    [[nodiscard]] std::uint16_t mid() const noexcept { return raw & 0xFFFF; }
    [[nodiscard]] std::uint64_t sequence() const noexcept { return raw >> 32; }
    [[nodiscard]] bool discarded() const noexcept { return (phase() & kDiscarded) != 0; }
    [[nodiscard]] bool late_taken() const noexcept { return (phase() & kLateTaken) != 0; }
    [[nodiscard]] Word With(std::uint32_t phase, std::uint16_t mid) const noexcept {
      return Word{(raw & ~std::uint64_t{0xFFFFFFFF}) | (std::uint64_t{phase} << 16) | mid};
    }
    [[nodiscard]] Word NextClaim(std::uint16_t mid) const noexcept {
      return Word{((sequence() + 1) << 32) | (std::uint64_t{kPending} << 16) | mid};
    }
  };

  // nullptr when memory is short. Every word starts idle.
  static DiscardTable* Create(std::uint32_t indexes) noexcept;
  static void Destroy(DiscardTable* table) noexcept;
  DiscardTable(const DiscardTable&) = delete;
  DiscardTable& operator=(const DiscardTable&) = delete;

  [[nodiscard]] Word Load(std::uint32_t index) const noexcept {
    // (discard:Q2) acquire: pairs with (discard:Q3)/(discard:Q4), so a discarded phase comes
    // with its late context and the context take before it.
    return Word{words_[index].load(std::memory_order_acquire)};
  }
  // Moves `index` from `expected` to `desired`; false (and *expected reloaded) when the word
  // changed. The only RMW on a word: every transition validates the sequence.
  bool Transition(std::uint32_t index, Word& expected, Word desired) noexcept {
    // (discard:Q1) acq_rel CAS: a claim (idle -> pending), a late take (discarded ->
    // discarded | late taken) or an end (discarded -> idle): of racing transitions from one
    // word exactly one wins. Acquire pairs with the (discard:Q3)/(discard:Q4) it replaces.
    return words_[index].compare_exchange_strong(expected.raw, desired.raw,
                                                 std::memory_order_acq_rel,
                                                 std::memory_order_acquire);
  }
  // The claimant's own transitions out of kPending, to discarded or back to idle (nobody else
  // writes a pending word).
  void Publish(std::uint32_t index, Word word) noexcept {
    // (discard:Q3) release: the take of the context and the late context's store come before
    // the discarded phase, for whoever loads it (discard:Q2) or replaces it (discard:Q1).
    words_[index].store(word.raw, std::memory_order_release);
  }
  void SetLate(std::uint32_t index, void* late) noexcept {
    // (discard:Q7) relaxed: written by the claimant while pending; published by (discard:Q3).
    late_[index].store(late, std::memory_order_relaxed);
  }
  [[nodiscard]] void* LoadLate(std::uint32_t index) const noexcept {
    // (discard:Q8) relaxed: read after (discard:Q2) showed it discarded, and trusted only when
    // the transition that follows validates the word (its sequence) unchanged.
    return late_[index].load(std::memory_order_relaxed);
  }
  // MIDs in quarantine now: discards that published, less ends.
  [[nodiscard]] std::uint32_t count() const noexcept;
  void CountIn() noexcept;
  void CountOut() noexcept;

 private:
  DiscardTable() noexcept = default;
  std::unique_ptr<Atomic<std::uint64_t>[]> words_;
  std::unique_ptr<Atomic<void*>[]> late_;
  alignas(64) Atomic<std::uint32_t> count_{0};
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_DISCARD_TABLE_H_
