// Which free index an associate takes under the CYCLIC and RANDOM reuse policies
// (docs/DESIGN.md section 10.5). COMPACT keeps using the per-leaf free stacks; these two
// policies must choose among *all* free indexes of the index space, which a stack of recently
// freed slots cannot do, so they keep one bit per index instead:
//
//   words_[w] bit b  <->  index 64 * w + b:   1 = claimed, excluded, or past the space
//                                             0 = free
//
// Claim sets a clear bit with one RMW (picker:P2) and Release clears it (picker:P3); excluded
// indexes and the padding past `space` are set at creation and never cleared, so no search
// ever sees them free.
//
//   CYCLIC (Linux idr_alloc_cyclic): the first free index at or after a shared cursor,
//     wrapping at the end of the space; the cursor then moves past it. The cursor is a 64-bit
//     position on the space unrolled (index = position mod space) that never moves backward.
//   RANDOM (RFC 5452): an index drawn uniformly from every free index by the calling thread's
//     ChaCha20 generator (csprng.h): up to `rejection_tries_` uniform draws from the whole
//     space, the first free one taken; then a uniform rank among the free indexes, found by
//     popcounts over the words.
//
// Progress: Claim is lock-free (a retry means another Claim set a bit or moved the cursor),
// Release is wait-free (one RMW), IsClaimed is one load. Claim costs O(space / 64) word loads
// at worst: a scan of the whole bitmap (CYCLIC when the next free index is far away, RANDOM
// when the draws keep hitting claimed indexes).
//
// The picker does not count: the atlas limits how many indexes are held at once. Claim's
// kNone is exact when no Release overlaps it; a caller whose own admission count guarantees
// a free index calls Claim again on kNone (IP5 in docs/DESIGN.md).
//
// Example:
//   auto picker = IndexPicker::Create(IndexPicker::Policy::kRandom, 65536, nullptr, 0);
//   const std::uint32_t index = picker->Claim();   // kNone only when all are claimed
//   ...
//   picker->Release(index);                        // exactly once per Claim
#ifndef MIDATLAS_SRC_ATLAS_INDEX_PICKER_H_
#define MIDATLAS_SRC_ATLAS_INDEX_PICKER_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "instrumentation/atomic.h"

namespace midatlas::internal {

class ChaCha20Random;

class IndexPicker {
 public:
  enum class Policy : std::uint8_t { kCyclic, kRandom };

  static constexpr std::uint32_t kNone = ~0U;
  static constexpr std::uint32_t kMaxSpace = 65536;

  // Indexes [0, space) (space 1..kMaxSpace) less `excluded` (sorted, distinct, each < space;
  // may be null when excluded_count is 0). Every other index starts free. nullptr when memory
  // is short or the arguments break these rules.
  static std::unique_ptr<IndexPicker> Create(Policy policy, std::uint32_t space,
                                             const std::uint32_t* excluded,
                                             std::uint32_t excluded_count) noexcept;

  IndexPicker(const IndexPicker&) = delete;
  IndexPicker& operator=(const IndexPicker&) = delete;
  ~IndexPicker();

  // Claims one free index by the policy and returns it, or kNone when a pass over the whole
  // space found none free (IP5). Lock-free. The acquire RMW that claims it pairs with the
  // Release of its previous holder: that holder's writes happen-before the new holder's reads.
  std::uint32_t Claim() noexcept;

  // Frees an index that Claim returned, exactly once. Wait-free.
  void Release(std::uint32_t index) noexcept;

  // Whether `index` (< space) is claimed now; excluded indexes read as claimed (they are never
  // free). A snapshot: exact for the index's holder and when no call is running.
  [[nodiscard]] bool IsClaimed(std::uint32_t index) const noexcept;

  // The memory the picker holds: the object and its bitmap.
  [[nodiscard]] std::size_t bytes() const noexcept;

  [[nodiscard]] Policy policy() const noexcept { return policy_; }
  [[nodiscard]] std::uint32_t space() const noexcept { return space_; }
  // Indexes that can be claimed: the space less the excluded ones.
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }

  // Tests only: RANDOM draws from a generator keyed by `seed` instead of the system-keyed one,
  // so a single-threaded sequence of calls is reproducible. Call before the picker is shared.
  // Each thread keeps one such generator, restarted from the seed when the thread first claims
  // from a picker seeded since (by this call), so alternating between two seeded pickers on
  // one thread restarts their streams.
  void SeedForTesting(std::uint64_t seed) noexcept;

 private:
  static constexpr std::uint32_t kWordBits = 64;

  IndexPicker(Policy policy, std::uint32_t space, std::uint32_t capacity,
              std::unique_ptr<Atomic<std::uint64_t>[]> words,
              std::uint32_t word_count) noexcept;

  static std::uint64_t Bit(std::uint32_t index) noexcept {
    return std::uint64_t{1} << (index % kWordBits);
  }

  // The bitmap's accessors: every access to a word goes through one of these three.
  [[nodiscard]] std::uint64_t LoadWord(std::uint32_t w) const noexcept;
  // Sets bit `bit` of word `w`; returns the word before, so the caller claimed the index iff
  // that bit was clear.
  std::uint64_t SetBit(std::uint32_t w, std::uint32_t bit) noexcept;
  std::uint64_t ClearBit(std::uint32_t index) noexcept;

  // The lowest free index of word `w` among the bits of `mask`, claimed; kNone if none.
  std::uint32_t ClaimInWord(std::uint32_t w, std::uint64_t mask) noexcept;
  // The first free index at or after `start`, wrapping at the end of the space, claimed.
  std::uint32_t ClaimFirstFreeFrom(std::uint32_t start) noexcept;

  std::uint32_t ClaimCyclic() noexcept;
  std::uint32_t ClaimRandom(ChaCha20Random& random) noexcept;
  std::uint32_t ClaimRandomRank(ChaCha20Random& random) noexcept;
  ChaCha20Random& Generator() noexcept;

  // Read-only after creation: the fields every call reads.
  std::unique_ptr<Atomic<std::uint64_t>[]> words_;
  std::uint32_t word_count_;
  std::uint32_t space_;
  std::uint32_t capacity_;
  std::uint32_t rejection_tries_;  // RANDOM: uniform draws before the rank fallback
  Policy policy_;
  std::uint64_t test_seed_ = 0;
  std::uint64_t test_stream_ = 0;  // 0: the system-keyed generator; else SeedForTesting's

  // CYCLIC: the next position to search from, on the space unrolled (index = cursor mod
  // space). Written by every claim: on a cache line of its own, away from the read-only
  // fields above.
  alignas(64) Atomic<std::uint64_t> cursor_{0};
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_INDEX_PICKER_H_
