#include "scenarios/common.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace midatlas::stress {

std::optional<MidAtlas> NewAtlas(std::uint32_t max, std::uint32_t start,
                                 ContextDestructor destructor) {
  absl::StatusOr<MidAtlas> created = MidAtlas::Create(
      {.max_mids = max, .initial_mids = start, .context_destructor = std::move(destructor)});
  if (!created.ok()) {
    Fail("Create(%u, %u) failed: %s", max, start, created.status().ToString().c_str());
    return std::nullopt;
  }
  return *std::move(created);
}

void Deliver(Token* token, const char* to) {
  if (token->deliveries.fetch_add(1, std::memory_order_relaxed) != 0) {
    Fail("a context (MID %u) was handed to a second owner (%s)", token->mid, to);
  }
}

HeldMids::HeldMids(std::uint32_t max) : max_(max), owner_(max) {
  for (auto& owner : owner_) owner.store(0, std::memory_order_relaxed);  // before any thread
}

void HeldMids::Claim(Mid mid, const char* role, int t, Local& local) {
  local.checks += 3;
  if (mid >= max_) {
    Fail("%s %d: MID %u not below max %u", role, t, mid, max_);
  } else if (owner_[mid].exchange(1, std::memory_order_relaxed) != 0) {
    Fail("%s %d: MID %u handed out while still held", role, t, mid);
  }
  if (held_.fetch_add(1, std::memory_order_relaxed) + 1 > static_cast<std::int64_t>(max_)) {
    Fail("%s %d: more than max %u MIDs held at once", role, t, max_);
  }
}

void HeldMids::Release(Mid mid) {
  if (mid < max_) owner_[mid].store(0, std::memory_order_relaxed);
  held_.fetch_sub(1, std::memory_order_relaxed);
}

void CheckDrainedAndReusable(MidAtlas& atlas, std::size_t fresh_bytes, Local& local) {
  const std::uint32_t max = atlas.max_mids();
  local.checks += 2;
  if (atlas.mids_in_use() != 0) Fail("end: %u MIDs still in use", atlas.mids_in_use());
  for (std::uint32_t m = 0; m < 65536; ++m) {
    ++local.checks;
    if (atlas.Map(static_cast<Mid>(m)) != nullptr) {
      Fail("end: MID %u maps to a context with nothing in use", m);
      return;
    }
  }
  // Odd numbers: never a valid pointer, so an atlas that dereferenced one would crash.
  auto context_of = [](std::uint64_t i) { return AsContext(2 * i + 1); };
  std::vector<Mid> taken;
  taken.reserve(max);
  std::vector<bool> seen(65536, false);
  for (std::uint32_t i = 0; i < max; ++i) {
    absl::StatusOr<Mid> mid = atlas.Associate(context_of(i));
    ++local.checks;
    if (!mid.ok() || *mid >= max || seen[*mid]) {
      Fail("end: association %u of %u failed, was not below max or repeated a MID (MIDs were "
           "lost): %s",
           i, max, mid.ok() ? "a MID came back" : mid.status().ToString().c_str());
      return;
    }
    seen[*mid] = true;
    taken.push_back(*mid);
  }
  local.checks += 2;
  if (!IsAllMidsInUse(atlas.Associate(context_of(max)).status())) {
    Fail("end: an association beyond max was not refused as all-in-use");
  }
  if (atlas.mids_in_use() != max) {
    Fail("end: mids_in_use() = %u with all %u taken", atlas.mids_in_use(), max);
  }
  for (std::size_t i = 0; i < taken.size(); ++i) {
    local.checks += 2;
    if (atlas.Map(taken[i]) != context_of(i)) Fail("end: Map(%u) lost its context", taken[i]);
    absl::StatusOr<void*> got = atlas.MapAndDissociate(taken[i]);
    if (!got.ok() || *got != context_of(i)) Fail("end: MID %u lost its context", taken[i]);
  }
  const AtlasStats stats = atlas.stats();
  local.checks += 2;
  if (stats.mids_in_use != 0) Fail("end: %u MIDs in use after the refill", stats.mids_in_use);
  if (stats.bytes_attached > 2 * fresh_bytes) {
    Fail("end: %zu bytes attached after draining, fresh atlas had %zu", stats.bytes_attached,
         fresh_bytes);
  }
}

void EndScenario(MidAtlas& atlas, std::size_t fresh_bytes, Local& local, Tally& tally) {
  if (!Failed()) CheckDrainedAndReusable(atlas, fresh_bytes, local);
  local.FlushTo(tally);
}

}  // namespace midatlas::stress
