// AtlasTagTable: the tag table on a midatlas MID atlas.
//
// The receive path maps a reply's tag with MidAtlas::Map (wait-free) and frees it with
// MapAndDissociate (one CAS); application threads acquire tags with Associate (one CAS).
//
// TEMPORARY (until the atlas offers generation bits, discard/quarantine with a late context,
// and FIFO waiting for a free MID; then only this file changes). The atlas of today lacks
// them, so this file adds the least that makes them work, each marked TEMPORARY(...):
//   - generations: a counter per slot, kept here, touched only by the slot's current owner;
//   - quarantine: Discard swaps the request for its late context with Reassociate, and a phase
//     word in the entry (kLive -> kDiscarding -> kDiscarded) keeps a racing Complete off the
//     slot while the swap is in progress;
//   - FIFO waiting: FifoGate (fifo_gate.h) around Associate.
// NOTAG needs nothing: MIDs are below max_mids <= 65535, and when generation bits exist the one
// (generation, slot) pair that spells 0xFFFF is skipped.
#include <cstdint>
#include <memory>
#include <thread>

#include "fifo_gate.h"
#include "midatlas/mid_atlas.h"
#include "tag_table.h"

namespace ninep::internal {
namespace {

class AtlasTagTable final : public TagTable {
 public:
  AtlasTagTable(midatlas::MidAtlas atlas, std::uint32_t max_in_flight)
      : atlas_(std::move(atlas)),
        max_in_flight_(max_in_flight),
        slot_bits_(SlotBits(max_in_flight)),
        slot_mask_(static_cast<std::uint16_t>((1U << slot_bits_) - 1)),
        generation_mask_(static_cast<std::uint16_t>((1U << (16 - slot_bits_)) - 1)),
        generations_(new std::uint16_t[max_in_flight]()) {}

  absl::StatusOr<std::uint16_t> Acquire(TagEntry* request) override {
    return gate_.Acquire([&] { return TryTake(request); });
  }
  absl::StatusOr<std::uint16_t> TryAcquire(TagEntry* request) override {
    return TryTake(request);
  }

  TagEntry* Complete(std::uint16_t tag) override {
    TagEntry* e = Find(tag);
    if (e == nullptr || e->kind != TagEntry::Kind::kRequest) return nullptr;
    std::uint8_t live = TagEntry::kLive;
    // (ninep:P1) acq_rel CAS: claims the request against Discard (P2) and the drain (P3);
    // acquire so the claimer sees what the sender wrote, release for the symmetric case.
    if (!e->phase.compare_exchange_strong(live, TagEntry::kCompleted,
                                          std::memory_order_acq_rel)) {
      return nullptr;
    }
    // Fails only when a shutdown drain freed the slot first; the phase decided ownership.
    (void)atlas_.MapAndDissociate(SlotOf(tag));
    gate_.Freed();
    return e;
  }

  DiscardResult Discard(std::uint16_t tag, TagEntry* request, TagEntry* late) override {
    std::uint8_t live = TagEntry::kLive;
    // (ninep:P2) acq_rel CAS: claims the request against Complete (P1) and the drain (P3).
    if (!request->phase.compare_exchange_strong(live, TagEntry::kDiscarding,
                                                std::memory_order_acq_rel)) {
      return DiscardResult::kAlreadyCompleted;
    }
    // (ninep:T2) release: the late context's tag before it is published by Reassociate.
    late->tag.store(tag, std::memory_order_release);
    // TEMPORARY(atlas-discard): Reassociate publishes `late` (release; Map acquires).
    const absl::Status swapped = atlas_.Reassociate(SlotOf(tag), late);
    // (ninep:P4) release: the swap is done; pairs with the acquire load in CompleteLate (P5).
    request->phase.store(TagEntry::kDiscarded, std::memory_order_release);
    return swapped.ok() ? DiscardResult::kQuarantined : DiscardResult::kDrained;
  }

  TagEntry* CompleteLate(std::uint16_t tag) override {
    for (;;) {
      TagEntry* e = Find(tag);
      if (e == nullptr) break;
      if (e->kind == TagEntry::Kind::kRequest) {
        // (ninep:P5) acquire: pairs with P4, so the next Map sees the late context.
        const std::uint8_t phase = e->phase.load(std::memory_order_acquire);
        if (phase == TagEntry::kDiscarding) {
          // TEMPORARY(atlas-discard): Discard is between its claim and its swap, a few
          // instructions on another thread; the reply waits for it.
          std::this_thread::yield();
          continue;
        }
        if (phase == TagEntry::kDiscarded) continue;  // the late context is in the slot now
        break;                                        // a live or completed request
      }
      std::uint8_t pending = TagEntry::kLatePending;
      // (ninep:P6) relaxed CAS: only the receive thread consumes late contexts; the CAS
      // makes "once" explicit.
      if (e->phase.compare_exchange_strong(pending, TagEntry::kLateConsumed,
                                           std::memory_order_relaxed)) {
        return e;
      }
      break;
    }
    unknown_tags_.fetch_add(1, std::memory_order_relaxed);  // (ninep:C1) relaxed: a counter
    return nullptr;
  }

