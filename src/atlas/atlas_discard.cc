// The quarantine of discarded MIDs (docs/DESIGN.md 10.6, QD1-QD4): Discard,
// ReleaseDiscarded, and a MapAndDissociate that finds no context.
#include <thread>

#include "atlas/atlas_core.h"
#include "instrumentation/chaos.h"

namespace midatlas::internal {

namespace {

// QD2: a pending claim lasts the claimant's next two steps (take the context, publish), so
// whoever meets one waits for it rather than answer for a MID whose state is being decided.
void WaitForClaim() noexcept { std::this_thread::yield(); }

}  // namespace

DiscardTable* AtlasCore::DiscardsOrCreate() noexcept {
  DiscardTable* table = discards();  // (discard:Q10)
  if (table != nullptr) [[likely]] return table;
  DiscardTable* fresh = DiscardTable::Create(mids_end_);
  if (fresh == nullptr) return nullptr;
  // (discard:Q9) release CAS: publishes the table's idle words; pairs with (discard:Q10).
  if (discards_.compare_exchange_strong(table, fresh, std::memory_order_release,
                                        std::memory_order_acquire)) {
    return fresh;
  }
  DiscardTable::Destroy(fresh);  // another discard won; nobody saw ours
  return table;
}

std::uint32_t AtlasCore::discarded_mids() const noexcept {
  const DiscardTable* table = discards();
  return table == nullptr ? 0 : table->count();
}

AtlasResult AtlasCore::Discard(Mid mid, void* late_context, void** context_out) noexcept {
  if (context_out == nullptr) return AtlasResult::kInvalidArgument;
  *context_out = nullptr;
  const std::uint32_t index = IndexOfValue(mid);
  // A value not in use now is answered without touching (or creating) the quarantine.
  if (index >= mids_end_ || Map(mid) == nullptr) return AtlasResult::kInvalidArgument;
  DiscardTable* table = DiscardsOrCreate();
  if (table == nullptr) return AtlasResult::kOutOfMemory;
  // QD1: claim the index's word, so that racing discards of it are ordered and whoever finds
  // the context gone can tell a quarantine from a free MID.
  DiscardTable::Word word = table->Load(index);  // (discard:Q2)
  DiscardTable::Word claim{};
  while (true) {
    if (word.phase() == DiscardTable::kPending) {
      WaitForClaim();
      word = table->Load(index);
      continue;
    }
    // Discarded already (this value, or another generation of the index): not in use.
    if (word.phase() != DiscardTable::kIdle) return AtlasResult::kInvalidArgument;
    claim = word.NextClaim(mid);
    if (table->Transition(index, word, claim)) break;  // (discard:Q1)
  }
  table->SetLate(index, late_context);  // (discard:Q7)
  MIDATLAS_CHAOS_POINT();
  // QD2: take the context, as a dissociate would; of a racing dissociate and this discard
  // exactly one succeeds (the cell exchange, or with G > 0 the dead mark). Linearization
  // point: that step.
  void* context = nullptr;
  const std::uint32_t leaf_index = index >> leaf_shift_;
  const std::uint32_t slot = index & slot_mask_;
  if (states_ == nullptr) {
    if (picker_) {
      context = LeafMap::TakeCell(contexts_[index]);  // (atlas:D1)
    } else if (leaf_index == 0) {
      context = leaf0_->TakeContext(slot);  // (atlas:D1)
    } else {
      const RecordLease lease;
      LeafHazardGuard guard(lease.record());
      const ProtectedLeaf found = ProtectLeafOnce(guard, leaf_index);
      if (found.leaf != nullptr) context = found.leaf->TakeContext(slot);  // (atlas:D1)
    }
  } else {
    const std::uint32_t want = EncodeGen(std::uint32_t{mid} >> index_bits_) | kLive;
    Atomic<std::uint32_t>& state_word = states_[index];
    std::uint32_t state = LoadStateForCas(index);  // (atlas:G4)
    bool marked = false;
    while ((state & (kGenField | kLive)) == want) {
      // (atlas:G10) acq_rel CAS: the dead mark of a discard, as (atlas:G5) but without the
      // push hand-off (GN2): the index stays held until ReleaseDiscarded sets it.
      if (state_word.compare_exchange_weak(state, state & ~kLive, std::memory_order_acq_rel,
                                           std::memory_order_relaxed)) {
        marked = true;
        break;
      }
    }
    if (marked) {
      // Held (GN2): the cell is written directly, as in the dissociate.
      context = LeafMap::TakeCell(contexts_[index]);  // (atlas:D1)
      MIDATLAS_INVARIANT(context != nullptr, "QD2", "a live generation held no context");
    }
  }
  if (context == nullptr) {
    table->Publish(index, claim.With(DiscardTable::kIdle, 0));  // (discard:Q3)
    return AtlasResult::kInvalidArgument;
  }
  table->CountIn();  // (discard:Q5)
  table->Publish(index, claim.With(DiscardTable::kDiscarded, mid));  // (discard:Q3)
  *context_out = context;
  return AtlasResult::kOk;
}

AtlasResult AtlasCore::DissociateOnce(Mid mid, void** context_out) noexcept {
  if (mid >= map_bound_) return DissociateBeyondBound(mid, context_out);
  if (picker_) return DissociatePicked(mid, context_out);
  if ((std::uint32_t{mid} >> leaf_shift_) != 0) return DissociateBeyondLeafZero(mid, context_out);
  void* context = leaf0_->TakeContext(mid);  // (atlas:D1)
  if (context == nullptr) return AtlasResult::kInvalidArgument;
  *context_out = context;
  Settle(ReleaseSlot(dir0(), *leaf0_, mid));
  return AtlasResult::kOk;
}

AtlasResult AtlasCore::DissociateMissed(Mid mid, void** context_out, bool take_late) noexcept {
  const std::uint32_t index = IndexOfValue(mid);
  if (index >= mids_end_) return AtlasResult::kInvalidArgument;
  while (true) {
    // QD3: the miss read the cell (or the state) relaxed; read it again with acquire, so that
    // if a discard's take is what emptied it, the table and the claim (discard:Q1) that came
    // before that take are visible below.
    if (states_ != nullptr) {
      // (atlas:G11) acquire: pairs with the discard's dead mark (atlas:G10).
      static_cast<void>(states_[index].load(std::memory_order_acquire));
    } else {
      // (atlas:M3) acquire: pairs with the discard's take (atlas:D1).
      if (contexts_[index].load(std::memory_order_acquire) != nullptr) {
        // Associated again since the miss: one more try answers for the new association (a
        // failed one-shot protection is a valid "not in use", AC4). No loop: a cell that stays
        // set must not keep this call here.
        return DissociateOnce(mid, context_out);
      }
    }
    DiscardTable* table = discards();  // (discard:Q10)
    if (table == nullptr) return AtlasResult::kInvalidArgument;
    DiscardTable::Word word = table->Load(index);  // (discard:Q2)
    if (word.phase() == DiscardTable::kPending) {
      WaitForClaim();
      const AtlasResult again = DissociateOnce(mid, context_out);
      if (again != AtlasResult::kInvalidArgument) return again;
      continue;
    }
    if (!word.discarded() || word.mid() != mid) return AtlasResult::kInvalidArgument;
    // QD4: a discarded MID's late response. Linearization point: the load above when the
    // late context is gone (or not wanted), else the transition that takes it.
    if (word.late_taken() || !take_late) return AtlasResult::kCancelled;
    void* late = table->LoadLate(index);  // (discard:Q8)
    if (table->Transition(index, word,
                          word.With(DiscardTable::kDiscarded | DiscardTable::kLateTaken, mid))) {
      *context_out = late;
      return AtlasResult::kCancelled;
    }
    // The word changed: another late response took it, or the quarantine ended.
  }
}

AtlasResult AtlasCore::ReleaseDiscarded(Mid mid, void** late_out) noexcept {
  if (late_out != nullptr) *late_out = nullptr;
  const std::uint32_t index = IndexOfValue(mid);
  DiscardTable* table = discards();  // (discard:Q10)
  if (table == nullptr || index >= mids_end_) return AtlasResult::kInvalidArgument;
  DiscardTable::Word word = table->Load(index);  // (discard:Q2)
  void* late = nullptr;
  while (true) {
    if (word.phase() == DiscardTable::kPending) {
      WaitForClaim();
      word = table->Load(index);
      continue;
    }
    if (!word.discarded() || word.mid() != mid) return AtlasResult::kInvalidArgument;
    late = word.late_taken() ? nullptr : table->LoadLate(index);  // (discard:Q8)
    // QD4: of racing releases exactly one ends the quarantine; linearization point.
    if (table->Transition(index, word, word.With(DiscardTable::kIdle, 0))) break;  // (discard:Q1)
  }
  table->CountOut();  // (discard:Q6)
  if (late_out != nullptr) *late_out = late;
  Settle(FreeHeldIndex(index));
  return AtlasResult::kOk;
}

AtlasCore::FreeOutcome AtlasCore::FreeHeldIndex(std::uint32_t index) noexcept {
  if (states_ != nullptr) {
    // (atlas:G6) acq_rel: GN2's hand-off. Release passes the take of the context (the
    // dissociate's or the discard's) to the reassociate that pushes; acquire sees the cell
    // writes of those that counted out before. The last one counted in pushes, else we do.
    const std::uint32_t before = states_[index].fetch_or(kPushPending, std::memory_order_acq_rel);
    if ((before >> kUsersShift) != 0) return {};
  }
  return ReleaseHeldIndex(index);
}

AtlasCore::FreeOutcome AtlasCore::ReleaseHeldIndex(std::uint32_t index) noexcept {
  if (picker_) return ReleasePicked(index);
  const std::uint32_t leaf_index = index >> leaf_shift_;
  const std::uint32_t slot = index & slot_mask_;
  if (leaf_index == 0) return ReleaseSlot(dir0(), *leaf0_, slot);
  const RecordLease lease;
  LeafHazardGuard guard(lease.record());
  const ProtectedLeaf found = LeafOfHeldIndex(guard, leaf_index);
  return ReleaseSlot(found.dir, *found.leaf, slot);
}

void AtlasCore::DestroyDiscards() noexcept {
  DiscardTable* table = discards_.load(std::memory_order_relaxed);  // single-threaded
  if (table == nullptr) return;
  for (std::uint32_t index = 0; index < mids_end_; ++index) {
    const DiscardTable::Word word = table->Load(index);
    if (word.discarded() && !word.late_taken()) {
      void* late = table->LoadLate(index);
      if (late != nullptr && destructor_) destructor_(late);
    }
  }
  DiscardTable::Destroy(table);
}

}  // namespace midatlas::internal
