// Focused stress scenarios (atlas_stress --scenario=NAME). Each is seeded, bounded by time and
// by total calls, orders its threads with latches and barriers only, checks its invariants on
// every call (not only at the end), and ends with the same check: no MID in use, every MID
// maps to null, all max MIDs can be taken again (one more is refused as all-in-use), and the
// memory attached is back within twice the fresh size.
//
//   reqresp     request/response, as a redirector: senders associate a request and hand the
//               MID through a mailbox to receivers, which map it (one or more responses) and
//               then map-and-dissociate it. The mailbox is relaxed atomics only, so the
//               request's plain fields are ordered from sender to receiver by the atlas's
//               release/acquire alone (TSan checks that edge). A MID handed to two senders at
//               once, a wrong or stale request, or a lost MID is a violation.
//   readmostly  many readers map random MIDs while few writers churn. Contexts are values
//               that encode (MID, generation); per MID the writers publish the newest
//               generation announced (before installing it) and the newest one removed (after
//               removing it). A non-null Map(m) result must encode m and a generation g with
//               removed_before < g <= announced_after: it was associated with m at some
//               moment during the call.
//   exhaustion  a small max hammered by all threads: never more than max held (counted and
//               checked on every association), no MID held twice; in fill rounds every
//               thread associates until refused, and then exactly max are held.
//   teardown    IterateAndRemove races with dissociates and reassociates of the MIDs it
//               removes: every context reaches exactly one owner (the iterator, the
//               dissociating thread, or - replaced by Reassociate - the replacing thread).
//               Each round also fills a second atlas from all threads and destroys it: the
//               destructor receives each context left in it exactly once.
//   duplicates  every thread map-and-dissociates every MID of a round (duplicate responses):
//               exactly one call wins each context.
#include "scenarios.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "midatlas/mid_atlas.h"

namespace midatlas::stress {
namespace {

// Runs `threads` threads to completion: thread t runs first(t) if t < split, else second(t).
template <typename First, typename Second>
void RunThreads(int threads, int split, const First& first, const Second& second) {
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    if (t < split) {
      pool.emplace_back(std::cref(first), t);
    } else {
      pool.emplace_back(std::cref(second), t);
    }
  }
  for (std::thread& thread : pool) thread.join();
}

using Clock = std::chrono::steady_clock;

std::uint64_t g_seed = 0;
const char* g_scenario = "";
std::atomic<bool> g_failed{false};
std::atomic<int> g_reports{0};

[[gnu::format(printf, 1, 2)]] void Fail(const char* format, ...) {
  g_failed.store(true, std::memory_order_relaxed);  // polled between calls only
  if (g_reports.fetch_add(1, std::memory_order_relaxed) >= 20) return;
  char message[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  std::fprintf(stderr, "atlas_stress: FAIL (scenario=%s seed=%" PRIu64 "): %s\n", g_scenario,
               g_seed, message);
}

bool Failed() { return g_failed.load(std::memory_order_relaxed); }

// Calls and checks made, summed over threads at the end.
struct Tally {
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> checks{0};
  std::atomic<std::uint64_t> refused{0};  // all-in-use results
  std::atomic<std::uint64_t> rounds{0};
};

// Per-thread counters, added to the tally when the thread ends.
struct Local {
  std::uint64_t ops = 0;
  std::uint64_t checks = 0;
  std::uint64_t refused = 0;
  void FlushTo(Tally& tally) const {
    tally.ops.fetch_add(ops, std::memory_order_relaxed);
    tally.checks.fetch_add(checks, std::memory_order_relaxed);
    tally.refused.fetch_add(refused, std::memory_order_relaxed);
  }
};

class Bounds {
 public:
  explicit Bounds(const ScenarioOptions& options)
      : deadline_(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(options.seconds))),
        share_(options.ops / static_cast<std::uint64_t>(options.threads) + 1) {}
  // True while a thread that made `ops` calls may go on.
  [[nodiscard]] bool Go(std::uint64_t ops) const {
    return !Failed() && ops < share_ && Clock::now() < deadline_;
  }

 private:
  Clock::time_point deadline_;
  std::uint64_t share_;
};

std::mt19937_64 RngFor(std::uint64_t seed, int thread) {
  return std::mt19937_64(seed ^ (0xD1B54A32D192ED03ULL * (static_cast<std::uint64_t>(thread) + 1)));
}

std::uint32_t Below(std::mt19937_64& rng, std::uint32_t n) {
  return static_cast<std::uint32_t>(rng() % n);
}

void* AsContext(std::uint64_t value) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(value));
}
std::uint64_t AsValue(const void* context) {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(context));
}

