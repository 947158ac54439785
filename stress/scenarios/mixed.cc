// mixed (the default scenario of atlas_stress): many threads associate, map, reassociate and
// dissociate MIDs on one shared atlas while some of them grow it by thousands of MIDs and
// shrink it again, so that leaf and directory maps are attached, drained, detached and
// retired over and over under readers. From --start=1 (16-slot leaves, the most leaf maps per
// MID) it is the grow/shrink storm. Sized by --max, --start, --round (operations per thread
// between checkpoints) and --wave (most MIDs one wave takes).
//
// ROLES (thread t, by t % 3; one thread is a wave, two are a wave and a churner)
//   wave     takes up to --wave MIDs one by one, then frees them all (oldest first, newest
//            first or scattered), so whole leaves and directories fill, drain and detach
//   churn    holds up to 64 MIDs: associates, reassociates, maps its own, dissociates
//   mapper   maps random MIDs, reaps stealable MIDs of other threads (MapAndDissociate from a
//            thread that did not associate, as a receive path does), and probes MIDs >= max
//
// HOW VIOLATIONS ARE DETECTED
//   owner[mid]   the test's own record of who holds each MID: 0 = free, else the holder's
//                thread number + 1, plus kStealable once the holder has finished setting the
//                MID up. A successful Associate exchanges 0 -> holder, so a MID handed to two
//                holders at once shows up as a non-zero old value. A holder (or a reaper that
//                claimed it) resets the entry to 0 *before* MapAndDissociate, while the MID is
//                still held, so the next Associate of that MID must find 0.
//   contexts     every context is either a thread's placeholder (associated first, because
//                the MID is not known before Associate returns) or the record reserved for
//                (holder, mid), installed with Reassociate. A record's mid and owner never
//                change, so every non-null Map(m) must be a placeholder or a record whose mid
//                is m: anything else is a context of another MID, or garbage.
//   publication  a record's generation and payload are plain fields, written by the holder
//                before Reassociate and read only by whichever thread takes the record back
//                with MapAndDissociate (the holder or a reaper). The test's own atomics are
//                relaxed and add no edge from writer to reader, so only the atlas's release
//                (A2/R2) and acquire (D1) order the two: TSan reports a missing edge as a
//                data race on the record.
//   exactness    a holder maps its own MID while nobody may take it and must get exactly
//                what it associated; MapAndDissociate must return exactly that too.
//   checkpoints  every --round operations per thread all threads meet at a barrier; with no
//                call running, the completion step maps every MID and compares with owner[],
//                checks mids_in_use() and the number of attached maps against the shrink
//                policy (each drained leaf is detached except one spare, and its directory).
//   the end      after every thread has freed its MIDs: nothing in use, every MID maps to
//                null, the maps are back to the first ones plus at most one spare, all max
//                MIDs can be taken again (then one more is refused) and freed, and
//                destroying the atlas hands out no context.
#include <algorithm>
#include <array>
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
namespace {

// ----------------------------------------------------------------------------------------
// Contexts.

// The context a holder installs once it knows its MID. One per (holder thread, MID), so
// `mid` and `owner` never change after setup and any thread may read them at any time.
struct Record {
  std::uint32_t mid = 0;
  std::uint32_t owner = 0;
  // Written plainly by the holder before Reassociate publishes the record, read plainly only
  // by the one thread MapAndDissociate hands the record to. No test atomic orders the two.
  std::uint64_t generation = 0;
  std::uint64_t payload = 0;
  // Set by the holder when it publishes the record; cleared (release) by the taker once it
  // has read the plain fields, and checked (acquire) by the holder before it writes them
  // again. This orders the taker's reads before the next writes - the opposite direction of
  // the edge under test - so it cannot hide a missing release/acquire in the atlas.
  std::atomic<bool> in_use{false};
};

// What a thread associates first. Immutable: `owner` is the thread number.
struct Placeholder {
  std::uint32_t owner = 0;
};

std::uint64_t PayloadFor(std::uint32_t mid, std::uint32_t owner, std::uint64_t generation) {
  std::uint64_t x = generation * 0x9E3779B97F4A7C15ULL ^ (std::uint64_t{mid} << 32) ^ owner;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ULL;
  return x ^ (x >> 32);
}

constexpr std::uint32_t kStealable = 1U << 16;

std::uint32_t HolderBits(int tid) { return static_cast<std::uint32_t>(tid) + 1; }

// What a worker counts besides operations, checks and refusals (harness Local); each is one
// field of the summary line, named in kCountNames.
enum Count {
  kAssociated,
  kMaps,
  kMapHits,
  kReassociated,
  kDissociated,
  kReaped,
  kLostToReaper,
  kRecordBusy,
  kInvalidCalls,
  kWaves,
  kCountKinds,
};
constexpr std::array<const char*, kCountKinds> kCountNames = {
    "associate", "map", "map_hits", "reassociate", "dissociate", "reaped", "lost_to_reaper",
    "record_busy", "invalid", "waves"};
using Counts = std::array<std::uint64_t, kCountKinds>;

// ----------------------------------------------------------------------------------------
// Shared state.

class World {
 public:
  World(const Flags& flags, MidAtlas& atlas)
      : flags_(flags),
        atlas_(atlas),
        max_(flags.max),
        owner_(new std::atomic<std::uint32_t>[flags.max]),
        expected_(new std::atomic<void*>[flags.max]),
        records_(static_cast<std::size_t>(flags.threads) * flags.max),
        placeholders_(static_cast<std::size_t>(flags.threads)) {
    for (std::uint32_t m = 0; m < max_; ++m) {
      owner_[m].store(0, std::memory_order_relaxed);  // before any thread starts
      expected_[m].store(nullptr, std::memory_order_relaxed);
    }
    for (int t = 0; t < flags.threads; ++t) {
      placeholders_[static_cast<std::size_t>(t)].owner = static_cast<std::uint32_t>(t);
      for (std::uint32_t m = 0; m < max_; ++m) {
        Record& record = RecordFor(t, m);
        record.mid = m;
        record.owner = static_cast<std::uint32_t>(t);
      }
    }
  }

