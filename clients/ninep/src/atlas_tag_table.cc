// AtlasTagTable: the tag table on a midatlas MID atlas, every protocol rule done by the atlas.
//
//   tags            the atlas's MIDs: generation << slot_bits | slot, with the generation bits
//                   the maximum leaves spare (AtlasOptions::generation_bits); a reply under an
//                   old generation maps to nothing. NOTAG is an excluded value.
//   receive path    Map (wait-free), then MapAndDissociate (one CAS) for the request it found.
//   quarantine      MidAtlas::Discard(tag, late): the tag stays held, mapping to nothing, with
//                   the late context; MapAndDissociateOrLate hands that context to the reply
//                   that beats the Rflush, once; ReleaseDiscarded ends the quarantine.
//   waiting         Associate, and when every tag is in use AssociateAsync: one FIFO, a freed
//                   tag goes straight to the oldest waiter, no new caller overtakes it.
//
// The one thing kept beside the atlas is the request's phase: who claimed it (tag_table.h,
// WHO CLAIMS A REQUEST). A canceller claims the request before it discards its tag, so the
// tag it discards is still the request's; a reply claims it before it frees the tag. A reply
// that finds the request claimed by a canceller whose Discard has not run yet quarantines the
// tag itself, with the late context the canceller left in the request: of the two Discards
// the atlas lets exactly one take the request, and either way the tag ends up quarantined with
// that context, so the reply never waits for the canceller.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

#include "midatlas/mid_atlas.h"
#include "tag_table.h"

namespace ninep::internal {
namespace {

class AtlasTagTable final : public TagTable {
 public:
  AtlasTagTable(midatlas::MidAtlas atlas, std::uint32_t max_in_flight)
      : atlas_(std::move(atlas)), max_in_flight_(max_in_flight) {}

  absl::StatusOr<std::uint16_t> Acquire(TagEntry* request) override {
    // (ninep:W2) acquire: pairs with Close's store (W1); a caller that misses it acquires
    // before Close in the linearization and is failed by the connection's own closed check.
    if (closed_.load(std::memory_order_acquire)) {
      return absl::UnavailableError("connection closed");
    }
    // Behind queued waiters the atlas answers "all in use" (no barging); then queue.
    absl::StatusOr<midatlas::Mid> now = atlas_.Associate(request);
    if (now.ok()) return Admit(request, *now);
    if (!midatlas::IsAllMidsInUse(now.status())) return now.status();
    return AcquireQueued(request);
  }

  absl::StatusOr<std::uint16_t> TryAcquire(TagEntry* request) override {
    absl::StatusOr<midatlas::Mid> now = atlas_.Associate(request);
    if (!now.ok()) return now.status();
    return Admit(request, *now);
  }

  TagEntry* CompleteReply(std::uint16_t tag) override {
    if (auto* e = static_cast<TagEntry*>(atlas_.Map(tag))) {
      std::uint8_t phase = TagEntry::kLive;
      if (Claim(e, phase)) {
        (void)atlas_.MapAndDissociate(tag);  // cannot fail: only a claimer frees the tag
        return e;
      }
      if (phase != TagEntry::kDiscarded) return Unknown();  // a sender's own Complete
      // A canceller claimed it and has not quarantined the tag yet: do it for it. Exactly one
      // of the two Discards takes the request; the tag is quarantined with this late context.
      (void)atlas_.Discard(tag, e->discard_late);
    }
    absl::StatusOr<midatlas::Dissociated> taken = atlas_.MapAndDissociateOrLate(tag);
    // Not in use: never issued, completed already, an old generation, NOTAG.
    if (!taken.ok()) return Unknown();
    if (taken->late) {
      // The late context, the first time; a second reply for the tag finds nothing.
      return taken->context != nullptr ? static_cast<TagEntry*>(taken->context) : Unknown();
    }
    // A live request the Map above missed: its tag was handed out in between, so this reply
    // came before its request was sent (only a misbehaving server does that). The atlas has
    // freed the tag; whoever claims the request owns it.
    auto* e = static_cast<TagEntry*>(taken->context);
    std::uint8_t phase = TagEntry::kLive;
    if (Claim(e, phase)) return e;
    // Claimed by a canceller whose Discard can no longer find the tag: its late context goes
    // out here, in the request's place, as a drain would hand it out.
    if (phase == TagEntry::kDiscarded) return e->discard_late;
    return Unknown();
  }

  TagEntry* Complete(std::uint16_t tag) override {
    auto* e = static_cast<TagEntry*>(atlas_.Map(tag));
    std::uint8_t phase = TagEntry::kLive;
    if (e == nullptr || !Claim(e, phase)) return nullptr;
    // Fails only when a shutdown drain freed the tag first; the claim decided the owner.
    (void)atlas_.MapAndDissociate(tag);
    return e;
  }