std::optional<MidAtlas> NewAtlas(std::uint32_t max, std::uint32_t start,
                                   ContextDestructor destructor = {}) {
  absl::StatusOr<MidAtlas> created = MidAtlas::Create(
      {.max_mids = max, .initial_mids = start, .context_destructor = std::move(destructor)});
  if (!created.ok()) {
    Fail("Create(%u, %u) failed: %s", max, start, created.status().ToString().c_str());
    return nullptr;
  }
  return *std::move(created);
}

// The end of every scenario: nothing in use, nothing lost, memory back near the fresh size.
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
  std::vector<Mid> taken;
  std::vector<bool> seen(65536, false);
  for (std::uint32_t i = 0; i < max; ++i) {
    absl::StatusOr<Mid> mid = atlas.Associate(AsContext(2 * std::uint64_t{i} + 1));
    ++local.checks;
    if (!mid.ok() || *mid >= max || seen[*mid]) {
      Fail("end: association %u of %u failed or repeated a MID (MIDs were lost): %s", i, max,
           mid.ok() ? "duplicate" : mid.status().ToString().c_str());
      return;
    }
    seen[*mid] = true;
    taken.push_back(*mid);
  }
  ++local.checks;
  if (!IsAllMidsInUse(atlas.Associate(AsContext(1)).status())) {
    Fail("end: an association beyond max was not refused as all-in-use");
  }
  for (std::size_t i = 0; i < taken.size(); ++i) {
    ++local.checks;
    absl::StatusOr<void*> got = atlas.MapAndDissociate(taken[i]);
    if (!got.ok() || AsValue(*got) != 2 * i + 1) Fail("end: MID %u lost its context", taken[i]);
  }
  const AtlasStats stats = atlas.stats();
  local.checks += 2;
  if (stats.mids_in_use != 0) Fail("end: %u MIDs in use after the refill", stats.mids_in_use);
  if (stats.bytes_attached > 2 * fresh_bytes) {
    Fail("end: %zu bytes attached after draining, fresh atlas had %zu", stats.bytes_attached,
         fresh_bytes);
  }
}

// ----------------------------------------------------------------------------------------
// reqresp

struct Request {
  std::uint64_t ticket = 0;  // plain: written before Associate, read by the receiver
};

