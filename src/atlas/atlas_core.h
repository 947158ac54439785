// The lock-free MID atlas that both public front ends forward to (mid_atlas.cc for C++,
// capi/midatlax.cc for C), under the same names as the C++ API. docs/DESIGN.md describes the
// algorithms, their invariants (cited here as AC1.., FS1.., DM1.., LH1..) and linearization
// points. The atomic operations on a map's slots and entries live in map_nodes.h, those on the
// root here:
//
//   (atlas:A4) installs a directory (release CAS)       pairs with (hp:H1)
//   (atlas:U2) unlinks a frozen directory (acq_rel CAS)
//   (atlas:P1) moves the spare-leaf hint (relaxed CAS)
//   (atlas:C1)/(atlas:C2)/(atlas:C3) count MIDs held beyond the first map (relaxed)
//   (atlas:Q1)/(atlas:Q2) admit and release MIDs against the reserve (acq_rel / release)
//   (atlas:G1)-(atlas:G9), (atlas:M2) the per-index generation states (GN1-GN3)
//   (discard:Q9)/(discard:Q10) publish and find the quarantine table (discard_table.h)
//   (wait:W5) the waiter's fence before its last try (wait_queue.h)
#ifndef MIDATLAS_SRC_ATLAS_ATLAS_CORE_H_
#define MIDATLAS_SRC_ATLAS_ATLAS_CORE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/functional/function_ref.h"
#include "atlas/context_region.h"
#include "atlas/discard_table.h"
#include "atlas/index_picker.h"
#include "atlas/leaf_hints.h"
#include "atlas/map_nodes.h"
#include "atlas/wait_queue.h"
#include "instrumentation/atomic.h"
#include "instrumentation/chaos.h"
#include "midatlas/mid_atlas.h"
#include "reclamation/hazard_domain.h"
#include "reclamation/hazard_guard.h"
#include "reclamation/retired_contexts.h"

namespace midatlas::internal {

enum class AtlasResult : std::uint8_t {
  kOk,
  kAllInUse,
  kOutOfMemory,
  kInvalidArgument,
  kCancelled,  // a discarded MID's late response; a wait cancelled
  kTimeout,    // a wait that found no MID in time
  kPending,    // a wait queued
};

// A wait's deadline; empty: none.
using WaitDeadline = std::optional<std::chrono::steady_clock::time_point>;

// What an atlas is created with, beyond the RDBSS pair (docs/DESIGN.md section 10).
struct AtlasConfig {
  std::uint32_t max_mids = 0;      // the most MIDs held at once, 1..65535
  std::uint32_t initial_mids = 0;  // 1..max_mids
  // Of max_mids, the MIDs only an associate that may use the reserve takes (< max_mids).
  std::uint32_t reserved_mids = 0;
  // Values never handed out: any order, duplicates allowed; read only during New.
  const Mid* excluded = nullptr;
  std::uint32_t excluded_count = 0;
  // G, 0..15: a MID is gen << (16 - G) | index, and the generation of an index advances each
  // time it is handed out again (docs/DESIGN.md 10.3).
  std::uint32_t generation_bits = 0;
  // How an associate picks the index (docs/DESIGN.md 10.5): 0 compact (the free stacks), 1
  // cyclic, 2 random (an IndexPicker over the whole index space).
  std::uint32_t reuse_policy = 0;
};

// The end of the MID range an atlas covers: the smallest `end` such that [0, end) holds
// max_mids values that are not excluded (`excluded` sorted, distinct). Empty when no such
// end <= 65536 exists, i.e. max_mids MIDs could never be in use at once.
std::optional<std::uint32_t> CoveredMidsEnd(std::uint32_t max_mids, const Mid* excluded,
                                            std::uint32_t excluded_count) noexcept;

class AtlasCore {
 public:
  // Arguments must already be valid (1 <= initial_mids <= max_mids <= 65535). Returns nullptr
  // when memory is short.
  static AtlasCore* New(std::uint32_t max_mids, std::uint32_t initial_mids,
                        ContextDestructor destructor) noexcept;
  // As above, with reserved capacity, excluded values and generation bits. Returns nullptr
  // when the config is not valid (*error = kInvalidArgument: reserved_mids >= max_mids,
  // generation_bits > 15, max_mids MIDs impossible in the index space less the exclusions) or
  // memory is short (*error = kOutOfMemory).
  static AtlasCore* New(const AtlasConfig& config, ContextDestructor destructor,
                        AtlasResult* error = nullptr) noexcept;
  // Hands every remaining context to the destructor given at creation, then frees all maps
  // and the atlas (which shares its allocation with directory 0, see New). Null is a no-op.
  static void Destroy(AtlasCore* core) noexcept;
  AtlasCore(const AtlasCore&) = delete;
  AtlasCore& operator=(const AtlasCore&) = delete;

