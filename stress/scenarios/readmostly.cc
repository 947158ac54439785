// readmostly: many readers map random MIDs while few writers churn. Contexts are values that
// encode (MID, generation); per MID the writers publish the newest generation announced
// (before installing it) and the newest one removed (after removing it). A non-null Map(m)
// result must encode m and a generation g with removed_before < g <= announced_after: it was
// associated with m at some moment during the call.
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "harness/harness.h"
#include "midatlas/mid_atlas.h"
#include "scenarios/common.h"
#include "scenarios/scenarios.h"

namespace midatlas::stress {
namespace {

// Context values (odd, never dereferenced):
//   placeholder   (writer << 2) | 3
//   installed     (generation << 18) | (mid << 2) | 1
constexpr std::uint64_t Placeholder(int writer) {
  return (static_cast<std::uint64_t>(writer) << 2) | 3;
}
constexpr std::uint64_t Encode(std::uint32_t mid, std::uint64_t generation) {
  return (generation << 18) | (std::uint64_t{mid} << 2) | 1;
}

}  // namespace

void RunReadMostly(const Flags& flags, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(flags.max, flags.start);
  if (!atlas) return;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const std::uint32_t max = flags.max;
  const int writers = std::max(1, flags.threads / 4);
  const int threads = std::max(flags.threads, writers + 1);
  constexpr std::size_t kMostHeld = 256;
  // Per MID: the newest generation announced (stored before it is installed) and the newest
  // generation removed (raised after it is removed). Generations of one MID only increase.
  std::vector<std::atomic<std::uint64_t>> announced(max);
  std::vector<std::atomic<std::uint64_t>> removed(max);
  for (std::uint32_t m = 0; m < max; ++m) {
    announced[m].store(0, std::memory_order_relaxed);
    removed[m].store(0, std::memory_order_relaxed);
  }
  const std::uint32_t hot = std::min<std::uint32_t>(
      max, static_cast<std::uint32_t>(writers) * static_cast<std::uint32_t>(kMostHeld) + 64);
  const Bounds bounds(flags);

  auto raise_removed = [&](std::uint32_t m, std::uint64_t g) {
    std::uint64_t seen = removed[m].load(std::memory_order_relaxed);
    // release: the removal of g happens-before any reader that acquires this value.
    while (seen < g &&
           !removed[m].compare_exchange_weak(seen, g, std::memory_order_release,
                                             std::memory_order_relaxed)) {
    }
  };

  auto writer = [&](int t) {
    Local local;
    std::mt19937_64 rng = RngFor(flags.seed, t);
    struct Held {
      Mid mid;
      std::uint64_t value;
    };
    std::vector<Held> mine;
    auto install = [&](Held& h, std::uint64_t g) {
      // release store before the install: a reader that sees g in the atlas then sees >= g.
      announced[h.mid].store(g, std::memory_order_release);
      const std::uint64_t value = Encode(h.mid, g);
      ++local.ops;
      ++local.checks;
      if (!atlas->Reassociate(h.mid, AsContext(value)).ok()) {
        Fail("writer %d: Reassociate of held MID %u failed", t, h.mid);
      }
      const std::uint64_t old = h.value;
      h.value = value;
      if ((old & 2) == 0) raise_removed(h.mid, old >> 18);
    };
    while (bounds.Go(local.ops)) {
      const std::uint32_t dice = Below(rng, 100);
      if (mine.empty() || (dice < 35 && mine.size() < kMostHeld)) {
        ++local.ops;
        absl::StatusOr<Mid> mid = atlas->Associate(AsContext(Placeholder(t)));
        if (!mid.ok()) {
          if (!IsAllMidsInUse(mid.status())) Fail("writer %d: Associate failed", t);
          ++local.refused;
          if (mine.empty()) continue;
        } else {
          Held h{*mid, Placeholder(t)};
          install(h, announced[h.mid].load(std::memory_order_relaxed) + 1);
          mine.push_back(h);
        }
        continue;
      }
      const std::size_t i = Below(rng, static_cast<std::uint32_t>(mine.size()));
      Held& h = mine[i];
      if (dice < 65) {
        ++local.ops;
        ++local.checks;
        absl::StatusOr<void*> got = atlas->MapAndDissociate(h.mid);
        if (!got.ok() || AsValue(*got) != h.value) {
          Fail("writer %d: MapAndDissociate(%u) did not return its value", t, h.mid);
        }
        raise_removed(h.mid, h.value >> 18);
        mine[i] = mine.back();
        mine.pop_back();
      } else if (dice < 80) {
        install(h, announced[h.mid].load(std::memory_order_relaxed) + 1);
      } else {
        ++local.ops;
        ++local.checks;
        if (AsValue(atlas->Map(h.mid)) != h.value) Fail("writer %d: own Map(%u) wrong", t, h.mid);
      }
    }
    for (const Held& h : mine) {
      ++local.ops;
      absl::StatusOr<void*> got = atlas->MapAndDissociate(h.mid);
      if (!got.ok() || AsValue(*got) != h.value) Fail("writer %d: final dissociate wrong", t);
    }
    local.FlushTo(tally);
  };

  auto reader = [&](int t) {
    Local local;
    std::mt19937_64 rng = RngFor(flags.seed, t);
    while (bounds.Go(local.ops)) {
      const std::uint32_t m = Below(rng, Below(rng, 8) == 0 ? max : hot);
      // acquire: pairs with raise_removed's release (the removal happened before).
      const std::uint64_t removed_before = removed[m].load(std::memory_order_acquire);
      const std::uint64_t value = AsValue(atlas->Map(static_cast<Mid>(m)));
      // acquire: the announcement was stored before the install that Map's acquire load saw.
      const std::uint64_t announced_after = announced[m].load(std::memory_order_acquire);
      ++local.ops;
      ++local.checks;
      if (value == 0) continue;
      if ((value & 3) == 3) {
        if ((value >> 2) >= static_cast<std::uint64_t>(writers)) {
          Fail("reader %d: Map(%u) returned a placeholder of no writer: %#" PRIx64, t, m, value);
        }
        continue;
      }
      const std::uint64_t mid = (value >> 2) & 0xFFFF;
      const std::uint64_t g = value >> 18;
      if ((value & 3) != 1 || mid != m || g <= removed_before || g > announced_after) {
        Fail("reader %d: Map(%u) returned mid %" PRIu64 " generation %" PRIu64
             ", live during the call were generations (%" PRIu64 ", %" PRIu64 "]",
             t, m, mid, g, removed_before, announced_after);
      }
    }
    local.FlushTo(tally);
  };

  RunThreads(threads, [&](int t) { t < writers ? writer(t) : reader(t); });
  Local local;
  EndScenario(*atlas, fresh, local, tally);
}

}  // namespace midatlas::stress