  const Flags& flags() const { return flags_; }
  MidAtlas& atlas() { return atlas_; }
  std::uint32_t max() const { return max_; }
  std::atomic<std::uint32_t>& owner(Mid m) { return owner_[m]; }
  // relaxed throughout: written and read by the holder itself, or after a barrier.
  std::atomic<void*>& expected(Mid m) { return expected_[m]; }
  std::atomic<std::int64_t>& held_now() { return held_now_; }

  Record& RecordFor(int tid, std::uint32_t mid) {
    return records_[static_cast<std::size_t>(tid) * max_ + mid];
  }
  void* PlaceholderOf(int tid) { return &placeholders_[static_cast<std::size_t>(tid)]; }

  // Classifies a context without dereferencing anything that is not one of ours.
  const Placeholder* AsPlaceholder(const void* ctx) const {
    const auto p = reinterpret_cast<std::uintptr_t>(ctx);
    const auto base = reinterpret_cast<std::uintptr_t>(placeholders_.data());
    if (p < base || p >= base + placeholders_.size() * sizeof(Placeholder)) return nullptr;
    if ((p - base) % sizeof(Placeholder) != 0) return nullptr;
    return &placeholders_[(p - base) / sizeof(Placeholder)];
  }
  Record* AsRecord(const void* ctx) {
    const auto p = reinterpret_cast<std::uintptr_t>(ctx);
    const auto base = reinterpret_cast<std::uintptr_t>(records_.data());
    if (p < base || p >= base + records_.size() * sizeof(Record)) return nullptr;
    if ((p - base) % sizeof(Record) != 0) return nullptr;
    return &records_[(p - base) / sizeof(Record)];
  }

  // A context that Map(mid) may legitimately return while other threads run.
  bool ValidContextFor(Mid mid, void* ctx) {
    if (AsPlaceholder(ctx) != nullptr) return true;
    const Record* record = AsRecord(ctx);
    return record != nullptr && record->mid == mid;
  }