  DiscardResult Discard(std::uint16_t tag, TagEntry* request, TagEntry* late) override {
    request->discard_late = late;
    // (ninep:T2) release: the late context's tag, for the connection's Release; the request
    // is sent before Discard can run, and the Tflush only after it returns.
    late->tag.store(tag, std::memory_order_release);
    std::uint8_t live = TagEntry::kLive;
    // (ninep:P2) acq_rel CAS: claims the request against a reply's claim (P1) and the drain's
    // (P3); release publishes discard_late to a reply or drain that then finds kDiscarded.
    if (!request->phase.compare_exchange_strong(live, TagEntry::kDiscarded,
                                                std::memory_order_acq_rel)) {
      return DiscardResult::kAlreadyCompleted;
    }
    // Fails only when a reply quarantined the tag first (CompleteReply), or a shutdown drain
    // freed it and handed `late` out in the request's place: either way `late` is the
    // table's now. (The creation's warm-up discard means this never fails for memory.)
    (void)atlas_.Discard(tag, late);
    return DiscardResult::kQuarantined;
  }

  absl::StatusOr<TagEntry*> Release(std::uint16_t tag) override {
    absl::StatusOr<void*> late = atlas_.ReleaseDiscarded(tag);
    if (!late.ok()) return late.status();
    return static_cast<TagEntry*>(*late);
  }

  void Close() override {
    std::lock_guard<std::mutex> lock(queued_mu_);
    // (ninep:W1) release: pairs with W2; under queued_mu_, so a waiter that registers after
    // this sees it there.
    closed_.store(true, std::memory_order_release);
    // A waiter still queued is cancelled (its callback runs now, with Cancelled); one a
    // hand-off reached first keeps its tag, admitted before the close.
    for (QueuedAcquire* q = queued_; q != nullptr; q = q->next) q->handle.Cancel();
  }

  void Drain(absl::FunctionRef<void(TagEntry*)> fn) override {
    auto hand_out = [&](void* context) {
      auto* e = static_cast<TagEntry*>(context);
      if (e->kind == TagEntry::Kind::kLate) {
        fn(e);  // a quarantined tag's late context no reply took
        return;
      }
      std::uint8_t live = TagEntry::kLive;
      // (ninep:P3) acq_rel CAS: claims the request against a reply (P1) and a canceller (P2);
      // acquire so that a canceller's discard_late is visible when it won.
      if (e->phase.compare_exchange_strong(live, TagEntry::kCompleted,
                                           std::memory_order_acq_rel)) {
        fn(e);
      } else if (live == TagEntry::kDiscarded) {
        fn(e->discard_late);  // the canceller's Discard lost the tag to this drain
      }
      // kCompleted: a sender's Complete claimed it, and completes it.
    };
    atlas_.IterateAndRemove(hand_out);
    // A canceller's Discard that took its tag while the pass went by leaves it quarantined
    // (the atlas leaves a MID discarded meanwhile to its release); a second pass releases it.
    // No discard can succeed after the first pass: every tag it left live was claimed there.
    if (atlas_.discarded_mids() != 0) atlas_.IterateAndRemove(hand_out);
  }

  [[nodiscard]] std::uint32_t max_in_flight() const override { return max_in_flight_; }
  [[nodiscard]] int generation_bits() const override {
    return static_cast<int>(atlas_.generation_bits());
  }
  [[nodiscard]] std::uint32_t in_use() const override { return atlas_.mids_in_use(); }
  [[nodiscard]] std::uint32_t waiting() const override { return atlas_.waiters(); }
  [[nodiscard]] TagTableCounters counters() const override {
    // (ninep:C2) relaxed loads: statistics.
    return {.unknown_tags = unknown_tags_.load(std::memory_order_relaxed),
            .waits = waits_.load(std::memory_order_relaxed)};
  }

 private:
  // One Acquire waiting in the atlas's FIFO. The atlas runs `Finish` once: with the tag, on
  // the thread that freed it, or with Cancelled (Close).
  struct QueuedAcquire {
    QueuedAcquire(AtlasTagTable* t, TagEntry* r) : table(t), request(r) {}

    void Finish(absl::StatusOr<midatlas::Mid> mid) {
      // Numbered here, in the order the hand-offs are made when one thread frees tags (the
      // receive thread, in the connection).
      if (mid.ok()) request->admission = table->NextAdmission();
      std::lock_guard<std::mutex> lock(mu);
      result = std::move(mid);
      done = true;
      cv.notify_one();  // under the mutex: the waiter may end this object once it sees `done`
    }
    absl::StatusOr<midatlas::Mid> Wait() {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [this] { return done; });
      return std::move(result);
    }

    AtlasTagTable* const table;
    TagEntry* const request;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;                    // guarded by mu
    absl::StatusOr<midatlas::Mid> result;  // guarded by mu
    midatlas::MidWait handle;             // guarded by queued_mu_ while registered
    QueuedAcquire* prev = nullptr;        // guarded by queued_mu_
    QueuedAcquire* next = nullptr;        // guarded by queued_mu_
  };

