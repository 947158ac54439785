// teardown: IterateAndRemove races with dissociates and reassociates of the MIDs it removes:
// every context reaches exactly one owner (the iterator, the dissociating thread, or -
// replaced by Reassociate - the replacing thread). Each round also fills a second atlas from
// all threads and destroys it: the destructor receives each context left in it exactly once.
#include <algorithm>
#include <atomic>
#include <cinttypes>
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

void RunTeardown(const Flags& flags, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(flags.max, flags.start);
  if (!atlas) return;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const int threads = std::max(flags.threads, 2);
  const int iterators = threads >= 4 ? 2 : 1;
  const std::uint32_t per_thread =
      std::max<std::uint32_t>(1, std::min<std::uint32_t>(
                                     512, flags.max / static_cast<std::uint32_t>(threads)));
  // Tokens live per round; deques of stable addresses per thread.
  std::vector<std::vector<std::unique_ptr<Token>>> tokens(static_cast<std::size_t>(threads));
  std::vector<std::vector<std::unique_ptr<Token>>> side_tokens(static_cast<std::size_t>(threads));
  std::optional<MidAtlas> side;
  std::atomic<std::uint64_t> side_destroyed{0};
  auto new_side = [&] {
    side = NewAtlas(65535, 1, [&side_destroyed](void* p) {
      Deliver(static_cast<Token*>(p), "destructor");
      side_destroyed.fetch_add(1, std::memory_order_relaxed);
    });
  };
  new_side();
  // What each thread keeps from the fill to the race: the MIDs it filled, with the token each
  // maps to now.
  struct Held {
    Mid mid;
    Token* current;
  };
  std::vector<std::vector<Held>> held(static_cast<std::size_t>(threads));
  std::vector<std::mt19937_64> rngs = RngsFor(flags.seed, threads);
  const Bounds bounds(flags);
  Local main_local;
  // Phases: 0 fill, 1 race.
  auto checkpoint = [&](int phase) {
    if (phase == 1) {
      // Race over: every MID removed by someone, every token that entered delivered once.
      main_local.checks += 2;
      if (atlas->mids_in_use() != 0) Fail("teardown: %u MIDs in use", atlas->mids_in_use());
      std::uint64_t side_count = 0;
      for (auto& list : tokens) {
        for (auto& token : list) {
          ++main_local.checks;
          const int got = token->deliveries.load(std::memory_order_relaxed);
          if (got != (token->entered ? 1 : 0)) {
            Fail("teardown: a context of MID %u reached %d owners", token->mid, got);
          }
        }
        list.clear();
      }
      for (auto& list : side_tokens) side_count += list.size();
      side.reset();  // destroy with contexts left: each to the destructor once
      ++main_local.checks;
      if (side_destroyed.load(std::memory_order_relaxed) != side_count) {
        Fail("teardown: destruction handed out %" PRIu64 " contexts, %" PRIu64 " were left",
             side_destroyed.load(std::memory_order_relaxed), side_count);
      }
      for (auto& list : side_tokens) {
        for (auto& token : list) {
          ++main_local.checks;
          if (token->deliveries.load(std::memory_order_relaxed) != 1) {
            Fail("teardown: destruction handed a context out %d times",
                 token->deliveries.load(std::memory_order_relaxed));
          }
        }
        list.clear();
      }
      side_destroyed.store(0, std::memory_order_relaxed);
      new_side();
      tally.rounds.fetch_add(1, std::memory_order_relaxed);
    }
    return bounds.Done(tally.ops.load(std::memory_order_relaxed));
  };

  auto worker = [&](int t, int phase) {
    std::mt19937_64& rng = rngs[static_cast<std::size_t>(t)];
    std::vector<Held>& mine = held[static_cast<std::size_t>(t)];
    auto& list = tokens[static_cast<std::size_t>(t)];
    auto& side_list = side_tokens[static_cast<std::size_t>(t)];
    Local local;
    if (phase == 0) {
      mine.clear();
      if (t >= iterators) {
        for (std::uint32_t i = 0; i < per_thread; ++i) {
          list.push_back(std::make_unique<Token>());
          Token* token = list.back().get();
          ++local.ops;
          absl::StatusOr<Mid> mid = atlas->Associate(token);
          if (!mid.ok()) {
            ++local.refused;  // the atlas is shared by all fillers; full is fine
            break;
          }
          token->mid = *mid;
          token->entered = true;
          mine.push_back(Held{*mid, token});
        }
      }
      // Everyone fills the atlas that will be destroyed with contexts left.
      for (std::uint32_t i = 0; i < per_thread; ++i) {
        side_list.push_back(std::make_unique<Token>());
        ++local.ops;
        if (!side->Associate(side_list.back().get()).ok()) {
          Fail("teardown: Associate on the side atlas failed");
          break;
        }
      }
    } else if (t < iterators) {
      ++local.ops;
      atlas->IterateAndRemove([](void* p) { Deliver(static_cast<Token*>(p), "iterator"); });
    } else {
      std::shuffle(mine.begin(), mine.end(), rng);
      for (Held& h : mine) {
        for (int step = 0; step < 3; ++step) {
          const std::uint32_t dice = Below(rng, 100);
          ++local.ops;
          ++local.checks;
          if (dice < 40) {
            void* got = atlas->Map(h.mid);
            if (got != nullptr && got != h.current) Fail("teardown: Map(%u) wrong", h.mid);
          } else if (dice < 75) {
            list.push_back(std::make_unique<Token>());
            Token* replacement = list.back().get();
            replacement->mid = h.mid;
            if (atlas->Reassociate(h.mid, replacement).ok()) {
              replacement->entered = true;
              Deliver(h.current, "reassociating thread");
              h.current = replacement;
            }
          } else {
            absl::StatusOr<void*> got = atlas->MapAndDissociate(h.mid);
            if (got.ok()) {
              if (*got != h.current) Fail("teardown: MapAndDissociate(%u) wrong", h.mid);
              Deliver(h.current, "dissociating thread");
            }
            break;
          }
        }
      }
    }
    local.FlushTo(tally);
  };
  RunPhases(threads, 2, worker, checkpoint);
  side.reset();
  for (auto& list : tokens) list.clear();
  EndScenario(*atlas, fresh, main_local, tally);
}

}  // namespace midatlas::stress