  // The operations of the public API (mid_atlas.h documents each), answering AtlasResult.
  // Map, and the leaf-0 paths of Associate and MapAndDissociate, are inline (below), so that
  // each public entry point is a single call; everything beyond leaf 0 is out of line.
  // With `use_reserve`, the reserved capacity may be taken too (reserved_mids()).
  AtlasResult Associate(void* context, Mid* mid_out, bool use_reserve = false) noexcept;
  [[nodiscard]] void* Map(Mid mid) const noexcept;
  // A discarded MID answers kCancelled with its late context the first time (when
  // `take_late`; else it leaves it) and null afterwards.
  AtlasResult MapAndDissociate(Mid mid, void** context_out, bool take_late = true) noexcept;
  AtlasResult Reassociate(Mid mid, void* new_context) noexcept;
  std::size_t IterateAndRemove(absl::FunctionRef<void(void*)> fn);

  // Quarantine (docs/DESIGN.md 10.6): takes the context of an in-use MID and keeps the MID
  // held, mapping to null, with `late_context` for a response that still arrives.
  AtlasResult Discard(Mid mid, void* late_context, void** context_out) noexcept;
  // Frees a discarded MID (or hands it to a waiter); *late_out = the late context unless a
  // late MapAndDissociate took it.
  AtlasResult ReleaseDiscarded(Mid mid, void** late_out) noexcept;
  [[nodiscard]] std::uint32_t discarded_mids() const noexcept;

  // Waiting (docs/DESIGN.md 10.8). Associates at once, or waits in the FIFO until a MID is
  // handed over or the deadline passes (kTimeout). A past deadline makes it one try.
  AtlasResult AssociateWait(void* context, Mid* mid_out, bool use_reserve,
                            WaitDeadline deadline) noexcept;
  // What a waiter asks for and how it is told (AssociateAsync, Enqueue).
  struct WaitRequest {
    void* context = nullptr;
    bool use_reserve = false;
    WaitCompletion complete = nullptr;
    void* user = nullptr;
    void (*user_routine)() = nullptr;
  };
  // Associates at once (kOk), or queues `waiter` (kPending): `request.complete` then runs
  // exactly once, with kOk on the thread that freed the MID or with kCancelled. kInvalidArgument
  // (nothing written to `waiter`) when it is still queued.
  AtlasResult AssociateAsync(const WaitRequest& request, Waiter* waiter, Mid* mid_out) noexcept;
  // true: `waiter` was queued, and its completion has run with kCancelled; false: it was
  // already handed a MID (or was never queued here).
  bool CancelWait(Waiter* waiter) noexcept;
  [[nodiscard]] std::uint32_t waiters() const noexcept { return waits_.count(); }