 private:
  const Flags& flags_;
  MidAtlas& atlas_;
  const std::uint32_t max_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> owner_;
  std::unique_ptr<std::atomic<void*>[]> expected_;
  std::vector<Record> records_;
  std::vector<Placeholder> placeholders_;
  // MIDs the test believes are held: raised after Associate returns, lowered before the
  // MID is handed back, so it never exceeds what the atlas really holds.
  std::atomic<std::int64_t> held_now_{0};
};

// ----------------------------------------------------------------------------------------
// One worker thread.

enum class Role { kWave, kChurn, kMapper };

class Worker {
 public:
  Worker(World& world, int tid, std::uint64_t seed)
      : world_(world),
        tid_(tid),
        me_(HolderBits(tid)),
        role_(RoleFor(tid, world.flags().threads)),
        rng_(RngFor(seed, tid)) {}

  static Role RoleFor(int tid, int threads) {
    if (threads == 1) return Role::kWave;
    if (threads == 2) return tid == 0 ? Role::kWave : Role::kChurn;
    switch (tid % 3) {
      case 0:
        return Role::kWave;
      case 1:
        return Role::kChurn;
      default:
        return Role::kMapper;
    }
  }

  Role role() const { return role_; }
  const Local& local() const { return local_; }
  const Counts& counts() const { return counts_; }
  std::size_t held() const { return held_.size(); }

  void Step() {
    ++local_.ops;
    switch (role_) {
      case Role::kWave:
        WaveStep();
        break;
      case Role::kChurn:
        ChurnStep();
        break;
      case Role::kMapper:
        MapperStep();
        break;
    }
  }

  // Frees everything this thread still holds (no other thread is running).
  void ReleaseAll() {
    while (!held_.empty() && !Failed()) DissociateHeld(held_.size() - 1);
  }

 private:
  std::uint32_t Below(std::uint32_t n) { return stress::Below(rng_, n); }
  bool Percent(std::uint32_t p) { return Below(100) < p; }

  // A MID to map or reap: half the time anywhere below max, half the time in the low range
  // that is densely used.
  Mid RandomMid() {
    const std::uint32_t max = world_.max();
    const std::uint32_t range = Percent(50) ? max : std::min<std::uint32_t>(max, 4096);
    return static_cast<Mid>(Below(range));
  }

  // --- The operations. ------------------------------------------------------------------

  // Associates this thread's placeholder, claims the MID in owner[], checks Map, sometimes
  // installs the record. Returns false when the atlas is full.
  bool AssociateOne() {
    MidAtlas& atlas = world_.atlas();
    void* placeholder = world_.PlaceholderOf(tid_);
    absl::StatusOr<Mid> mid = atlas.Associate(placeholder);
    if (!mid.ok()) {
      if (IsAllMidsInUse(mid.status())) {
        ++local_.refused;
        return false;
      }
      Fail("thread %d: Associate failed: %s", tid_, mid.status().ToString().c_str());
      return false;
    }
    ++counts_[kAssociated];
    const Mid m = *mid;
    ++local_.checks;
    if (m >= world_.max()) {
      Fail("thread %d: Associate returned MID %u, not below max %u", tid_, m, world_.max());
      return false;
    }
    ++local_.checks;
    // relaxed: the exchange detects two holders through its atomicity alone.
    const std::uint32_t previous = world_.owner(m).exchange(me_, std::memory_order_relaxed);
    if (previous != 0) {
      Fail("thread %d: Associate handed out MID %u, still held by thread %u (state %#x)", tid_,
           m, (previous & 0xFFFF) - 1, previous);
    }
    ++local_.checks;
    const std::int64_t held = world_.held_now().fetch_add(1, std::memory_order_relaxed) + 1;
    if (held > static_cast<std::int64_t>(world_.max())) {
      Fail("thread %d: %" PRId64 " MIDs held at once, max is %u", tid_, held, world_.max());
    }
    world_.expected(m).store(placeholder, std::memory_order_relaxed);
    CheckOwnMap(m, "after Associate");
    if (Percent(40)) InstallRecord(m);
    world_.owner(m).store(me_ | kStealable, std::memory_order_relaxed);
    held_.push_back(m);
    return true;
  }

