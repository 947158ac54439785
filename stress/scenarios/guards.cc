// guards: guarded lookups race with retirements (docs/DESIGN.md 10.7). Writers own MIDs and
// keep replacing each one's request (Reassociate) or removing it (MapAndDissociate), and
// retire every request they took off a MID; its destructor checks that no reader counts
// itself a holder, poisons the request's canary and frees it. Readers hold 1 to 12 guards at
// once (more than one hazard record's slots, so records chain), and check each request's
// canary and MID when they map it and again just before they release it - after writers
// may have retired it. A destructor that ran while a guard was held shows up as a poisoned
// canary, a holder count above zero, a TSan race on the canary or an ASan use after free.
// At the end every request created was destroyed exactly once.
#include <algorithm>
#include <atomic>
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

constexpr std::uint64_t kAlive = 0x600D'CA11'AB1E'0001;
constexpr std::uint64_t kPoisoned = 0xDEAD'BEEF'DEAD'BEEF;
constexpr std::uint32_t kNoMid = 0x10000;  // a placeholder's: maps to no MID

struct Request {
  std::uint64_t canary = kAlive;  // plain: a destructor racing a reader is a TSan report
  std::uint32_t mid = kNoMid;     // plain: written before the request is associated
  // Readers holding a guard on this request. Relaxed: a holder's decrement is ordered before
  // the destructor by its guard's release and the scan that saw it (hp:H4)/(hp:R3).
  std::atomic<int> holders{0};
};

struct Counts {
  std::atomic<std::uint64_t> created{0};    // relaxed: read after the joins
  std::atomic<std::uint64_t> retired{0};    // relaxed: read after the joins
  std::atomic<std::uint64_t> destroyed{0};  // relaxed: read after the joins and the flush
};

void CheckRequest(const Request* request, Mid mid, const char* when, int t) {
  if (request->canary != kAlive) {
    Fail("guards: reader %d %s a destroyed request (canary %#llx) from MID %u", t, when,
         static_cast<unsigned long long>(request->canary), mid);
  } else if (request->mid != mid && request->mid != kNoMid) {
    Fail("guards: reader %d %s MID %u's request, which belongs to MID %u", t, when, mid,
         request->mid);
  }
}

}  // namespace