  [[nodiscard]] std::uint32_t max_mids() const noexcept { return max_mids_; }
  [[nodiscard]] std::uint32_t initial_mids() const noexcept { return initial_mids_; }
  [[nodiscard]] std::uint32_t reserved_mids() const noexcept { return reserved_; }
  [[nodiscard]] std::uint32_t generation_bits() const noexcept { return gen_bits_; }
  [[nodiscard]] std::uint32_t reuse_policy() const noexcept { return reuse_policy_; }
  // Tests only: makes the random policy's draws reproducible.
  void SeedPickerForTesting(std::uint64_t seed) noexcept {
    if (picker_) picker_->SeedForTesting(seed);
  }
  [[nodiscard]] MidLayout layout() const noexcept { return layout_; }
  [[nodiscard]] std::uint32_t mids_in_use() const noexcept;
  [[nodiscard]] AtlasStats stats() const noexcept;

  // Replaces the destructor that destruction will use (the C API passes it only then).
  void set_context_destructor(ContextDestructor destructor) noexcept {
    destructor_ = std::move(destructor);
  }

  // Contexts retired with a destructor, run once no guarded lookup holds them
  // (docs/DESIGN.md 10.7); destruction runs the rest before it hands out the live contexts.
  [[nodiscard]] RetiredContexts& retired_contexts() noexcept { return retired_contexts_; }

 private:
  friend class AtlasCoreTestPeer;  // tests/atlas: reconstructs interleavings step by step

  enum class TakeResult : std::uint8_t { kTaken, kRetry, kOutOfMemory };
  enum class Confirmation : std::uint8_t { kAllInUse, kRoomFound, kOutOfMemory };
  enum class WalkMode : std::uint8_t { kGuarded, kQuiescent };

  struct ProtectedLeaf {
    DirectoryMap* dir = nullptr;
    LeafMap* leaf = nullptr;  // nullptr: absent or being unlinked at some instant (AC4)
  };

  AtlasCore(std::uint32_t max_mids, std::uint32_t mids_end, std::uint32_t initial_mids,
            MidLayout layout, ContextDestructor destructor) noexcept;
  ~AtlasCore();
  bool AllocateInitialMaps() noexcept;
  bool SetExclusions(const Mid* sorted, std::uint32_t count) noexcept;

  // --- Generations (G > 0, docs/DESIGN.md 10.3). A state word per index:
  //   bits 0-14  the generation of the index's last association, encoded as gen + 1 mod 2^G
  //              (so the zeroed word of a fresh index hands out generation 0 first)
  //   bit 15     live: the association is in use (GN1)
  //   bit 16     the dissociate has taken the context; the push is left to the last
  //              reassociate still counted in (GN2)
  //   bits 17-31 reassociates counted in
  static constexpr std::uint32_t kLive = 1U << 15;
  static constexpr std::uint32_t kPushPending = 1U << 16;
  static constexpr std::uint32_t kUsersShift = 17;
  static constexpr std::uint32_t kUserOne = 1U << kUsersShift;
  static constexpr std::uint32_t kGenField = kLive - 1;
  [[nodiscard]] std::uint32_t EncodeGen(std::uint32_t gen) const noexcept {
    return (gen + 1) & gen_mask_;
  }
  [[nodiscard]] std::uint32_t GenOf(std::uint32_t state) const noexcept {
    return ((state & kGenField) + gen_mask_) & gen_mask_;
  }
  [[nodiscard]] std::uint32_t NextGen(std::uint32_t index, std::uint32_t state) const noexcept;
  Mid PublishGeneration(std::uint32_t index) noexcept;
  [[nodiscard]] std::uint32_t LoadStateForCas(std::uint32_t index) const noexcept;
  [[nodiscard]] void* MapBeyondBound(Mid mid) const noexcept;
  AtlasResult DissociateBeyondBound(Mid mid, void** context_out) noexcept;
  AtlasResult ReassociateGenerational(Mid mid, void* new_context) noexcept;
  ProtectedLeaf LeafOfHeldIndex(HazardSlot& guard, std::uint32_t leaf_index) const noexcept;
  // The slot of a MID just freed goes to the oldest eligible waiter, or back to its leaf's
  // free stack with the bookkeeping every dissociate does (counts, hints, the shrink policy,
  // the admission). Returns what is left to do once the caller holds no hazard (Settle): the
  // waiter it went to, whose completion runs then, or a serve of the queue.
  struct FreeOutcome {
    Waiter* handed = nullptr;
    bool serve_queue = false;
  };
  [[nodiscard]] FreeOutcome ReleaseSlot(DirectoryMap* dir, LeafMap& leaf,
                                        std::uint32_t slot) noexcept;
  // Runs what ReleaseSlot left: never under a hazard, since completions may call the atlas.
  void Settle(FreeOutcome outcome) noexcept;
  // As ReleaseSlot, for an index the picker handed out.
  [[nodiscard]] FreeOutcome ReleasePicked(std::uint32_t index) noexcept;