int RunRequestResponse(const ScenarioOptions& options, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(options.max, options.start);
  if (atlas == nullptr) return 1;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const std::uint32_t max = options.max;
  const int senders = std::max(1, options.threads / 2);
  const int threads = std::max(options.threads, senders + 1);
  // owner[m]: 1 while a sender's association of m is live (set after Associate returns,
  // cleared before MapAndDissociate). Relaxed: the exchange detects two holders by atomicity.
  std::vector<std::atomic<std::uint8_t>> owner(max);
  for (auto& o : owner) o.store(0, std::memory_order_relaxed);
  std::atomic<std::int64_t> held{0};
  // Mailboxes: 0 empty, else (ticket << 16 | mid) + 1. Relaxed: adds no edge sender->receiver.
  std::vector<std::atomic<std::uint64_t>> boxes(64);
  for (auto& b : boxes) b.store(0, std::memory_order_relaxed);
  std::atomic<int> senders_left{senders};
  const Bounds bounds(options);
  std::latch start(threads);

  auto sender = [&](int t) {
    Local local;
    std::mt19937_64 rng = RngFor(options.seed, t);
    std::uint64_t seq = 0;
    start.arrive_and_wait();
    while (bounds.Go(local.ops)) {
      // The ticket is kept in a local: once the letter is posted, the receiver may free the
      // request, and the relaxed mailbox orders nothing between our reads and its delete.
      const std::uint64_t ticket = (static_cast<std::uint64_t>(t) << 40) | ++seq;
      auto* request = new Request{ticket};
      ++local.ops;
      absl::StatusOr<Mid> mid = atlas->Associate(request);
      if (!mid.ok()) {
        delete request;
        if (IsAllMidsInUse(mid.status())) {
          ++local.refused;
          continue;
        }
        Fail("sender %d: Associate: %s", t, mid.status().ToString().c_str());
        break;
      }
      local.checks += 3;
      if (*mid >= max) Fail("sender %d: MID %u not below max %u", t, *mid, max);
      if (owner[*mid].exchange(1, std::memory_order_relaxed) != 0) {
        Fail("sender %d: MID %u handed out while still held", t, *mid);
      }
      if (held.fetch_add(1, std::memory_order_relaxed) + 1 > static_cast<std::int64_t>(max)) {
        Fail("sender %d: more than max %u MIDs held", t, max);
      }
      const std::uint64_t letter = ((ticket << 16) | *mid) + 1;
      bool posted = false;
      while (!posted && bounds.Go(local.ops)) {
        std::uint64_t empty = 0;
        posted = boxes[Below(rng, 64)].compare_exchange_strong(empty, letter,
                                                               std::memory_order_relaxed);
      }
      if (!posted) {  // out of time: take the request back ourselves
        owner[*mid].store(0, std::memory_order_relaxed);
        held.fetch_sub(1, std::memory_order_relaxed);
        absl::StatusOr<void*> got = atlas->MapAndDissociate(*mid);
        ++local.ops;
        ++local.checks;
        if (!got.ok() || *got != request) Fail("sender %d: own MID %u lost its request", t, *mid);
        delete request;
      }
    }
    local.FlushTo(tally);
    senders_left.fetch_sub(1, std::memory_order_relaxed);
  };

  auto receiver = [&](int t) {
    Local local;
    std::mt19937_64 rng = RngFor(options.seed, t);
    start.arrive_and_wait();
    while (!Failed()) {
      const bool last_call = senders_left.load(std::memory_order_relaxed) == 0;
      bool got_any = false;
      for (std::size_t i = 0; i < boxes.size(); ++i) {
        std::atomic<std::uint64_t>& box = boxes[(i + Below(rng, 64)) % boxes.size()];
        if (box.load(std::memory_order_relaxed) == 0) continue;
        const std::uint64_t letter = box.exchange(0, std::memory_order_relaxed);
        if (letter == 0) continue;
        got_any = true;
        const auto mid = static_cast<Mid>((letter - 1) & 0xFFFF);
        const std::uint64_t ticket = (letter - 1) >> 16;
        // One or more responses: each maps the MID to the very request that was sent.
        const std::uint32_t responses = 1 + Below(rng, 3);
        void* first = nullptr;
        for (std::uint32_t r = 0; r < responses; ++r) {
          void* ctx = atlas->Map(mid);
          ++local.ops;
          ++local.checks;
          if (ctx == nullptr || static_cast<Request*>(ctx)->ticket != ticket ||
              (first != nullptr && ctx != first)) {
            Fail("receiver %d: Map(%u) returned %p, not the request with ticket %" PRIu64, t,
                 mid, ctx, ticket);
            break;
          }
          first = ctx;
        }
        owner[mid].store(0, std::memory_order_relaxed);
        held.fetch_sub(1, std::memory_order_relaxed);
        absl::StatusOr<void*> got = atlas->MapAndDissociate(mid);
        ++local.ops;
        ++local.checks;
        if (!got.ok() || static_cast<Request*>(*got)->ticket != ticket) {
          Fail("receiver %d: final MapAndDissociate(%u) did not return ticket %" PRIu64, t, mid,
               ticket);
          break;
        }
        delete static_cast<Request*>(*got);
      }
      if (last_call && !got_any) break;  // senders done and a full sweep found nothing
      if (!got_any) std::this_thread::yield();
    }
    local.FlushTo(tally);
  };

  RunThreads(threads, senders, sender, receiver);
  if (Failed()) return 1;
  Local local;
  // Letters a receiver left behind (the mailbox is relaxed, so a receiver may stop before it
  // sees the last ones): answered here, after the joins.
  for (auto& box : boxes) {
    const std::uint64_t letter = box.exchange(0, std::memory_order_relaxed);
    if (letter == 0) continue;
    const auto mid = static_cast<Mid>((letter - 1) & 0xFFFF);
    absl::StatusOr<void*> got = atlas->MapAndDissociate(mid);
    ++local.ops;
    ++local.checks;
    if (!got.ok() || static_cast<Request*>(*got)->ticket != (letter - 1) >> 16) {
      Fail("end: a MID left in a mailbox lost its request");
      return 1;
    }
    delete static_cast<Request*>(*got);
  }
  CheckDrainedAndReusable(*atlas, fresh, local);
  local.FlushTo(tally);
  return Failed() ? 1 : 0;
}