  TagEntry* Release(std::uint16_t tag) override {
    TagEntry* e = Find(tag);
    if (e == nullptr || e->kind != TagEntry::Kind::kLate) return nullptr;
    (void)atlas_.MapAndDissociate(SlotOf(tag));
    gate_.Freed();
    return e;
  }

  void Close() override { gate_.Close(); }

  void Drain(absl::FunctionRef<void(TagEntry*)> fn) override {
    atlas_.IterateAndRemove([&](void* context) { fn(static_cast<TagEntry*>(context)); });
  }

  [[nodiscard]] std::uint32_t max_in_flight() const override { return max_in_flight_; }
  [[nodiscard]] int generation_bits() const override { return 16 - slot_bits_; }
  [[nodiscard]] std::uint32_t in_use() const override { return atlas_.mids_in_use(); }
  [[nodiscard]] std::uint32_t waiting() const override { return gate_.waiting(); }
  [[nodiscard]] TagTableCounters counters() const override {
    return {.unknown_tags = unknown_tags_.load(std::memory_order_relaxed),  // (ninep:C2) relaxed
            .waits = gate_.waits()};
  }

 private:
  [[nodiscard]] midatlas::Mid SlotOf(std::uint16_t tag) const {
    return static_cast<midatlas::Mid>(tag & slot_mask_);
  }

  absl::StatusOr<std::uint16_t> TryTake(TagEntry* request) {
    absl::StatusOr<midatlas::Mid> slot = atlas_.Associate(request);
    if (!slot.ok()) return slot.status();
    // TEMPORARY(atlas-generations): the slot is this thread's until it is freed, and the
    // atlas orders successive owners (free is release, allocate is acquire), so a plain
    // counter per slot is enough.
    std::uint16_t generation = generations_[*slot];
    std::uint16_t tag = 0;
    do {
      generation = static_cast<std::uint16_t>((generation + 1) & generation_mask_);
      tag = static_cast<std::uint16_t>((generation << slot_bits_) | *slot);
    } while (tag == kNoTag);
    generations_[*slot] = generation;
    // (ninep:C3) relaxed: an order number; tests read it after the waiters are admitted.
    request->admission = admissions_.fetch_add(1, std::memory_order_relaxed);
    // (ninep:T1) release: the tag of this association; pairs with the acquire load in Find.
    request->tag.store(tag, std::memory_order_release);
    return tag;
  }

  // The entry `tag` maps to, if the slot holds one under this very tag (generation included).
  TagEntry* Find(std::uint16_t tag) const {
    // NOTAG is what an entry's tag reads before Acquire stores the real one: never a match.
    if (tag == kNoTag) return nullptr;
    const midatlas::Mid slot = SlotOf(tag);
    if (slot >= max_in_flight_) return nullptr;
    auto* e = static_cast<TagEntry*>(atlas_.Map(slot));
    // (ninep:T3) acquire: pairs with T1/T2; a slot just re-associated reads NOTAG or its new
    // tag, never the old one, so a stale reply cannot match it.
    if (e == nullptr || e->tag.load(std::memory_order_acquire) != tag) return nullptr;
    return e;
  }

  midatlas::MidAtlas atlas_;
  const std::uint32_t max_in_flight_;
  const int slot_bits_;
  const std::uint16_t slot_mask_;
  const std::uint16_t generation_mask_;
  std::unique_ptr<std::uint16_t[]> generations_;  // TEMPORARY(atlas-generations)
  FifoGate gate_;                                 // TEMPORARY(atlas-fifo)
  std::atomic<std::uint64_t> unknown_tags_{0};
  std::atomic<std::uint64_t> admissions_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<TagTable>> MakeAtlasTagTable(std::uint32_t max_in_flight) {
  absl::StatusOr<midatlas::MidAtlas> atlas = midatlas::MidAtlas::Create(
      {.max_mids = max_in_flight, .initial_mids = max_in_flight < 64 ? max_in_flight : 64});
  if (!atlas.ok()) return atlas.status();
  return std::unique_ptr<TagTable>(new AtlasTagTable(*std::move(atlas), max_in_flight));
}

}  // namespace ninep::internal