  // --- Quarantine (atlas_discard.cc) ---
  DiscardTable* DiscardsOrCreate() noexcept;
  [[nodiscard]] DiscardTable* discards() const noexcept {
    // (discard:Q10) acquire: pairs with (discard:Q9), so the table's idle words are visible.
    return discards_.load(std::memory_order_acquire);
  }
  [[nodiscard]] std::uint32_t IndexOfValue(Mid mid) const noexcept { return mid & index_mask_; }
  // MapAndDissociate found no context: a discarded MID's late response, a discard still in
  // progress (waited for), or a MID not in use.
  AtlasResult DissociateMissed(Mid mid, void** context_out, bool take_late) noexcept;
  AtlasResult DissociateOnce(Mid mid, void** context_out) noexcept;
  // Frees a held index whose context is already taken: with G > 0 first the push hand-off
  // (GN2: the last reassociate counted in may be the one to free it), then ReleaseHeldIndex.
  [[nodiscard]] FreeOutcome FreeHeldIndex(std::uint32_t index) noexcept;
  // Gives a held index back: to the picker, or through its leaf's ReleaseSlot.
  [[nodiscard]] FreeOutcome ReleaseHeldIndex(std::uint32_t index) noexcept;
  void DestroyDiscards() noexcept;

  // --- Waiting (atlas_waiting.cc) ---
  AtlasResult AssociateUnqueued(void* context, Mid* mid_out, bool use_reserve) noexcept;
  AtlasResult AssociateBehindWaiters(void* context, Mid* mid_out, bool use_reserve) noexcept;
  AtlasResult Enqueue(Waiter* waiter, const WaitRequest& request) noexcept;
  // Under waits_.mutex(): serves queued waiters, oldest first, with free MIDs; returns them.
  [[nodiscard]] Waiter* ServeQueueLocked() noexcept;
  [[nodiscard]] Waiter* ServeQueue() noexcept;
  [[nodiscard]] Waiter* HandOff(std::uint32_t index) noexcept;
  static void CompleteServed(Waiter* served) noexcept;
  // The leaf-0 dissociate's free with waiters queued (out of line).
  void FreeLeafZeroSlotToWaiters(std::uint32_t slot) noexcept;
  void CancelAllWaiters() noexcept;
  // The context is published; returns the MID (with G > 0, after the state goes live).
  Mid PublishAssociation(LeafMap& leaf, std::uint32_t slot, void* context) noexcept {
    leaf.PublishContext(slot, context);  // (atlas:A2)
    const std::uint32_t index = (leaf.index() << leaf_shift_) | slot;
    if (states_ == nullptr) [[likely]] return static_cast<Mid>(index);
    return PublishGeneration(index);
  }
  Mid PublishAtIndex(std::uint32_t index, void* context) noexcept {
    LeafMap::PublishCell(contexts_[index], context);  // (atlas:A2)
    if (states_ == nullptr) return static_cast<Mid>(index);
    return PublishGeneration(index);
  }

  // --- Reuse policies other than compact (docs/DESIGN.md 10.5): the picker hands out
  // indexes; no leaf's free stack is used, and the cells are reached directly. ---
  AtlasResult TakePicked(void* context, Mid* mid_out) noexcept;
  AtlasResult DissociatePicked(Mid mid, void** context_out) noexcept;