// ----------------------------------------------------------------------------------------
// readmostly

// Context values (odd, never dereferenced):
//   placeholder   (writer << 2) | 3
//   installed     (generation << 18) | (mid << 2) | 1
constexpr std::uint64_t Placeholder(int writer) {
  return (static_cast<std::uint64_t>(writer) << 2) | 3;
}
constexpr std::uint64_t Encode(std::uint32_t mid, std::uint64_t generation) {
  return (generation << 18) | (std::uint64_t{mid} << 2) | 1;
}

int RunReadMostly(const ScenarioOptions& options, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(options.max, options.start);
  if (atlas == nullptr) return 1;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const std::uint32_t max = options.max;
  const int writers = std::max(1, options.threads / 4);
  const int threads = std::max(options.threads, writers + 1);
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
  const Bounds bounds(options);
  std::latch start(threads);

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
    std::mt19937_64 rng = RngFor(options.seed, t);
    struct Held {
      Mid mid;
      std::uint64_t value;
    };
    std::vector<Held> mine;
    start.arrive_and_wait();
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
    std::mt19937_64 rng = RngFor(options.seed, t);
    start.arrive_and_wait();
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

  RunThreads(threads, writers, writer, reader);
  if (Failed()) return 1;
  Local local;
  CheckDrainedAndReusable(*atlas, fresh, local);
  local.FlushTo(tally);
  return Failed() ? 1 : 0;
}

// ----------------------------------------------------------------------------------------
// exhaustion