  // The holder maps its own MID while nobody may take it: must be exactly what it installed.
  void CheckOwnMap(Mid m, const char* when) {
    ++counts_[kMaps];
    ++local_.checks;
    void* want = world_.expected(m).load(std::memory_order_relaxed);
    void* got = world_.atlas().Map(m);
    if (got != want) {
      Fail("thread %d: Map(%u) %s returned %p, expected %p", tid_, m, when, got, want);
    }
  }

  // Installs (or refreshes) this thread's record for `m` with Reassociate. The caller holds
  // `m` and has not marked it stealable.
  void InstallRecord(Mid m) {
    Record& record = world_.RecordFor(tid_, m);
    void* current = world_.expected(m).load(std::memory_order_relaxed);
    // acquire: pairs with the release in TakeBack, so a reaper's reads of the previous
    // publication are done before we write the fields again.
    if (current != &record && record.in_use.load(std::memory_order_acquire)) {
      ++counts_[kRecordBusy];  // a reaper is still reading it; keep what we have
      return;
    }
    record.generation = ++generation_;
    record.payload = PayloadFor(m, record.owner, record.generation);
    record.in_use.store(true, std::memory_order_relaxed);  // only this thread reads it now
    const absl::Status status = world_.atlas().Reassociate(m, &record);
    ++counts_[kReassociated];
    ++local_.checks;
    if (!status.ok()) {
      Fail("thread %d: Reassociate of held MID %u failed: %s", tid_, m,
           status.ToString().c_str());
      return;
    }
    world_.expected(m).store(&record, std::memory_order_relaxed);
    CheckOwnMap(m, "after Reassociate");
  }

  // Claims a held MID back from stealable; false when a reaper took it meanwhile.
  bool Unshare(Mid m) {
    std::uint32_t state = me_ | kStealable;
    return world_.owner(m).compare_exchange_strong(state, me_, std::memory_order_relaxed,
                                                   std::memory_order_relaxed);
  }

  void Reassociate(std::size_t index) {
    const Mid m = held_[index];
    if (!Unshare(m)) {
      DropHeld(index);
      return;
    }
    MidAtlas& atlas = world_.atlas();
    void* current = world_.expected(m).load(std::memory_order_relaxed);
    if (Percent(10)) {
      // A null context is refused and changes nothing.
      ++counts_[kInvalidCalls];
      ++local_.checks;
      if (atlas.Reassociate(m, nullptr).code() != absl::StatusCode::kInvalidArgument) {
        Fail("thread %d: Reassociate(%u, nullptr) was not InvalidArgument", tid_, m);
      }
      CheckOwnMap(m, "after a refused Reassociate");
    }
    if (world_.AsRecord(current) != nullptr && Percent(50)) {
      // Back to the placeholder; the record is ours again at once (nobody else took it).
      void* placeholder = world_.PlaceholderOf(tid_);
      ++counts_[kReassociated];
      ++local_.checks;
      const absl::Status status = atlas.Reassociate(m, placeholder);
      if (!status.ok()) {
        Fail("thread %d: Reassociate of held MID %u failed: %s", tid_, m,
             status.ToString().c_str());
      } else {
        world_.expected(m).store(placeholder, std::memory_order_relaxed);
        world_.AsRecord(current)->in_use.store(false, std::memory_order_release);
        CheckOwnMap(m, "after Reassociate to the placeholder");
      }
    } else {
      InstallRecord(m);
    }
    world_.owner(m).store(me_ | kStealable, std::memory_order_relaxed);
  }

  void MapOwn(std::size_t index) {
    const Mid m = held_[index];
    if (!Unshare(m)) {
      DropHeld(index);
      return;
    }
    CheckOwnMap(m, "of a held MID");
    world_.owner(m).store(me_ | kStealable, std::memory_order_relaxed);
  }

