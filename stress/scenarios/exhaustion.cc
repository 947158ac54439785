// exhaustion: a small max hammered by all threads: never more than max held (counted and
// checked on every association), no MID held twice; in fill rounds every thread associates
// until refused, and then exactly max are held. Rounds (churn, fill, drain) are separated by
// a barrier whose completion step checks the round.
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

void RunExhaustion(const Flags& flags, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(flags.max, flags.start);
  if (!atlas) return;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const std::uint32_t max = flags.max;
  const int threads = flags.threads;
  HeldMids held(max);
  std::vector<std::vector<Mid>> mine(static_cast<std::size_t>(threads));
  std::vector<std::mt19937_64> rngs = RngsFor(flags.seed, threads);
  const Bounds bounds(flags);
  Local main_local;
  // Phases: 0 churn, 1 fill, 2 drain.
  auto checkpoint = [&](int phase) {
    if (phase == 1) {
      // Every thread associated until refused, and nobody dissociated: exactly max held.
      std::uint32_t mapped = 0;
      for (std::uint32_t m = 0; m < max; ++m) mapped += atlas->Map(static_cast<Mid>(m)) != nullptr;
      main_local.checks += 3;
      if (held.count() != static_cast<std::int64_t>(max) || atlas->mids_in_use() != max ||
          mapped != max) {
        Fail("fill round: every thread was refused, but %" PRId64 " MIDs are held (%u in use, "
             "%u mapped), max %u",
             held.count(), atlas->mids_in_use(), mapped, max);
      }
      tally.rounds.fetch_add(1, std::memory_order_relaxed);
    } else if (phase == 2) {
      ++main_local.checks;
      if (atlas->mids_in_use() != 0) Fail("drain round: %u MIDs in use", atlas->mids_in_use());
    }
    return bounds.Done(tally.ops.load(std::memory_order_relaxed));
  };

  auto worker = [&](int t, int phase) {
    std::mt19937_64& rng = rngs[static_cast<std::size_t>(t)];
    std::vector<Mid>& held_here = mine[static_cast<std::size_t>(t)];
    // Each thread associates its own context, a number that names it.
    void* const context = AsContext(2 * (static_cast<std::uint64_t>(t) + 1) + 1);
    Local local;
    auto associate = [&]() -> bool {
      ++local.ops;
      absl::StatusOr<Mid> mid = atlas->Associate(context);
      if (!mid.ok()) {
        if (!IsAllMidsInUse(mid.status())) Fail("thread %d: Associate failed", t);
        ++local.refused;
        return false;
      }
      held.Claim(*mid, "thread", t, local);
      ++local.checks;
      if (atlas->Map(*mid) != context) Fail("thread %d: Map(%u) is not ours", t, *mid);
      held_here.push_back(*mid);
      return true;
    };
    auto dissociate = [&](std::size_t i) {
      const Mid m = held_here[i];
      held_here[i] = held_here.back();
      held_here.pop_back();
      held.Release(m);
      ++local.ops;
      ++local.checks;
      absl::StatusOr<void*> got = atlas->MapAndDissociate(m);
      if (!got.ok() || *got != context) Fail("thread %d: MapAndDissociate(%u) wrong", t, m);
    };
    if (phase == 0) {
      for (int i = 0; i < 2000 && !Failed(); ++i) {
        if (held_here.empty() || Below(rng, 2) == 0) {
          associate();
        } else {
          dissociate(Below(rng, static_cast<std::uint32_t>(held_here.size())));
        }
      }
      while (!held_here.empty()) dissociate(held_here.size() - 1);
    } else if (phase == 1) {
      while (!Failed() && associate()) {
      }
    } else {
      while (!held_here.empty()) dissociate(held_here.size() - 1);
    }
    // Flushed before the barrier: the checkpoint reads the operations done.
    local.FlushTo(tally);
  };
  RunPhases(threads, 3, worker, checkpoint);
  EndScenario(*atlas, fresh, main_local, tally);
}

}  // namespace midatlas::stress