  [[nodiscard]] Mid MidOf(std::uint32_t leaf, std::uint32_t slot) const noexcept {
    return static_cast<Mid>((leaf << leaf_shift_) | slot);
  }
  [[nodiscard]] std::uint32_t ValidSlots(std::uint32_t leaf) const noexcept;
  // The excluded slots of a leaf (EX1), as MIDs, sorted: [first, last).
  [[nodiscard]] std::pair<const std::uint32_t*, const std::uint32_t*> ExcludedIn(
      std::uint32_t leaf) const noexcept;
  // Slots of a leaf that can ever be held: the valid ones less the excluded ones.
  [[nodiscard]] std::uint32_t UsableSlots(std::uint32_t leaf) const noexcept;
  LeafMap* CreateLeaf(std::uint32_t leaf_index, std::uint64_t serial, bool first_held) noexcept;

  // Finds the attached leaf `leaf_index` (> 0) with one protection attempt through `guard`:
  // a leaf of directory 0 is protected itself (directory 0 is permanent, AC2); a leaf of any
  // other directory through its directory, whose hazard guards every leaf unlinked from it
  // (HD1, AC5). A null leaf means that at some instant during the call the leaf was absent
  // or being unlinked (AC4). Wait-free.
  ProtectedLeaf ProtectLeafOnce(HazardSlot& guard, std::uint32_t leaf_index) const noexcept;
  [[nodiscard]] bool LeafAttached(std::uint32_t leaf_index) const noexcept;

  // The one walk over the directory-by-leaf structure: calls visit(leaf_index, dir, leaf)
  // for every leaf index below leaf_count_ in order, dir and leaf null when absent, and stops
  // early (returning false) when visit returns false. kGuarded: directory and leaf are
  // protected while visit runs (any thread, any time). kQuiescent: plain loads, for
  // destruction only.
  template <WalkMode Mode, typename Visit>
  bool ForEachLeaf(Visit&& visit) const;

  AtlasResult AssociateBeyondLeafZero(void* context, Mid* mid_out) noexcept;
  AtlasResult AssociateAdmitted(void* context, Mid* mid_out, bool use_reserve) noexcept;
  void ReleaseAdmission() noexcept {
    // (atlas:Q2) seq_cst: release, since a MID's push (stack:S2) - or a failed take - comes
    // before this in program order, so an admission (atlas:Q1) that reads this decrement also
    // sees the push (RS1: admitted MIDs >= held MIDs at every instant); seq_cst, so that a
    // waiter's fence (wait:W5) orders it before the waiter's own admission or the freer's count
    // load (wait:W1) sees the waiter (WQ1 for the picker, whose Release is not seq_cst). On
    // x86 the same instruction as release.
    admitted_.fetch_sub(1, std::memory_order_seq_cst);
  }
  AtlasResult DissociateBeyondLeafZero(Mid mid, void** context_out) noexcept;
  bool TakeFromLeaf(LeafMap& leaf, void* context, Mid* mid_out) noexcept;
  TakeResult TakeFromSubordinate(std::uint32_t leaf_index, void* context, Mid* mid_out) noexcept;
  DirectoryMap* ProtectOrGrowDirectory(HazardGuard& guard, std::uint32_t dir_index) noexcept;
  TakeResult GrowLeaf(HazardGuard& guard, DirectoryMap& dir, std::uint32_t leaf_index,
                      void* context, Mid* mid_out) noexcept;
  void ClearHintIfFull(LeafMap& leaf) noexcept;
  void CountSubordinateTaken() noexcept {
    // (atlas:C1) relaxed: a count, read only by mids_in_use. It comes before the context's
    // publication (atlas:A2)/(atlas:A3), so the dissociate that frees this MID - which
    // synchronizes with that publication - decrements after it in the counter's order.
    subordinate_held_.fetch_add(1, std::memory_order_relaxed);
  }
  void CountSubordinateFreed() noexcept {
    // (atlas:C2) seq_cst: a count as (atlas:C1); seq_cst so that a waiter's look at
    // mids_in_use after its fence (wait:W5) never misses a decrement ordered before it, which
    // would make it skip a MID that is free (WQ1). On x86 the same instruction as relaxed.
    subordinate_held_.fetch_sub(1, std::memory_order_seq_cst);
  }
  Confirmation ConfirmAllInUse() noexcept;