int RunExhaustion(const ScenarioOptions& options, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(options.max, options.start);
  if (atlas == nullptr) return 1;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const std::uint32_t max = options.max;
  const int threads = options.threads;
  std::vector<std::atomic<std::uint8_t>> owner(max);
  for (auto& o : owner) o.store(0, std::memory_order_relaxed);
  std::atomic<std::int64_t> held{0};
  std::vector<std::vector<Mid>> mine(static_cast<std::size_t>(threads));
  const Bounds bounds(options);
  bool stop = false;  // written in the completion step only
  int phase = 0;      // 0 churn, 1 fill, 2 drain; written in the completion step only
  std::uint64_t completions = 0;
  Local main_local;
  auto between = [&]() noexcept {
    ++completions;
    if (phase == 1) {
      // Every thread associated until refused, and nobody dissociated: exactly max held.
      std::uint32_t mapped = 0;
      for (std::uint32_t m = 0; m < max; ++m) mapped += atlas->Map(static_cast<Mid>(m)) != nullptr;
      main_local.checks += 3;
      if (held.load(std::memory_order_relaxed) != static_cast<std::int64_t>(max) ||
          atlas->mids_in_use() != max || mapped != max) {
        Fail("fill round: every thread was refused, but %" PRId64 " MIDs are held (%u in use, "
             "%u mapped), max %u",
             held.load(std::memory_order_relaxed), atlas->mids_in_use(), mapped, max);
      }
      tally.rounds.fetch_add(1, std::memory_order_relaxed);
    } else if (phase == 2) {
      ++main_local.checks;
      if (atlas->mids_in_use() != 0) Fail("drain round: %u MIDs in use", atlas->mids_in_use());
    }
    std::uint64_t ops = tally.ops.load(std::memory_order_relaxed);
    phase = (phase + 1) % 3;
    stop = phase == 0 && (Failed() || !bounds.Go(ops / static_cast<std::uint64_t>(threads)));
  };
  std::barrier sync(threads, between);

  auto worker = [&](int t) {
    std::mt19937_64 rng = RngFor(options.seed, t);
    std::vector<Mid>& held_here = mine[static_cast<std::size_t>(t)];
    auto associate = [&]() -> bool {
      Local local;
      ++local.ops;
      void* context = AsContext(2 * (static_cast<std::uint64_t>(t) + 1) + 1);
      absl::StatusOr<Mid> mid = atlas->Associate(context);
      bool ok = false;
      if (!mid.ok()) {
        if (!IsAllMidsInUse(mid.status())) Fail("thread %d: Associate failed", t);
        ++local.refused;
      } else {
        local.checks += 3;
        if (*mid >= max) Fail("thread %d: MID %u not below max %u", t, *mid, max);
        if (owner[*mid].exchange(1, std::memory_order_relaxed) != 0) {
          Fail("thread %d: MID %u handed out while held", t, *mid);
        }
        if (held.fetch_add(1, std::memory_order_relaxed) + 1 > static_cast<std::int64_t>(max)) {
          Fail("thread %d: more than max %u MIDs held at once", t, max);
        }
        if (atlas->Map(*mid) != context) Fail("thread %d: Map(%u) is not ours", t, *mid);
        held_here.push_back(*mid);
        ok = true;
      }
      local.FlushTo(tally);
      return ok;
    };
    auto dissociate = [&](std::size_t i) {
      const Mid m = held_here[i];
      held_here[i] = held_here.back();
      held_here.pop_back();
      owner[m].store(0, std::memory_order_relaxed);
      held.fetch_sub(1, std::memory_order_relaxed);
      Local local;
      ++local.ops;
      ++local.checks;
      absl::StatusOr<void*> got = atlas->MapAndDissociate(m);
      void* context = AsContext(2 * (static_cast<std::uint64_t>(t) + 1) + 1);
      if (!got.ok() || *got != context) Fail("thread %d: MapAndDissociate(%u) wrong", t, m);
      local.FlushTo(tally);
    };
    while (true) {
      sync.arrive_and_wait();
      if (stop) break;
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
    }
  };
  RunThreads(threads, threads, worker, worker);
  if (Failed()) return 1;
  CheckDrainedAndReusable(*atlas, fresh, main_local);
  main_local.FlushTo(tally);
  return Failed() ? 1 : 0;
}

// ----------------------------------------------------------------------------------------
// teardown and duplicates

// A context that must reach exactly one owner.
struct Token {
  Mid mid = 0;                  // plain: set before the token is associated
  bool entered = false;         // plain: set by its thread; read after a barrier
  std::atomic<int> deliveries{0};
};

void Deliver(Token* token, const char* to) {
  if (token->deliveries.fetch_add(1, std::memory_order_relaxed) != 0) {
    Fail("a context (MID %u) was handed to a second owner (%s)", token->mid, to);
  }
}

