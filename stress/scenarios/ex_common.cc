#include "scenarios/ex_common.h"

#include <algorithm>
#include <cstddef>
#include <utility>

namespace midatlas::stress {

ExShape::ExShape(std::uint32_t max, std::uint32_t genbits, std::vector<Mid> excluded)
    : max_(max),
      genbits_(genbits),
      gen_mask_((1U << genbits) - 1),
      index_mask_((1U << (16 - genbits)) - 1),
      excluded_(std::move(excluded)) {
  std::sort(excluded_.begin(), excluded_.end());
  excluded_.erase(std::unique(excluded_.begin(), excluded_.end()), excluded_.end());
  // An index is wholly excluded when each of its 2^G values is.
  std::vector<std::uint32_t> per_index(index_space(), 0);
  for (const Mid value : excluded_) ++per_index[IndexOf(value)];
  usable_.assign(index_space(), false);
  std::uint32_t taken = 0;
  for (std::uint32_t index = 0; index < index_space() && taken < max_; ++index) {
    if (per_index[index] == gen_mask_ + 1) continue;
    usable_[index] = true;
    ++taken;
  }
}

bool ExShape::Fits() const {
  return max_ <= index_space() &&
         static_cast<std::uint32_t>(std::count(usable_.begin(), usable_.end(), true)) == max_;
}

ExShape ExShape::Draw(std::uint32_t max, std::uint32_t genbits, std::mt19937_64& rng) {
  if (max > (1U << (16 - genbits))) {
    Fail("--max=%u does not fit 2^(16 - genbits=%u) indexes", max, genbits);
  }
  const std::uint32_t used = std::min(max, 1U << (16 - genbits));
  const auto index = static_cast<std::uint32_t>(rng() % used);
  const auto gen = static_cast<std::uint32_t>(rng() % (1U << genbits));
  const auto random_value =
      static_cast<Mid>(genbits == 0 ? index : (gen << (16 - genbits)) | index);
  // The most exclusions that leave room for max MIDs.
  for (std::size_t keep = 3; keep > 0; --keep) {
    std::vector<Mid> excluded = {0, 0xFFFF, random_value};
    excluded.resize(keep);
    ExShape shape(max, genbits, std::move(excluded));
    if (shape.Fits()) return shape;
  }
  return {max, genbits, {}};
}

bool ExShape::IsExcluded(Mid value) const {
  return std::binary_search(excluded_.begin(), excluded_.end(), value);
}

std::uint32_t ExShape::NextGen(std::uint32_t index, std::uint32_t last) const {
  for (std::uint32_t step = 1; step <= gen_mask_ + 1; ++step) {
    const std::uint32_t gen = (last + step) & gen_mask_;
    if (!IsExcluded(ValueOf(gen, index))) return gen;
  }
  return last;  // a wholly excluded index, which is never handed out
}

IndexClaims::IndexClaims(const ExShape& shape) : shape_(shape), owner_(shape.index_space()) {
  Reset();
}

void IndexClaims::Claim(Mid value, const char* who, Local& local) {
  local.checks += 4;
  const std::uint32_t index = shape_.IndexOf(value);
  if (shape_.IsExcluded(value)) Fail("%s: excluded value %u handed out", who, value);
  if (!shape_.IsUsable(index)) {
    Fail("%s: MID %u of index %u, not one of the lowest %u usable indexes", who, value, index,
         shape_.max());
  }
  if (owner_[index].exchange(1, std::memory_order_relaxed) != 0) {
    Fail("%s: MID %u handed out while its index %u was still held", who, value, index);
  }
  if (held_.fetch_add(1, std::memory_order_relaxed) + 1 > static_cast<std::int64_t>(shape_.max())) {
    Fail("%s: more than max %u MIDs held at once", who, shape_.max());
  }
}

void IndexClaims::Release(Mid value) {
  owner_[shape_.IndexOf(value)].store(0, std::memory_order_relaxed);
  held_.fetch_sub(1, std::memory_order_relaxed);
}

void IndexClaims::Reset() {
  for (auto& owner : owner_) owner.store(0, std::memory_order_relaxed);
  held_.store(0, std::memory_order_relaxed);
}

void CheckTakesMaxAgain(const ExShape& shape, const EndCalls& calls, const char* what,
                        Local& local) {
  local.checks += 1;
  if (calls.in_use() != 0) {
    Fail("%s end: %u MIDs in use before the refill", what, calls.in_use());
    return;
  }
  // Odd numbers: never a valid pointer, so an atlas that dereferenced one would crash.
  auto context_of = [](std::uint32_t i) {
    return reinterpret_cast<void*>(static_cast<std::uintptr_t>(2 * std::uint64_t{i} + 1));
  };
  std::vector<Mid> taken;
  taken.reserve(shape.max());
  std::vector<bool> seen(shape.index_space(), false);
  for (std::uint32_t i = 0; i < shape.max(); ++i) {
    Mid mid = 0;
    local.checks += 3;
    if (!calls.associate_with_reserve(context_of(i), &mid)) {
      Fail("%s end: association %u of max %u was refused (MIDs were lost)", what, i,
           shape.max());
      return;
    }
    const std::uint32_t index = shape.IndexOf(mid);
    if (shape.IsExcluded(mid) || !shape.IsUsable(index) || seen[index]) {
      Fail("%s end: association %u gave MID %u: excluded, of an unusable index, or of an "
           "index held already",
           what, i, mid);
      return;
    }
    seen[index] = true;
    taken.push_back(mid);
  }
  Mid extra = 0;
  local.checks += 2;
  if (calls.associate_with_reserve(context_of(shape.max()), &extra)) {
    Fail("%s end: association %u beyond max succeeded with MID %u", what, shape.max() + 1,
         extra);
    taken.push_back(extra);
  }
  if (calls.in_use() != shape.max()) {
    Fail("%s end: %u in use with all %u taken", what, calls.in_use(), shape.max());
  }
  for (std::size_t i = 0; i < taken.size(); ++i) {
    local.checks += 2;
    if (calls.map(taken[i]) != context_of(static_cast<std::uint32_t>(i))) {
      Fail("%s end: Map(%u) lost its context", what, taken[i]);
    }
    void* context = nullptr;
    if (!calls.dissociate(taken[i], &context) ||
        context != context_of(static_cast<std::uint32_t>(i))) {
      Fail("%s end: MID %u did not give its context back", what, taken[i]);
    }
  }
  local.checks += 1;
  if (calls.in_use() != 0) Fail("%s end: %u MIDs in use after the refill", what, calls.in_use());
}

}  // namespace midatlas::stress