  void OnLeafDrained(DirectoryMap& dir, LeafMap& leaf) noexcept;
  void UnlinkFrozenLeaf(DirectoryMap& dir, LeafMap& leaf) noexcept;
  void UnlinkFrozenDirectory(DirectoryMap& dir) noexcept;
  void CountLeafOut(DirectoryMap& dir) noexcept;

  // --- Immutable after construction; everything Map reads sits in the first cache line. ---
  // MIDs below this map straight to their cell: mids_end_ with G = 0, none with G > 0 (whose
  // MIDs carry a generation), so either way Map's hot path is one compare.
  std::uint32_t map_bound_ = 0;
  // MIDs below this are dissociated by the inline leaf-0 path: leaf 0's range with G = 0 and
  // the compact policy, none otherwise. One compare.
  std::uint32_t leaf0_bound_ = 0;
  Atomic<void*>* contexts_ = nullptr;  // region_.cells(): the context of every MID
  // 0: no reserve.
  std::uint32_t reserved_ = 0;
  // Associates count themselves in against the limits (admitted_, RS1): with a reserve, and
  // with a picker (whose index space is larger than the maximum). Else Associate and
  // MapAndDissociate never touch admitted_ (one branch).
  bool admission_ = false;
  // G > 0 only (else null, tested once by Associate on this line): the state of every index.
  std::unique_ptr<Atomic<std::uint32_t>[]> states_;
  std::uint32_t leaf_shift_;  // == layout_.leaf_bits
  std::uint32_t slot_mask_;
  std::uint32_t dir_shift_;   // == layout_.dir_bits
  std::uint32_t entry_mask_;
  LeafMap* leaf0_ = nullptr;  // permanent: MIDs below 2^leaf_bits never need a hazard
  // Directory 0 lives right after this object, in the same allocation, so Map reaches its
  // leaf pointers at a fixed offset from `this`: one dependent load fewer than a pointer.
  // Permanent (AC2); root_[0] always holds it.
  [[nodiscard]] DirectoryMap* dir0() const noexcept {
    return reinterpret_cast<DirectoryMap*>(const_cast<AtlasCore*>(this) + 1);
  }
  // The root is embedded for the same reason; only the first dir_count_ entries are used.
  static constexpr std::uint32_t kMaxRootEntries = 1U << ((16 - kMinLeafBits) / 2);
  std::array<Atomic<DirectoryMap*>, kMaxRootEntries> root_{};
  std::uint32_t leaf_count_;      // leaves needed to cover [0, max_mids)
  std::uint32_t dir_count_ = 0;   // directories needed to cover those leaves
  std::uint32_t leaf_capacity_;
  std::uint32_t dir_entries_;
  std::uint32_t initial_mids_;
  std::uint32_t max_mids_;
  // Indexes [0, mids_end_) exist: max_mids_ of them plus the excluded ones below (EX1).
  std::uint32_t mids_end_;
  // G > 0 only (else null and 0): the excluded MID values (sorted, distinct) NextGen skips.
  std::unique_ptr<Mid[]> excluded_values_;
  std::uint32_t excluded_values_count_ = 0;
  std::uint32_t gen_bits_ = 0;
  std::uint32_t gen_mask_ = 0;
  std::uint32_t reuse_policy_ = 0;
  std::unique_ptr<IndexPicker> picker_;  // cyclic and random policies only
  std::uint32_t index_bits_ = 16;
  std::uint32_t index_mask_ = 0xFFFF;
  MidLayout layout_;
  // EX1: the excluded values below mids_end_, sorted and distinct (null when none).
  std::unique_ptr<std::uint32_t[]> excluded_;
  std::uint32_t excluded_count_ = 0;
  HazardDomain& domain_;
  ContextDestructor destructor_;
  ContextRegion region_;