  void DissociateHeld(std::size_t index) {
    const Mid m = held_[index];
    DropHeld(index);
    std::uint32_t state = me_ | kStealable;
    // Give up the claim while still holding the MID, so that the next holder finds 0.
    if (!world_.owner(m).compare_exchange_strong(state, 0, std::memory_order_relaxed,
                                                 std::memory_order_relaxed)) {
      ++counts_[kLostToReaper];  // a reaper freed it (and someone may hold it again)
      return;
    }
    world_.held_now().fetch_sub(1, std::memory_order_relaxed);
    void* want = world_.expected(m).load(std::memory_order_relaxed);
    absl::StatusOr<void*> got = world_.atlas().MapAndDissociate(m);
    ++counts_[kDissociated];
    ++local_.checks;
    if (!got.ok()) {
      Fail("thread %d: MapAndDissociate of held MID %u failed: %s", tid_, m,
           got.status().ToString().c_str());
      return;
    }
    if (*got != want) {
      Fail("thread %d: MapAndDissociate(%u) returned %p, expected %p", tid_, m, *got, want);
      return;
    }
    TakeBack(m, static_cast<std::uint32_t>(tid_), *got);
  }

  // Checks a context that MapAndDissociate handed to this thread alone.
  void TakeBack(Mid m, std::uint32_t holder, void* ctx) {
    ++local_.checks;
    if (const Placeholder* placeholder = world_.AsPlaceholder(ctx)) {
      if (placeholder->owner != holder) {
        Fail("thread %d: MID %u held by thread %u gave back thread %u's placeholder", tid_, m,
             holder, placeholder->owner);
      }
      return;
    }
    Record* record = world_.AsRecord(ctx);
    if (record == nullptr) {
      Fail("thread %d: MapAndDissociate(%u) returned %p, which no thread associated", tid_, m,
           ctx);
      return;
    }
    if (record->mid != m || record->owner != holder) {
      Fail("thread %d: MID %u held by thread %u gave back the record of MID %u, thread %u",
           tid_, m, holder, record->mid, record->owner);
      return;
    }
    // Plain reads of what the holder wrote before Reassociate (see Record).
    ++local_.checks;
    if (record->payload != PayloadFor(record->mid, record->owner, record->generation)) {
      Fail("thread %d: record of MID %u (thread %u) has payload %#" PRIx64
           " for generation %" PRIu64 ": the holder's writes were not published",
           tid_, m, holder, record->payload, record->generation);
    }
    record->in_use.store(false, std::memory_order_release);  // pairs with InstallRecord
  }

  void DropHeld(std::size_t index) {
    held_[index] = held_.back();
    held_.pop_back();
  }

  // Any thread maps any MID: null, a placeholder, or a record of that very MID.
  void MapAny() {
    const Mid m = RandomMid();
    ++counts_[kMaps];
    ++local_.checks;
    void* ctx = world_.atlas().Map(m);
    if (ctx == nullptr) return;
    ++counts_[kMapHits];
    if (!world_.ValidContextFor(m, ctx)) {
      const Record* record = world_.AsRecord(ctx);
      Fail("thread %d: Map(%u) returned %p, %s%u", tid_, m, ctx,
           record != nullptr ? "the record of MID " : "never associated ",
           record != nullptr ? record->mid : 0U);
    }
  }

  // Out-of-range MIDs are refused by every call (only when max < 65536 leaves room).
  void OutOfRange() {
    const std::uint32_t max = world_.max();
    if (max >= 65536) return;
    const Mid m = static_cast<Mid>(max + Below(65536 - max));
    MidAtlas& atlas = world_.atlas();
    ++counts_[kInvalidCalls];
    local_.checks += 3;
    if (atlas.Map(m) != nullptr) Fail("thread %d: Map(%u) >= max was not null", tid_, m);
    if (atlas.MapAndDissociate(m).status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("thread %d: MapAndDissociate(%u) >= max was not InvalidArgument", tid_, m);
    }
    if (atlas.Reassociate(m, world_.PlaceholderOf(tid_)).code() !=
        absl::StatusCode::kInvalidArgument) {
      Fail("thread %d: Reassociate(%u) >= max was not InvalidArgument", tid_, m);
    }
  }