  absl::StatusOr<std::uint16_t> AcquireQueued(TagEntry* request) {
    QueuedAcquire q(this, request);
    absl::StatusOr<midatlas::MidWait> wait = atlas_.AssociateAsync(
        request, [&q](absl::StatusOr<midatlas::Mid> mid) { q.Finish(std::move(mid)); });
    if (!wait.ok()) return wait.status();
    // A tag came free between the two tries: it is ours, and the callback never runs.
    if (wait->mid().has_value()) return Admit(request, *wait->mid());
    waits_.fetch_add(1, std::memory_order_relaxed);  // (ninep:C4) relaxed: a counter
    {
      std::lock_guard<std::mutex> lock(queued_mu_);
      q.handle = *std::move(wait);
      // (ninep:W3) relaxed: under queued_mu_, which Close holds while it stores (W1).
      if (closed_.load(std::memory_order_relaxed)) {
        q.handle.Cancel();  // Close missed it; the callback runs now (or ran: a hand-off)
      } else {
        Register(&q);
      }
    }
    absl::StatusOr<midatlas::Mid> mid = q.Wait();
    {
      std::lock_guard<std::mutex> lock(queued_mu_);
      if (q.prev != nullptr || queued_ == &q) Unregister(&q);
    }
    // q.handle is done with: its destruction frees the atlas's node and cancels nothing.
    if (!mid.ok()) return absl::UnavailableError("connection closed while waiting for a tag");
    return PublishTag(request, *mid);  // numbered by Finish
  }

  void Register(QueuedAcquire* q) {  // under queued_mu_
    q->next = queued_;
    if (queued_ != nullptr) queued_->prev = q;
    queued_ = q;
  }
  void Unregister(QueuedAcquire* q) {  // under queued_mu_
    if (q->prev != nullptr) q->prev->next = q->next;
    if (q->next != nullptr) q->next->prev = q->prev;
    if (queued_ == q) queued_ = q->next;
    q->prev = q->next = nullptr;
  }

  std::uint16_t Admit(TagEntry* request, midatlas::Mid tag) {
    request->admission = NextAdmission();
    return PublishTag(request, tag);
  }
  static std::uint16_t PublishTag(TagEntry* request, midatlas::Mid tag) {
    // (ninep:T1) release: the request's tag, read by Cancel (T4) and Call::tag (T7).
    request->tag.store(tag, std::memory_order_release);
    return tag;
  }
  std::uint64_t NextAdmission() {
    // (ninep:C3) relaxed: an order number; tests read it after the waiters are admitted.
    return admissions_.fetch_add(1, std::memory_order_relaxed);
  }

  // Moves `e` out of kLive; on failure `phase` holds what claimed it.
  static bool Claim(TagEntry* e, std::uint8_t& phase) {
    // (ninep:P1) acq_rel CAS: a reply (or a sender's Complete) claims the request against a
    // canceller (P2) and the drain (P3); acquire so that a canceller's discard_late is
    // visible when it won, and the claimer sees what the sender wrote.
    return e->phase.compare_exchange_strong(phase, TagEntry::kCompleted,
                                            std::memory_order_acq_rel);
  }

  TagEntry* Unknown() {
    unknown_tags_.fetch_add(1, std::memory_order_relaxed);  // (ninep:C1) relaxed: a counter
    return nullptr;
  }

  midatlas::MidAtlas atlas_;
  const std::uint32_t max_in_flight_;
  std::mutex queued_mu_;               // taken only by waiters and Close
  QueuedAcquire* queued_ = nullptr;    // guarded by queued_mu_: waiters Close must cancel
  std::atomic<bool> closed_{false};    // written under queued_mu_
  std::atomic<std::uint64_t> unknown_tags_{0};
  std::atomic<std::uint64_t> waits_{0};
  std::atomic<std::uint64_t> admissions_{0};
};

// Any context will do for the warm-up discard; it is never mapped by anyone else.
char warm_up_context;

}  // namespace

absl::StatusOr<std::unique_ptr<TagTable>> MakeAtlasTagTable(std::uint32_t max_in_flight) {
  // Generation bits in whatever the slots leave spare: 1,024 in flight -> 10 slot bits, 6
  // generation bits; above 32,768 none.
  const int generation_bits = 16 - SlotBits(max_in_flight);
  absl::StatusOr<midatlas::MidAtlas> atlas = midatlas::MidAtlas::Create(
      {.max_mids = max_in_flight,
       .initial_mids = std::min<std::uint32_t>(max_in_flight, 64),
       .excluded_mids = {kNoTag},
       .generation_bits = static_cast<std::uint32_t>(generation_bits)});
  if (!atlas.ok()) return atlas.status();
  // The atlas creates its quarantine at its first Discard, which is thus the one Discard that
  // can fail for memory. Make it here, where a failure is the creation's: a canceller that
  // has claimed its request then always finds the quarantine there.
  absl::StatusOr<midatlas::Mid> mid = atlas->Associate(&warm_up_context);
  if (!mid.ok()) return mid.status();
  if (absl::StatusOr<void*> taken = atlas->Discard(*mid); !taken.ok()) return taken.status();
  if (absl::StatusOr<void*> late = atlas->ReleaseDiscarded(*mid); !late.ok()) {
    return late.status();
  }
  return std::unique_ptr<TagTable>(new AtlasTagTable(*std::move(atlas), max_in_flight));
}

}  // namespace ninep::internal
