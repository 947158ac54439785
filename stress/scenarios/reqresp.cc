// reqresp: request/response, as a redirector: senders associate a request and hand the MID
// through a mailbox to receivers, which map it (one or more responses) and then
// map-and-dissociate it. The mailbox is relaxed atomics only, so the request's plain fields are
// ordered from sender to receiver by the atlas's release/acquire alone (TSan checks that edge).
// A MID handed to two senders at once, a wrong or stale request, or a lost MID is a violation.
// With the planted fault POP_NO_RETRY (two associates share a slot) it must report "MID
// handed out while still held" (stress/CMakeLists.txt).
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "harness/harness.h"
#include "midatlas/mid_atlas.h"
#include "scenarios/common.h"
#include "scenarios/scenarios.h"

namespace midatlas::stress {
namespace {

struct Request {
  std::uint64_t ticket = 0;  // plain: written before Associate, read by the receiver
};

}  // namespace

void RunRequestResponse(const Flags& flags, Tally& tally) {
  std::optional<MidAtlas> atlas = NewAtlas(flags.max, flags.start);
  if (!atlas) return;
  const std::size_t fresh = atlas->stats().bytes_attached;
  const int senders = std::max(1, flags.threads / 2);
  const int threads = std::max(flags.threads, senders + 1);
  // Claimed by the sender after Associate returns, released by whoever takes the request
  // back, just before MapAndDissociate.
  HeldMids held(flags.max);
  // Mailboxes: 0 empty, else (ticket << 16 | mid) + 1. Relaxed: adds no edge sender->receiver.
  std::vector<std::atomic<std::uint64_t>> boxes(64);
  for (auto& b : boxes) b.store(0, std::memory_order_relaxed);
  std::atomic<int> senders_left{senders};
  const Bounds bounds(flags);

  auto sender = [&](int t) {
    Local local;
    std::mt19937_64 rng = RngFor(flags.seed, t);
    std::uint64_t seq = 0;
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
      held.Claim(*mid, "sender", t, local);
      const std::uint64_t letter = ((ticket << 16) | *mid) + 1;
      bool posted = false;
      while (!posted && bounds.Go(local.ops)) {
        std::uint64_t empty = 0;
        posted = boxes[Below(rng, 64)].compare_exchange_strong(empty, letter,
                                                               std::memory_order_relaxed);
      }
      if (!posted) {  // out of time: take the request back ourselves
        held.Release(*mid);
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
    std::mt19937_64 rng = RngFor(flags.seed, t);
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
        held.Release(mid);
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

  RunThreads(threads, [&](int t) { t < senders ? sender(t) : receiver(t); });
  if (Failed()) return;
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
      return;
    }
    delete static_cast<Request*>(*got);
  }
  EndScenario(*atlas, fresh, local, tally);
}

}  // namespace midatlas::stress