  // Takes a stealable MID away from its holder, as a receive path does with a final
  // response: exactly one of holder and reaper may win the claim, and the winner alone must
  // get the context back.
  void Reap() {
    const Mid m = RandomMid();
    std::uint32_t state = world_.owner(m).load(std::memory_order_relaxed);
    if ((state & kStealable) == 0) return;
    if (!world_.owner(m).compare_exchange_strong(state, 0, std::memory_order_relaxed,
                                                 std::memory_order_relaxed)) {
      return;
    }
    world_.held_now().fetch_sub(1, std::memory_order_relaxed);
    const std::uint32_t holder = (state & 0xFFFF) - 1;
    absl::StatusOr<void*> got = world_.atlas().MapAndDissociate(m);
    ++counts_[kReaped];
    ++local_.checks;
    if (!got.ok()) {
      Fail("thread %d: reaping MID %u held by thread %u failed: %s", tid_, m, holder,
           got.status().ToString().c_str());
      return;
    }
    TakeBack(m, holder, *got);
  }

  // --- Roles. -----------------------------------------------------------------------------

  // Grow by up to --wave MIDs, then shrink back to nothing, in one of three orders, so that
  // whole leaves drain (lowest first, highest first, or scattered).
  void WaveStep() {
    if (growing_) {
      if (held_.size() >= wave_target_ || !AssociateOne()) {
        growing_ = false;
        order_ = Below(3);
        if (order_ == 0) std::reverse(held_.begin(), held_.end());  // oldest (lowest) first
      } else if (Percent(2)) {
        MapAny();
      }
      return;
    }
    if (held_.empty()) {
      growing_ = true;
      ++counts_[kWaves];
      wave_target_ = 1 + Below(std::min(world_.max(), world_.flags().wave));
      return;
    }
    // Orders 0 and 1 take from the back (oldest first after the reverse above, newest first
    // otherwise); order 2 takes at random.
    const std::size_t index = order_ == 2 ? Below(static_cast<std::uint32_t>(held_.size()))
                                          : held_.size() - 1;
    DissociateHeld(index);
  }

  void ChurnStep() {
    constexpr std::size_t kMostHeld = 64;
    const std::uint32_t dice = Below(100);
    if (held_.empty() || (dice < 30 && held_.size() < kMostHeld)) {
      AssociateOne();
      return;
    }
    const std::size_t index = Below(static_cast<std::uint32_t>(held_.size()));
    if (dice < 60) {
      DissociateHeld(index);
    } else if (dice < 75) {
      Reassociate(index);
    } else if (dice < 85) {
      MapOwn(index);
    } else if (dice < 98) {
      MapAny();
    } else {
      ++counts_[kInvalidCalls];
      ++local_.checks;
      if (world_.atlas().Associate(nullptr).status().code() !=
          absl::StatusCode::kInvalidArgument) {
        Fail("thread %d: Associate(nullptr) was not InvalidArgument", tid_);
      }
    }
  }

  void MapperStep() {
    const std::uint32_t dice = Below(100);
    if (dice < 85) {
      MapAny();
    } else if (dice < 98) {
      Reap();
    } else {
      OutOfRange();
    }
  }

