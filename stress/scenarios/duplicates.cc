// duplicates: every thread map-and-dissociates every MID of a round (duplicate responses):
// exactly one call wins each context. With the planted fault TAKE_NO_XCHG (two dissociates
// both win) it must report "won 2 times" (stress/CMakeLists.txt).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
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

void RunDuplicates(const Flags& flags, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(flags.max, flags.start);
  if (!atlas) return;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const int threads = std::max(flags.threads, 2);
  const std::uint32_t per_thread = std::max<std::uint32_t>(
      1, std::min<std::uint32_t>(64, flags.max / static_cast<std::uint32_t>(threads)));
  std::vector<std::vector<std::unique_ptr<Token>>> tokens(static_cast<std::size_t>(threads));
  std::vector<Mid> round_mids;  // written in the completion step, read by all after it
  std::vector<std::mt19937_64> rngs = RngsFor(flags.seed, threads);
  const Bounds bounds(flags);
  Local main_local;
  // Phases: 0 associate, 1 race.
  auto checkpoint = [&](int phase) {
    if (phase == 0) {
      round_mids.clear();
      for (auto& list : tokens) {
        for (auto& token : list) round_mids.push_back(token->mid);
      }
    } else {
      main_local.checks += 1;
      if (atlas->mids_in_use() != 0) Fail("duplicates: %u MIDs in use", atlas->mids_in_use());
      for (auto& list : tokens) {
        for (auto& token : list) {
          ++main_local.checks;
          if (token->deliveries.load(std::memory_order_relaxed) != 1) {
            Fail("duplicates: MID %u's context was won %d times", token->mid,
                 token->deliveries.load(std::memory_order_relaxed));
          }
        }
        list.clear();
      }
      tally.rounds.fetch_add(1, std::memory_order_relaxed);
    }
    return bounds.Done(tally.ops.load(std::memory_order_relaxed));
  };
  auto worker = [&](int t, int phase) {
    std::mt19937_64& rng = rngs[static_cast<std::size_t>(t)];
    auto& list = tokens[static_cast<std::size_t>(t)];
    Local local;
    if (phase == 0) {
      for (std::uint32_t i = 0; i < per_thread; ++i) {
        auto token = std::make_unique<Token>();
        ++local.ops;
        absl::StatusOr<Mid> mid = atlas->Associate(token.get());
        if (!mid.ok()) {
          ++local.refused;
          break;
        }
        token->mid = *mid;
        list.push_back(std::move(token));
      }
    } else {
      std::vector<Mid> order = round_mids;
      std::shuffle(order.begin(), order.end(), rng);
      for (const Mid m : order) {
        ++local.ops;
        ++local.checks;
        if (Below(rng, 4) == 0) {
          void* seen = atlas->Map(m);
          if (seen != nullptr && static_cast<Token*>(seen)->mid != m) {
            Fail("duplicates: Map(%u) returned another MID's context", m);
          }
        }
        absl::StatusOr<void*> got = atlas->MapAndDissociate(m);
        if (!got.ok()) continue;
        auto* token = static_cast<Token*>(*got);
        if (token->mid != m) Fail("duplicates: MapAndDissociate(%u) returned MID %u's", m, token->mid);
        Deliver(token, "second receiver");
      }
    }
    local.FlushTo(tally);
  };
  RunPhases(threads, 2, worker, checkpoint);
  EndScenario(*atlas, fresh, main_local, tally);
}

}  // namespace midatlas::stress
