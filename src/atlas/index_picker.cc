#include "atlas/index_picker.h"

#include <algorithm>
#include <array>
#include <bit>
#include <new>
#include <utility>

#include "atlas/csprng.h"
#include "instrumentation/chaos.h"
#include "instrumentation/invariants.h"

namespace midatlas::internal {
namespace {

// SeedForTesting's stream numbers: each call takes a new one, so a thread's test generator
// can tell that it was keyed for another picker (or an earlier seed) and must restart.
Atomic<std::uint64_t> next_test_stream{0};

struct TestGenerator {
  std::uint64_t stream = 0;  // the test_stream_ it was keyed for
  ChaCha20Random random;
};
constinit thread_local TestGenerator test_generator;

// std::popcount, without the library call GCC makes for it when the target may lack the
// POPCNT instruction (x86-64's baseline): the parallel bit count, a dozen inline operations,
// three times as fast as the call in the RANDOM fallback's pass over the words.
std::uint32_t CountOnes(std::uint64_t bits) noexcept {
#if defined(__x86_64__) && !defined(__POPCNT__) && !defined(__clang__)
  bits -= (bits >> 1) & 0x5555555555555555U;
  bits = (bits & 0x3333333333333333U) + ((bits >> 2) & 0x3333333333333333U);
  bits = (bits + (bits >> 4)) & 0x0f0f0f0f0f0f0f0fU;
  return static_cast<std::uint32_t>((bits * 0x0101010101010101U) >> 56);
#else
  return static_cast<std::uint32_t>(std::popcount(bits));
#endif
}

// The bit of `bits` that has `rank` set bits below it (rank < popcount(bits)).
std::uint32_t NthSetBit(std::uint64_t bits, std::uint32_t rank) noexcept {
  for (; rank != 0; --rank) bits &= bits - 1;
  return static_cast<std::uint32_t>(std::countr_zero(bits));
}

}  // namespace

std::unique_ptr<IndexPicker> IndexPicker::Create(Policy policy, std::uint32_t space,
                                                 const std::uint32_t* excluded,
                                                 std::uint32_t excluded_count) noexcept {
  if (space == 0 || space > kMaxSpace) return nullptr;
  if (excluded_count > space || (excluded_count != 0 && excluded == nullptr)) return nullptr;
  for (std::uint32_t i = 0; i < excluded_count; ++i) {
    if (excluded[i] >= space || (i != 0 && excluded[i] <= excluded[i - 1])) return nullptr;
  }
  const std::uint32_t word_count = (space + kWordBits - 1) / kWordBits;
  std::unique_ptr<Atomic<std::uint64_t>[]> words(new (std::nothrow)
                                                     Atomic<std::uint64_t>[word_count]);
  if (!words) return nullptr;
  // IP1 at creation: excluded indexes and the padding past the space are set for good.
  std::uint32_t next_excluded = 0;
  for (std::uint32_t w = 0; w < word_count; ++w) {
    std::uint64_t word = 0;
    const std::uint32_t first = w * kWordBits;
    if (space - first < kWordBits) word = ~std::uint64_t{0} << (space - first);
    while (next_excluded < excluded_count && excluded[next_excluded] < first + kWordBits) {
      word |= Bit(excluded[next_excluded++]);
    }
    // (picker:P7) relaxed: creation; the picker is published to other threads by whatever
    // shares it (the atlas's own publication), which orders these stores before every
    // (picker:P1)/(picker:P2).
    words[w].store(word, std::memory_order_relaxed);
  }
  std::unique_ptr<IndexPicker> picker(new (std::nothrow) IndexPicker(
      policy, space, space - excluded_count, std::move(words), word_count));
  return picker;
}

IndexPicker::IndexPicker(Policy policy, std::uint32_t space, std::uint32_t capacity,
                         std::unique_ptr<Atomic<std::uint64_t>[]> words,
                         std::uint32_t word_count) noexcept
    : words_(std::move(words)),
      word_count_(word_count),
      space_(space),
      capacity_(capacity),
      // As many draws as cost about one fallback (a draw takes about 12 ns, the fallback
      // about 1.5 ns per word): whatever the occupancy, a claim then costs at most about twice
      // what the better of the two alone would have (the ski-rental bound).
      rejection_tries_(std::clamp<std::uint32_t>(word_count / 8, 2, 128)),
      policy_(policy) {}

IndexPicker::~IndexPicker() = default;

std::uint64_t IndexPicker::LoadWord(std::uint32_t w) const noexcept {
  // (picker:P1) relaxed: a search reads a word only to choose a candidate bit; the RMW
  // (picker:P2) then decides the claim and carries the ordering. A stale word costs a failed
  // RMW or a missed free index (IP5), never a double claim.
  return words_[w].load(std::memory_order_relaxed);
}

std::uint64_t IndexPicker::SetBit(std::uint32_t w, std::uint32_t bit) noexcept {
  // (picker:P2) acquire: the claim, when the bit was clear (IP2). Pairs with the release
  // (picker:P3) of the index's previous holder: its writes happen-before ours. Setting a bit
  // that is already set changes nothing.
  return words_[w].fetch_or(std::uint64_t{1} << bit, std::memory_order_acquire);
}

std::uint64_t IndexPicker::ClearBit(std::uint32_t index) noexcept {
  // (picker:P3) release: frees the index; the holder's writes happen-before the next claim
  // (picker:P2) of it (the RMWs on the word in between continue the release sequence).
  return words_[index / kWordBits].fetch_and(~Bit(index), std::memory_order_release);
}

std::uint32_t IndexPicker::ClaimInWord(std::uint32_t w, std::uint64_t mask) noexcept {
  std::uint64_t word = LoadWord(w);
  for (;;) {
    const std::uint64_t candidates = ~word & mask;
    if (candidates == 0) return kNone;
    const auto bit = static_cast<std::uint32_t>(std::countr_zero(candidates));
    MIDATLAS_CHAOS_POINT();
    const std::uint64_t before = SetBit(w, bit);
    if ((before & (std::uint64_t{1} << bit)) == 0) return w * kWordBits + bit;
    word = before;  // a racing claim took it: go on with the word as that RMW saw it
  }
}

std::uint32_t IndexPicker::ClaimFirstFreeFrom(std::uint32_t start) noexcept {
  // One pass: start's word from `start` on, the words after it, then (wrapped) the words
  // before it and start's word below `start`: word_count_ + 1 steps, each index once.
  const std::uint32_t first_word = start / kWordBits;
  const std::uint64_t below_start = Bit(start) - 1;
  for (std::uint32_t step = 0; step <= word_count_; ++step) {
    std::uint32_t w = first_word + step;
    if (w >= word_count_) w -= word_count_;
    std::uint64_t mask = ~std::uint64_t{0};
    if (step == 0) {
      mask = ~below_start;
    } else if (step == word_count_) {
      mask = below_start;
    }
    const std::uint32_t index = ClaimInWord(w, mask);
    if (index != kNone) return index;
  }
  return kNone;
}

std::uint32_t IndexPicker::ClaimCyclic() noexcept {
  // (picker:P4) relaxed: the cursor only says where to start; the claim itself is
  // (picker:P2), and nothing else is read through the cursor.
  std::uint64_t cursor = cursor_.load(std::memory_order_relaxed);
  const auto start = static_cast<std::uint32_t>(cursor % space_);
  const std::uint32_t index = ClaimFirstFreeFrom(start);
  if (index == kNone) return kNone;
  const std::uint32_t distance = index >= start ? index - start : index + space_ - start;
  const std::uint64_t past_index = cursor + distance + 1;
  MIDATLAS_CHAOS_POINT();
  // IP3: move the cursor past the index, unless a racing claim already moved it further.
  // (picker:P5) relaxed: a hint that orders nothing (as (picker:P4)); the CAS only keeps the
  // position from moving backward. A failed CAS reloads the cursor and loops only while it
  // is still behind.
  while (cursor < past_index &&
         !cursor_.compare_exchange_weak(cursor, past_index, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
  }
  return index;
}

std::uint32_t IndexPicker::ClaimRandom(ChaCha20Random& random) noexcept {
  // Rejection sampling: each draw is uniform over the space, and the first one that is free
  // is taken, so the index is uniform over the free ones (IP4).
  for (std::uint32_t tries = 0; tries < rejection_tries_; ++tries) {
    const std::uint32_t index = random.Below(space_);
    const std::uint32_t w = index / kWordBits;
    if ((LoadWord(w) & Bit(index)) != 0) continue;
    MIDATLAS_CHAOS_POINT();
    if ((SetBit(w, index % kWordBits) & Bit(index)) == 0) return index;
  }
  return ClaimRandomRank(random);
}

std::uint32_t IndexPicker::ClaimRandomRank(ChaCha20Random& random) noexcept {
  // A uniform rank among the free indexes, then the free index of that rank: one pass of
  // loads and popcounts over the words, whatever the occupancy, then a walk over the counts
  // it kept and one more load.
  std::array<std::uint8_t, kMaxSpace / kWordBits> free_in_word;  // each count <= 64
  for (;;) {
    std::uint32_t free = 0;
    for (std::uint32_t w = 0; w < word_count_; ++w) {
      free_in_word[w] = static_cast<std::uint8_t>(CountOnes(~LoadWord(w)));
      free += free_in_word[w];
    }
    if (free == 0) return kNone;
    std::uint32_t rank = random.Below(free);
    std::uint32_t w = 0;
    while (rank >= free_in_word[w]) rank -= free_in_word[w++];  // w < word_count_: rank < free
    const std::uint64_t clear = ~LoadWord(w);
    if (rank < CountOnes(clear)) {
      const std::uint32_t bit = NthSetBit(clear, rank);
      MIDATLAS_CHAOS_POINT();
      if ((SetBit(w, bit) & (std::uint64_t{1} << bit)) == 0) return w * kWordBits + bit;
    }
    // A racing claim took the index of that rank, or enough free indexes of its word that the
    // rank is past them (a racing release only adds free indexes): draw again. Each retry
    // means another claim succeeded, so this stays lock-free.
  }
}

ChaCha20Random& IndexPicker::Generator() noexcept {
  if (test_stream_ == 0) [[likely]] return ThreadRandom();
  TestGenerator& generator = test_generator;
  if (generator.stream != test_stream_) {
    generator.random.KeyForTesting(test_seed_);
    generator.stream = test_stream_;
  }
  return generator.random;
}

std::uint32_t IndexPicker::Claim() noexcept {
  if (policy_ == Policy::kCyclic) return ClaimCyclic();
  return ClaimRandom(Generator());
}

void IndexPicker::Release(std::uint32_t index) noexcept {
  MIDATLAS_INVARIANT(index < space_, "IP1", "Release of an index outside the space");
  const std::uint64_t before = ClearBit(index);
  MIDATLAS_INVARIANT((before & Bit(index)) != 0, "IP1", "Release of an index that is free");
  static_cast<void>(before);
}

bool IndexPicker::IsClaimed(std::uint32_t index) const noexcept {
  MIDATLAS_INVARIANT(index < space_, "IP1", "IsClaimed of an index outside the space");
  return (LoadWord(index / kWordBits) & Bit(index)) != 0;
}

std::size_t IndexPicker::bytes() const noexcept {
  return sizeof(IndexPicker) + std::size_t{word_count_} * sizeof(Atomic<std::uint64_t>);
}

void IndexPicker::SeedForTesting(std::uint64_t seed) noexcept {
  test_seed_ = seed;
  // (picker:P6) relaxed: only the number's uniqueness matters; the picker's fields reach
  // other threads with the picker itself (see Generator).
  test_stream_ = next_test_stream.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace midatlas::internal