  World& world_;
  const int tid_;
  const std::uint32_t me_;
  const Role role_;
  std::mt19937_64 rng_;
  std::vector<Mid> held_;
  std::uint64_t generation_ = 0;
  Local local_;
  Counts counts_{};
  // Wave state.
  bool growing_ = false;
  std::size_t wave_target_ = 0;
  std::uint32_t order_ = 0;
};

// ----------------------------------------------------------------------------------------
// Checkpoints: run by the barrier's completion step, while every worker waits.

struct Summary {
  std::uint64_t checkpoints = 0;
  std::uint64_t checks = 0;
  std::uint32_t leaf_maps_peak = 0;
  std::uint32_t directory_maps_peak = 0;
  std::uint64_t shrinks_seen = 0;  // checkpoints with fewer leaf maps than the one before
  std::uint32_t last_leaf_maps = 0;
  std::uint32_t held_peak = 0;
};

// The shrink policy, checked when no call is running: every attached subordinate leaf holds
// a MID, except at most one spare; every attached subordinate directory holds an attached
// leaf. So maps <= first + (distinct leaves/directories of held MIDs) + one spare.
void CheckQuiescent(World& world, Summary& summary, const char* when) {
  MidAtlas& atlas = world.atlas();
  const MidLayout layout = atlas.layout();
  const std::uint32_t max = world.max();
  std::uint32_t held = 0;
  std::vector<bool> leaves(std::size_t{1} << (16 - layout.leaf_bits), false);
  std::vector<bool> dirs(std::size_t{1} << layout.root_bits, false);
  std::uint32_t held_leaves = 0;
  std::uint32_t held_dirs = 0;
  for (std::uint32_t m = 0; m < max; ++m) {
    const Mid mid = static_cast<Mid>(m);
    // relaxed: the barrier orders every worker's last write before this step.
    const std::uint32_t state = world.owner(mid).load(std::memory_order_relaxed);
    void* ctx = atlas.Map(mid);
    ++summary.checks;
    if (state == 0) {
      if (ctx != nullptr) {
        Fail("%s: free MID %u maps to %p", when, m, ctx);
      }
      continue;
    }
    ++held;
    void* want = world.expected(mid).load(std::memory_order_relaxed);
    if ((state & kStealable) == 0 || ctx != want) {
      Fail("%s: MID %u held by thread %u (state %#x) maps to %p, expected %p", when, m,
           (state & 0xFFFF) - 1, state, ctx, want);
    }
    const std::uint32_t leaf = m >> layout.leaf_bits;
    const std::uint32_t dir = leaf >> layout.dir_bits;
    if (leaf != 0 && !leaves[leaf]) {
      leaves[leaf] = true;
      ++held_leaves;
    }
    if (dir != 0 && !dirs[dir]) {
      dirs[dir] = true;
      ++held_dirs;
    }
  }
  for (std::uint32_t m = max; m < 65536; ++m) {
    ++summary.checks;
    if (atlas.Map(static_cast<Mid>(m)) != nullptr) Fail("%s: MID %u >= max maps", when, m);
  }
  const std::int64_t believed = world.held_now().load(std::memory_order_relaxed);
  const std::uint32_t in_use = atlas.mids_in_use();
  const AtlasStats stats = atlas.stats();
  summary.checks += 4;
  if (believed != held) {
    Fail("%s: test counter says %" PRId64 " MIDs held, owner table says %u", when, believed,
         held);
  }
  if (in_use != held || stats.mids_in_use != held) {
    Fail("%s: mids_in_use() = %u, stats().mids_in_use = %u, but %u MIDs are held", when,
         in_use, stats.mids_in_use, held);
  }
  if (stats.leaf_maps > held_leaves + 2) {
    Fail("%s: %u leaf maps attached, but only %u subordinate leaves hold MIDs (allowed: "
         "those + the first + one spare)",
         when, stats.leaf_maps, held_leaves);
  }
  if (stats.directory_maps > held_dirs + 2) {
    Fail("%s: %u directory maps attached, but only %u subordinate directories hold MIDs "
         "(allowed: those + the first + one spare's)",
         when, stats.directory_maps, held_dirs);
  }
  ++summary.checkpoints;
  summary.held_peak = std::max(summary.held_peak, held);
  summary.leaf_maps_peak = std::max(summary.leaf_maps_peak, stats.leaf_maps);
  summary.directory_maps_peak = std::max(summary.directory_maps_peak, stats.directory_maps);
  if (stats.leaf_maps < summary.last_leaf_maps) ++summary.shrinks_seen;
  summary.last_leaf_maps = stats.leaf_maps;
}

// With no MID held, the shrink policy leaves the first maps and at most one spare leaf and
// its directory.
void CheckNoSpareMaps(MidAtlas& atlas, Summary& summary, const char* when) {
  const AtlasStats stats = atlas.stats();
  ++summary.checks;
  if (stats.leaf_maps > 2 || stats.directory_maps > 2) {
    Fail("%s: %u leaf maps and %u directory maps attached with no MID held (first maps plus "
         "one spare allowed)",
         when, stats.leaf_maps, stats.directory_maps);
  }
}

// After the run: everything freed, all max MIDs can be taken again and freed, and the maps
// are back to the first ones (plus a spare) both before and after that refill.
void CheckEnd(World& world, Summary& summary, std::size_t fresh_bytes, Local& local) {
  CheckQuiescent(world, summary, "end");
  CheckNoSpareMaps(world.atlas(), summary, "end");
  CheckDrainedAndReusable(world.atlas(), fresh_bytes, local);
  CheckNoSpareMaps(world.atlas(), summary, "end, after the refill was freed");
}

}  // namespace