int RunTeardown(const ScenarioOptions& options, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(options.max, options.start);
  if (atlas == nullptr) return 1;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const int threads = std::max(options.threads, 2);
  const int iterators = threads >= 4 ? 2 : 1;
  const std::uint32_t per_thread =
      std::max<std::uint32_t>(1, std::min<std::uint32_t>(
                                     512, options.max / static_cast<std::uint32_t>(threads)));
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
  const Bounds bounds(options);
  bool stop = false;
  int phase = 0;  // 0 fill, 1 race
  Local main_local;
  auto between = [&]() noexcept {
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
    phase = 1 - phase;
    const std::uint64_t ops = tally.ops.load(std::memory_order_relaxed);
    stop = phase == 0 && (Failed() || !bounds.Go(ops / static_cast<std::uint64_t>(threads)));
  };
  std::barrier sync(threads, between);

  auto worker = [&](int t) {
    std::mt19937_64 rng = RngFor(options.seed, t);
    auto& list = tokens[static_cast<std::size_t>(t)];
    auto& side_list = side_tokens[static_cast<std::size_t>(t)];
    struct Held {
      Mid mid;
      Token* current;
    };
    std::vector<Held> mine;
    while (true) {
      sync.arrive_and_wait();
      if (stop) break;
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
    }
  };
  RunThreads(threads, threads, worker, worker);
  side.reset();
  for (auto& list : tokens) list.clear();
  if (Failed()) return 1;
  CheckDrainedAndReusable(*atlas, fresh, main_local);
  main_local.FlushTo(tally);
  return Failed() ? 1 : 0;
}

int RunDuplicates(const ScenarioOptions& options, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(options.max, options.start);
  if (atlas == nullptr) return 1;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const int threads = std::max(options.threads, 2);
  const std::uint32_t per_thread = std::max<std::uint32_t>(
      1, std::min<std::uint32_t>(64, options.max / static_cast<std::uint32_t>(threads)));
  std::vector<std::vector<std::unique_ptr<Token>>> tokens(static_cast<std::size_t>(threads));
  std::vector<Mid> round_mids;  // written in the completion step, read by all after it
  const Bounds bounds(options);
  bool stop = false;
  int phase = 0;  // 0 associate, 1 race
  Local main_local;
  auto between = [&]() noexcept {
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
    phase = 1 - phase;
    const std::uint64_t ops = tally.ops.load(std::memory_order_relaxed);
    stop = phase == 0 && (Failed() || !bounds.Go(ops / static_cast<std::uint64_t>(threads)));
  };
  std::barrier sync(threads, between);
  auto worker = [&](int t) {
    std::mt19937_64 rng = RngFor(options.seed, t);
    auto& list = tokens[static_cast<std::size_t>(t)];
    std::vector<Mid> order;
    while (true) {
      sync.arrive_and_wait();
      if (stop) break;
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
        order = round_mids;
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
    }
  };
  RunThreads(threads, threads, worker, worker);
  if (Failed()) return 1;
  CheckDrainedAndReusable(*atlas, fresh, main_local);
  main_local.FlushTo(tally);
  return Failed() ? 1 : 0;
}

}  // namespace

bool IsScenario(std::string_view name) {
  return name == "reqresp" || name == "readmostly" || name == "exhaustion" ||
         name == "teardown" || name == "duplicates";
}

int RunScenario(std::string_view name, const ScenarioOptions& options) {
  static std::string scenario_name;
  scenario_name = std::string(name);
  g_scenario = scenario_name.c_str();
  g_seed = options.seed;
  Tally tally;
  const Clock::time_point begin = Clock::now();
  int rc = 1;
  if (name == "reqresp") {
    rc = RunRequestResponse(options, tally);
  } else if (name == "readmostly") {
    rc = RunReadMostly(options, tally);
  } else if (name == "exhaustion") {
    rc = RunExhaustion(options, tally);
  } else if (name == "teardown") {
    rc = RunTeardown(options, tally);
  } else if (name == "duplicates") {
    rc = RunDuplicates(options, tally);
  }
  if (Failed()) rc = 1;
  const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  std::printf("atlas_stress: %s scenario=%s seed=%" PRIu64 " threads=%d max=%u start=%u "
              "seconds=%.2f ops=%" PRIu64 " checks=%" PRIu64 " refused_full=%" PRIu64
              " rounds=%" PRIu64 "\n",
              rc == 0 ? "PASS" : "FAIL", g_scenario, options.seed, options.threads, options.max,
              options.start, elapsed, tally.ops.load(), tally.checks.load(),
              tally.refused.load(), tally.rounds.load());
  return rc;
}

}  // namespace midatlas::stress