  // --- Shared, written by associate/dissociate on rare transitions. ---
  LeafHints hints_;
  // Serial numbers of the leaves this atlas creates (AC6's key). Only growers touch it.
  Atomic<std::uint64_t> next_leaf_serial_{0};
  // MIDs held in subordinate leaves, so that mids_in_use is O(1): leaf 0's count is its
  // free-stack head, and only calls beyond leaf 0 touch this line (its own: it is written by
  // every such associate and dissociate).
  alignas(64) Atomic<std::uint32_t> subordinate_held_{0};
  // The one drained subordinate leaf kept attached as a spare (0 = none): see OnLeafDrained.
  // Written only when a leaf drains, so it may share a line with the read-mostly fields.
  Atomic<std::uint32_t> spare_leaf_{0};
  // RS1: MIDs admitted against the limits (only with admission_): incremented before a
  // MID is taken, decremented after it is freed or the take failed. A line of its own.
  alignas(64) Atomic<std::uint32_t> admitted_{0};
  // The quarantine, created by the first discard (null until then).
  Atomic<DiscardTable*> discards_{nullptr};
  // The FIFO of waiters; its count sits on a line of its own.
  WaitQueue waits_;
  // Retired contexts (docs/DESIGN.md 10.7): written by Retire and its scans only, so a line
  // of its own.
  alignas(64) RetiredContexts retired_contexts_{HazardDomain::Default()};
};

// ----------------------------------------------------------------------------------------
// Hot paths, inline so that MidAtlas::Map and RxMapMidToContext are one call each.

inline AtlasCore::ProtectedLeaf AtlasCore::ProtectLeafOnce(HazardSlot& guard,
                                                           std::uint32_t leaf_index) const noexcept {
  // Directory 0's leaves first, by one compare: no shift or mask on the most common path.
  if (leaf_index < dir_entries_) return {dir0(), guard.TryProtect(dir0()->leaf(leaf_index))};
  DirectoryMap* dir = guard.TryProtect(root_[leaf_index >> dir_shift_]);
  if (dir == nullptr) return {};
  return {dir, dir->LoadLeaf(leaf_index & entry_mask_)};  // (atlas:W1): no validation needed (AC5)
}

// Map: wait-free, one bounds check and one load: every MID's context sits in the flat
// ContextRegion, so no map is walked and nothing is protected (context_region.h says why a
// context read while its page is returned is still right). Linearization point: the load.
inline void* AtlasCore::Map(Mid mid) const noexcept {
  if (mid >= map_bound_) [[unlikely]] return MapBeyondBound(mid);
  // (atlas:M1) acquire: pairs with (atlas:A2)/(atlas:R2), so whatever the associating thread
  // wrote into the context before associating is visible to the mapper.
  return contexts_[mid].load(std::memory_order_acquire);
}

// Map with G > 0 (and, with G = 0, a MID beyond the covered ones). Wait-free: two loads.
// Inline too, so that Map with generations costs two loads and no call.
inline void* AtlasCore::MapBeyondBound(Mid mid) const noexcept {
  if (states_ == nullptr) return nullptr;
  const std::uint32_t index = mid & index_mask_;
  if (index >= mids_end_) return nullptr;
  // (atlas:M2) acquire: as (atlas:M1), pairs with (atlas:A2)/(atlas:R2); it also orders the
  // state load after it, so a context published by an association is never checked against
  // an older state than that association's (atlas:G2).
  void* context = contexts_[index].load(std::memory_order_acquire);
  if (context == nullptr) return nullptr;
  // (atlas:G3) acquire: pairs with (atlas:G2). Linearization point: this load, when it shows
  // the MID's generation live (the context was the association's then: GN1).
  const std::uint32_t state = states_[index].load(std::memory_order_acquire);
  const std::uint32_t want = EncodeGen(std::uint32_t{mid} >> index_bits_) | kLive;
  return (state & (kGenField | kLive)) == want ? context : nullptr;
}

// Associate: lock-free. Linearization point: the release store of the context (atlas:A2), or
// the release CAS that installs a new leaf already holding it (atlas:A3).
inline AtlasResult AtlasCore::Associate(void* context, Mid* mid_out, bool use_reserve) noexcept {
  if (context == nullptr || mid_out == nullptr) [[unlikely]] {
    return AtlasResult::kInvalidArgument;
  }
  // No barging (docs/DESIGN.md 10.8): while a waiter is queued, a new caller goes behind it.
  if (waits_.maybe_waiting()) [[unlikely]] {
    return AssociateBehindWaiters(context, mid_out, use_reserve);
  }
  return AssociateUnqueued(context, mid_out, use_reserve);
}

inline AtlasResult AtlasCore::AssociateUnqueued(void* context, Mid* mid_out,
                                                bool use_reserve) noexcept {
  if (admission_) [[unlikely]] return AssociateAdmitted(context, mid_out, use_reserve);
  if (TakeFromLeaf(*leaf0_, context, mid_out)) [[likely]] return AtlasResult::kOk;
  return AssociateBeyondLeafZero(context, mid_out);
}

inline bool AtlasCore::TakeFromLeaf(LeafMap& leaf, void* context, Mid* mid_out) noexcept {
  const FreeStack::PopResult popped = leaf.stack().Pop(leaf.links());  // (stack:S3)
  if (popped.index == FreeStack::kNone) [[unlikely]] {
    if (leaf.index() != 0) ClearHintIfFull(leaf);
    return false;
  }
  MIDATLAS_CHAOS_POINT();
  if (leaf.index() != 0) CountSubordinateTaken();  // (atlas:C1)
  // AC1: a slot on the free stack holds null, so until this store Map returns null for it.
  *mid_out = PublishAssociation(leaf, popped.index, context);  // (atlas:A2)
  if (popped.free_after == 0 && leaf.index() != 0) [[unlikely]] ClearHintIfFull(leaf);
  return true;
}

// MapAndDissociate: lock-free. Linearization point: the exchange that takes the context
// (atlas:D1), or the load / failed protection that shows the MID free.
inline AtlasResult AtlasCore::MapAndDissociate(Mid mid, void** context_out,
                                               bool take_late) noexcept {
  if (context_out == nullptr) [[unlikely]] return AtlasResult::kInvalidArgument;
  *context_out = nullptr;
  if (mid >= leaf0_bound_) [[unlikely]] {
    const AtlasResult result = DissociateOnce(mid, context_out);
    if (result != AtlasResult::kInvalidArgument) return result;
    return DissociateMissed(mid, context_out, take_late);
  }
  void* context = leaf0_->TakeContext(mid);  // (atlas:D1)
  if (context == nullptr) return DissociateMissed(mid, context_out, take_late);
  *context_out = context;
  if (waits_.count() != 0) [[unlikely]] {  // (wait:W1) before the push: hand the MID over
    FreeLeafZeroSlotToWaiters(mid);
    return AtlasResult::kOk;
  }
  leaf0_->stack().Push(leaf0_->links(), mid);  // free after use: (stack:S2) releases the slot
  if (admission_) [[unlikely]] ReleaseAdmission();  // (atlas:Q2), after the push (RS1)
  // (wait:W1) after the push: a waiter queued meanwhile may have missed it (wait_queue.h).
  if (waits_.count() != 0) [[unlikely]] Settle({.serve_queue = true});
  return AtlasResult::kOk;
}

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_ATLAS_CORE_H_