void RunMixed(const Flags& flags, Tally& tally) {
  std::size_t destructor_calls = 0;
  std::optional<MidAtlas> atlas =
      NewAtlas(flags.max, flags.start, [&destructor_calls](void*) { ++destructor_calls; });
  if (!atlas) return;
  const std::size_t fresh_bytes = atlas->stats().bytes_attached;
  World world(flags, *atlas);

  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < flags.threads; ++t) {
    workers.push_back(std::make_unique<Worker>(world, t, flags.seed));
  }

  Summary summary;
  const Bounds bounds(flags);
  RunPhases(
      flags.threads, 1,
      [&](int t, int) {
        Worker& worker = *workers[static_cast<std::size_t>(t)];
        for (std::uint32_t i = 0; i < flags.round && !Failed(); ++i) {
          // Bound the round by time as well, checked every 64 operations.
          if ((i & 63) == 0 && bounds.Expired()) break;
          if (worker.local().ops >= bounds.share()) break;
          worker.Step();
        }
      },
      [&](int) {
        std::uint64_t total_ops = 0;
        for (const auto& worker : workers) total_ops += worker->local().ops;
        CheckQuiescent(world, summary, "checkpoint");
        return bounds.Done(total_ops);
      },
      [&](int t) { workers[static_cast<std::size_t>(t)]->ReleaseAll(); });

  Local local;
  if (!Failed()) CheckEnd(world, summary, fresh_bytes, local);
  const bool failed_before_destruction = Failed();
  atlas.reset();
  ++summary.checks;
  // After a violation the threads stop without freeing, so contexts remain: not news.
  if (!failed_before_destruction && destructor_calls != 0) {
    Fail("destruction handed out %zu contexts although no MID was held", destructor_calls);
  }

  Counts counts{};
  std::array<std::uint64_t, 3> roles{};
  for (const auto& worker : workers) {
    worker->local().FlushTo(tally);
    for (std::size_t k = 0; k < counts.size(); ++k) counts[k] += worker->counts()[k];
    ++roles[static_cast<std::size_t>(worker->role())];
  }
  local.checks += summary.checks;
  local.FlushTo(tally);
  tally.rounds.fetch_add(summary.checkpoints, std::memory_order_relaxed);
  tally.Note("wave_threads", roles[static_cast<std::size_t>(Role::kWave)]);
  tally.Note("churn_threads", roles[static_cast<std::size_t>(Role::kChurn)]);
  tally.Note("mapper_threads", roles[static_cast<std::size_t>(Role::kMapper)]);
  for (std::size_t k = 0; k < counts.size(); ++k) tally.Note(kCountNames[k], counts[k]);
  tally.Note("held_peak", summary.held_peak);
  tally.Note("leaf_maps_peak", summary.leaf_maps_peak);
  tally.Note("dir_maps_peak", summary.directory_maps_peak);
  tally.Note("shrinks_seen", summary.shrinks_seen);
}

}  // namespace midatlas::stress
