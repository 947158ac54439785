// What the quarantine and waiting scenarios share (late.cc, waiting.cc): the shape of an atlas
// created with generation bits and excluded values - which indexes it may hand out, which
// generation each association of an index must carry (docs/DESIGN.md 10.1, 10.3) - the test's
// own record of which indexes are held, and the end check that every MID can be taken again
// exactly max times, whichever API (C or C++) the scenario drives.
#ifndef MIDATLAS_STRESS_SCENARIOS_EX_COMMON_H_
#define MIDATLAS_STRESS_SCENARIOS_EX_COMMON_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "harness/harness.h"
#include "midatlas/mid_atlas.h"

namespace midatlas::stress {

// The shape of an atlas with G generation bits and excluded values: MID = gen << (16 - G) |
// index; the indexes handed out are the lowest max ones not wholly excluded (with G = 0 an
// index is a value); each time an index is handed out again its generation advances by one
// (mod 2^G), skipping excluded values, starting from generation 0.
class ExShape {
 public:
  // Exclusions drawn from `rng`: SMB1's 0 and 0xFFFF, and one value of a used index with a
  // random generation, so that a generation of an index in use is skipped; fewer when max
  // leaves no room for them. Reports a failure (via Fail) for a max above 2^(16 - G).
  static ExShape Draw(std::uint32_t max, std::uint32_t genbits, std::mt19937_64& rng);

  [[nodiscard]] std::uint32_t max() const { return max_; }
  [[nodiscard]] std::uint32_t genbits() const { return genbits_; }
  [[nodiscard]] const std::vector<Mid>& excluded() const { return excluded_; }
  // Indexes 0 .. index_space() - 1 exist; values of the same index differ in generation.
  [[nodiscard]] std::uint32_t index_space() const { return index_mask_ + 1; }
  [[nodiscard]] std::uint32_t IndexOf(Mid value) const { return value & index_mask_; }
  [[nodiscard]] std::uint32_t GenOf(Mid value) const {
    return genbits_ == 0 ? 0 : std::uint32_t{value} >> (16 - genbits_);
  }
  [[nodiscard]] Mid ValueOf(std::uint32_t gen, std::uint32_t index) const {
    return static_cast<Mid>(genbits_ == 0 ? index : (gen << (16 - genbits_)) | index);
  }
  [[nodiscard]] bool IsExcluded(Mid value) const;
  // One of the lowest max indexes not wholly excluded.
  [[nodiscard]] bool IsUsable(std::uint32_t index) const {
    return index < usable_.size() && usable_[index];
  }
  // The generation "before" an index's first association: its first is the next one.
  [[nodiscard]] std::uint32_t NoGeneration() const { return gen_mask_; }
  // The generation the association of `index` after one of generation `last` must carry.
  [[nodiscard]] std::uint32_t NextGen(std::uint32_t index, std::uint32_t last) const;

 private:
  ExShape(std::uint32_t max, std::uint32_t genbits, std::vector<Mid> excluded);
  // Whether an atlas of this shape can exist (max fits the indexes not wholly excluded).
  [[nodiscard]] bool Fits() const;

  std::uint32_t max_;
  std::uint32_t genbits_;
  std::uint32_t gen_mask_;
  std::uint32_t index_mask_;
  std::vector<Mid> excluded_;  // sorted, distinct
  std::vector<bool> usable_;   // per index
};

// The test's record of the indexes held, kept next to the atlas's: an excluded value or an
// index the atlas may not hand out, an index handed to a second holder, or more than max held
// at once is a violation. Relaxed throughout: the exchange detects a second holder by its
// atomicity alone, and the count is compared only with no call running.
class IndexClaims {
 public:
  explicit IndexClaims(const ExShape& shape);
  // Records that the atlas just handed out `value` (to `who`).
  void Claim(Mid value, const char* who, Local& local);
  // Records that `value` is about to be freed; called while it is still held, so that the
  // Claim of its index, once the atlas hands it out again, finds it free.
  void Release(Mid value);
  [[nodiscard]] std::int64_t count() const { return held_.load(std::memory_order_relaxed); }
  // Forgets everything (a new atlas); with no call running.
  void Reset();

 private:
  const ExShape& shape_;
  std::vector<std::atomic<std::uint8_t>> owner_;  // 1 while held
  std::atomic<std::int64_t> held_{0};
};

// The calls the end check needs, on whichever API the scenario drives.
struct EndCalls {
  // Associates with the reserve flag: true with *mid set, false when refused as all in use
  // (any other answer is reported by the callee, which then returns false too).
  std::function<bool(void* context, Mid* mid)> associate_with_reserve;
  std::function<void*(Mid mid)> map;
  // Map-and-dissociate: true with *context set, false when not in use.
  std::function<bool(Mid mid, void** context)> dissociate;
  std::function<std::uint32_t()> in_use;
};

// With nothing held and nobody waiting: max associations succeed, each with a value not
// excluded, of a usable index, no index twice, each mapping to its context; one more is
// refused; each is freed again, giving its context back; nothing is left in use. `what` names
// the scenario in failures.
void CheckTakesMaxAgain(const ExShape& shape, const EndCalls& calls, const char* what,
                        Local& local);

}  // namespace midatlas::stress

#endif  // MIDATLAS_STRESS_SCENARIOS_EX_COMMON_H_