void RunGuards(const Flags& flags, Tally& tally) {
  Counts counts;
  std::optional<MidAtlas> atlas = NewAtlas(flags.max, flags.start);
  if (!atlas) return;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const int threads = std::max(flags.threads, 2);
  const int writers = std::max(1, threads / 3);
  constexpr std::size_t kMostHeld = 64;
  constexpr std::uint32_t kMostGuards = 12;
  const std::uint32_t hot = std::min<std::uint32_t>(
      flags.max, static_cast<std::uint32_t>(writers) * static_cast<std::uint32_t>(kMostHeld));
  // Each writer's placeholder, associated until the first request replaces it; never retired.
  std::vector<Request> placeholders(static_cast<std::size_t>(writers));
  const Bounds bounds(flags);

  const ContextDestructor destroy = [&counts](void* context) {
    auto* request = static_cast<Request*>(context);
    if (request->holders.load(std::memory_order_relaxed) != 0) {
      Fail("guards: a request was destroyed while %d readers held a guard on it",
           request->holders.load(std::memory_order_relaxed));
    }
    if (request->canary != kAlive) Fail("guards: a request was destroyed twice");
    request->canary = kPoisoned;
    counts.destroyed.fetch_add(1, std::memory_order_relaxed);
    delete request;
  };

  auto writer = [&](int t) {
    Local local;
    std::mt19937_64 rng = RngFor(flags.seed, t);
    Request* placeholder = &placeholders[static_cast<std::size_t>(t)];
    struct Held {
      Mid mid;
      Request* request;
    };
    std::vector<Held> mine;
    auto fresh_request = [&](Mid mid) {
      auto* request = new Request;
      request->mid = mid;  // before the association publishes it (atlas:A2)/(atlas:R2)
      counts.created.fetch_add(1, std::memory_order_relaxed);
      return request;
    };
    auto retire = [&](Request* request) {
      if (request == placeholder) return;
      counts.retired.fetch_add(1, std::memory_order_relaxed);
      atlas->Retire(request, destroy);
    };
    while (bounds.Go(local.ops)) {
      const std::uint32_t dice = Below(rng, 100);
      ++local.ops;
      if (mine.empty() || (dice < 30 && mine.size() < kMostHeld)) {
        absl::StatusOr<Mid> mid = atlas->Associate(placeholder);
        if (!mid.ok()) {
          if (!IsAllMidsInUse(mid.status())) Fail("guards: writer %d: Associate failed", t);
          ++local.refused;
          continue;
        }
        mine.push_back({*mid, placeholder});
        continue;
      }
      const std::size_t i = Below(rng, static_cast<std::uint32_t>(mine.size()));
      Held& held = mine[i];
      if (dice < 75) {
        Request* next = fresh_request(held.mid);
        ++local.checks;
        if (!atlas->Reassociate(held.mid, next).ok()) {
          Fail("guards: writer %d: Reassociate of held MID %u failed", t, held.mid);
        }
        retire(held.request);  // dissociated by the replacement
        held.request = next;
      } else if (dice < 98) {
        ++local.checks;
        absl::StatusOr<void*> got = atlas->MapAndDissociate(held.mid);
        if (!got.ok() || *got != held.request) {
          Fail("guards: writer %d: MapAndDissociate(%u) did not return its request", t,
               held.mid);
        }
        retire(held.request);
        mine[i] = mine.back();
        mine.pop_back();
      } else {
        atlas->FlushRetired();
      }
    }
    for (const Held& held : mine) {
      ++local.ops;
      absl::StatusOr<void*> got = atlas->MapAndDissociate(held.mid);
      if (!got.ok() || *got != held.request) Fail("guards: writer %d: final dissociate", t);
      retire(held.request);
    }
    local.FlushTo(tally);
  };

  auto reader = [&](int t) {
    Local local;
    std::mt19937_64 rng = RngFor(flags.seed, t);
    struct Holding {
      ContextGuard guard;
      Mid mid;
    };
    std::vector<Holding> holding;
    holding.reserve(kMostGuards);
    while (bounds.Go(local.ops)) {
      const std::uint32_t wanted = 1 + Below(rng, kMostGuards);
      for (std::uint32_t g = 0; g < wanted; ++g) {
        const auto mid = static_cast<Mid>(Below(rng, hot));
        ++local.ops;
        ContextGuard guard = atlas->MapGuarded(mid);
        if (!guard) continue;
        auto* request = static_cast<Request*>(guard.get());
        request->holders.fetch_add(1, std::memory_order_relaxed);
        ++local.checks;
        CheckRequest(request, mid, "mapped", t);
        holding.push_back({std::move(guard), mid});
      }
      std::shuffle(holding.begin(), holding.end(), rng);
      for (Holding& held : holding) {
        auto* request = static_cast<Request*>(held.guard.get());
        ++local.checks;
        CheckRequest(request, held.mid, "still held", t);
        request->holders.fetch_sub(1, std::memory_order_relaxed);
        held.guard.Release();
      }
      holding.clear();
      if (Below(rng, 64) == 0) {
        ++local.ops;
        atlas->FlushRetired();
      }
    }
    local.FlushTo(tally);
  };

  RunThreads(threads, [&](int t) { t < writers ? writer(t) : reader(t); });
  Local local;
  atlas->FlushRetired();  // no guard is held now: every retired request goes
  local.checks += 2;
  const std::uint64_t created = counts.created.load(std::memory_order_relaxed);
  const std::uint64_t retired = counts.retired.load(std::memory_order_relaxed);
  const std::uint64_t destroyed = counts.destroyed.load(std::memory_order_relaxed);
  if (retired != created) {
    Fail("guards: %llu requests created, %llu retired", static_cast<unsigned long long>(created),
         static_cast<unsigned long long>(retired));
  }
  if (destroyed != retired) {
    Fail("guards: %llu requests retired, %llu destroyed after the flush",
         static_cast<unsigned long long>(retired), static_cast<unsigned long long>(destroyed));
  }
  tally.Note("destroyed", destroyed);
  EndScenario(*atlas, fresh, local, tally);
}

}  // namespace midatlas::stress
