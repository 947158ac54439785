// Which subordinate leaf maps are worth trying when the first leaf is full: one bit per leaf
// index 1..leaves-1, set when the leaf is absent (so growing it may succeed) or attached with
// a free slot. Associate takes the lowest set bit, so MIDs stay compact and high leaves drain
// first, which is what lets them be detached.
//
// INVARIANT LH1 (no lost leaf): whenever leaf k is absent, frozen, or has a free slot, and no
// operation on it is between its two steps below, bit k is set.
//   - Popper that empties leaf k:  (hints:L1) clear bit k, then (hints:L2) re-load the head;
//     if it shows a free slot or a freeze, set the bit again.
//   - Pusher that makes leaf k non-empty (free 0 -> 1): (hints:L3) load bit k; if clear, set
//     it (hints:L4).
// All of (hints:L1)-(hints:L4) and the stack's (stack:S2)-(stack:S4) are seq_cst, so in their
// single total order either the popper's re-load (hints:L2) sees the push and re-sets the
// bit, or the push (stack:S2) comes after (hints:L2), hence the pusher's (hints:L3) comes
// after the clear (hints:L1) and sets it.
// A set bit on a full leaf costs one wasted attempt, after which the attempt clears it.
//
// A summary word keeps the scan short: bit w is set whenever hint word w may be non-zero, so
// a search looks only at words that can hold a candidate instead of walking up to 64 words
// (4096 leaves with the narrowest leaf field) past the full low leaves on every associate.
// INVARIANT LH2 (no lost word): whenever hint word w is non-zero, and no Clear or SetIfClear
// of a bit in it is between its steps below, summary bit w is set. The same two-step pattern
// as LH1, one level up, all seq_cst:
//   - A Clear that leaves word w zero: (hints:L6) clear summary bit w, then (hints:L7)
//     re-load word w; if it is non-zero, set the summary bit again (hints:L9).
//   - A SetIfClear that set a bit of word w: (hints:L8) load summary bit w; if clear, set it
//     (hints:L9).
// Either the clearer's re-load (hints:L7) sees the new bit, or that bit's set (hints:L4)
// comes after it, hence the setter's (hints:L8) comes after the summary clear (hints:L6) and
// sets it. A summary bit left set over a zero word costs one extra load in a search.
#ifndef MIDATLAS_SRC_ATLAS_LEAF_HINTS_H_
#define MIDATLAS_SRC_ATLAS_LEAF_HINTS_H_

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <new>

#include "instrumentation/atomic.h"

namespace midatlas::internal {

class LeafHints {
 public:
  static constexpr std::uint32_t kNoLeaf = ~0U;

  // All leaves 1..leaves-1 start as candidates (absent). Returns false if memory is short.
  bool Init(std::uint32_t leaves) noexcept {
    words_ = (leaves + 63) / 64;
    bits_.reset(new (std::nothrow) Atomic<std::uint64_t>[words_ == 0 ? 1 : words_]);
    if (!bits_) return false;
    std::uint64_t summary = 0;
    for (std::uint32_t w = 0; w < words_; ++w) {
      std::uint64_t word = ~std::uint64_t{0};
      const std::uint32_t first = w * 64;
      if (first + 64 > leaves) word = (std::uint64_t{1} << (leaves - first)) - 1;
      if (w == 0) word &= ~std::uint64_t{1};  // leaf 0 is always tried first, never hinted
      bits_[w].store(word, std::memory_order_relaxed);  // published with the atlas
      if (word != 0) summary |= std::uint64_t{1} << w;
    }
    summary_.store(summary, std::memory_order_relaxed);  // published with the atlas
    return true;
  }

  // The lowest hinted leaf >= `from`, or kNoLeaf.
  [[nodiscard]] std::uint32_t FindFirst(std::uint32_t from = 0) const noexcept {
    if (from >= words_ * 64) return kNoLeaf;
    // (hints:L10) relaxed: only says which words to look at; each word is then read with
    // (hints:L5), and a word missed through a stale summary is LH2's transient, which callers
    // already tolerate for LH1 (AC6 confirms "all in use" by walking every leaf).
    std::uint64_t candidates = summary_.load(std::memory_order_relaxed);
    candidates &= ~std::uint64_t{0} << (from / 64);
    while (candidates != 0) {
      const auto w = static_cast<std::uint32_t>(std::countr_zero(candidates));
      candidates &= candidates - 1;
      // (hints:L5) acquire: pairs with the set (hints:L4), so the leaf state that made a bit
      // set is visible.
      std::uint64_t word = bits_[w].load(std::memory_order_acquire);
      if (w == from / 64) word &= ~std::uint64_t{0} << (from % 64);
      if (word != 0) return w * 64 + static_cast<std::uint32_t>(std::countr_zero(word));
    }
    return kNoLeaf;
  }

  void Clear(std::uint32_t leaf) noexcept {
    const std::uint32_t w = leaf / 64;
    // (hints:L1) seq_cst: in LH1's total order with (stack:S2)-(stack:S4) and (hints:L3).
    const std::uint64_t before = bits_[w].fetch_and(~Bit(leaf), std::memory_order_seq_cst);
    if ((before & ~Bit(leaf)) != 0) return;  // the word keeps other candidates
    // (hints:L6) seq_cst: LH2's clear; in its total order with (hints:L7)-(hints:L9).
    summary_.fetch_and(~WordBit(w), std::memory_order_seq_cst);
    // (hints:L7) seq_cst: LH2's re-check; sees a racing (hints:L4), or that setter's
    // (hints:L8) follows (hints:L6).
    if (bits_[w].load(std::memory_order_seq_cst) != 0) SetSummary(w);
  }

  void SetIfClear(std::uint32_t leaf) noexcept {
    Atomic<std::uint64_t>& word = bits_[leaf / 64];
    // (hints:L3) seq_cst: in LH1's total order; a set bit needs no write (keeps the line
    // shared between the threads that read it).
    if ((word.load(std::memory_order_seq_cst) & Bit(leaf)) == 0) {
      // (hints:L4) seq_cst: pairs with (hints:L5) and is in LH1's and LH2's total orders.
      word.fetch_or(Bit(leaf), std::memory_order_seq_cst);
      SetSummary(leaf / 64);
    }
  }

  [[nodiscard]] bool Test(std::uint32_t leaf) const noexcept {
    // relaxed: diagnostics and tests only.
    return (bits_[leaf / 64].load(std::memory_order_relaxed) & Bit(leaf)) != 0;
  }

  [[nodiscard]] std::size_t bytes() const noexcept { return words_ * sizeof(Atomic<std::uint64_t>); }

 private:
  static std::uint64_t Bit(std::uint32_t leaf) noexcept { return std::uint64_t{1} << (leaf % 64); }
  static std::uint64_t WordBit(std::uint32_t w) noexcept { return std::uint64_t{1} << w; }

  void SetSummary(std::uint32_t w) noexcept {
    // (hints:L8) seq_cst: LH2's load of the summary bit; a set bit needs no write.
    if ((summary_.load(std::memory_order_seq_cst) & WordBit(w)) == 0) {
      // (hints:L9) seq_cst: LH2's set; in its total order with (hints:L6)/(hints:L7).
      summary_.fetch_or(WordBit(w), std::memory_order_seq_cst);
    }
  }

  Atomic<std::uint64_t> summary_{0};
  std::uint32_t words_ = 0;
  std::unique_ptr<Atomic<std::uint64_t>[]> bits_;
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_LEAF_HINTS_H_
