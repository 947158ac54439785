// midatlas: a lock-free concurrent MID allocator.
//
// WHAT IT IS
//   A multiplex ID (MID) is a 16-bit value that tags one in-flight request on a connection so
//   that the response can be matched to it (SMB's MID, 9P's tag, a DNS query ID). A MidAtlas
//   hands out MIDs, remembers the opaque context (usually a request object) associated with
//   each, and maps a MID back to its context on every received packet. It is a concurrent
//   rendering of the RDBSS MID_ATLAS: a three-level hierarchy of MID_MAP tables that grows
//   from an initial size towards a maximum and shrinks again when MIDs are released.
//
// GUARANTEES
//   - No MID is ever held by two associations at once, and never more than max_mids MIDs are
//     held, not even for an instant.
//   - Everything a thread wrote into a context before Associate (or Reassociate) is visible
//     to any thread that obtains that context from Map / MapAndDissociate (release/acquire).
//   - Of two racing MapAndDissociate calls on one MID exactly one receives the context.
//   - Every operation except destruction may be called from any number of threads at once.
//     No operation takes a lock.
//
// PROGRESS
//   Map                 wait-free: a bounds check and one atomic load (every MID's context sits
//                       in one flat array); with generation_bits > 0 one more load (the
//                       index's generation state). No read-modify-write, no fence, no lock.
//   Associate           lock-free (allocates a 16-slot-or-larger map when the atlas grows);
//                       while waiters are queued it takes the waiter queue's mutex (no
//                       barging), as do the hand-offs to them.
//   MapAndDissociate    lock-free (a hand-off to a queued waiter takes the queue's mutex).
//   Reassociate         lock-free.
//   Discard, ReleaseDiscarded
//                       lock-free, except that a call meeting a discard of the same MID between
//                       its two steps waits for that discard's next step.
//   MapGuarded          lock-free; allocates only when a thread holds more guards at once
//                       than it ever did (its hazard records chain).
//   Retire              lock-free; FlushRetired waits for a scan another thread is running.
//   AssociateWait       blocks (up to its timeout) in a FIFO with asynchronous waiters.
//   IterateAndRemove    lock-free per MID; callbacks run with no lock and no hazard held.
//   mids_in_use         wait-free, O(1) (two loads, about 2 ns at any occupancy); exact when
//                       no call is running, else off by at most the calls in progress.
//   destruction         not thread-safe: the caller guarantees no concurrent use.
//
// WHEN NOT TO USE IT
//   - You need more than 65,535 simultaneously outstanding IDs, or IDs wider than 16 bits.
//   - Only one thread ever touches the table: a plain array with a free list is simpler.
//   - You need ordered iteration or the lowest free ID every time (allocation prefers low MIDs
//     but does not promise the lowest).
//
// EXAMPLE
//   absl::StatusOr<midatlas::MidAtlas> atlas =
//       midatlas::MidAtlas::Create({.max_mids = 1024, .initial_mids = 50});
//   if (!atlas.ok()) return atlas.status();
//   absl::StatusOr<midatlas::Mid> mid = atlas->Associate(request);      // send path
//   ...
//   void* ctx = atlas->Map(header.mid);                                 // receive path
//   absl::StatusOr<void*> done = atlas->MapAndDissociate(header.mid);   // final response
//
// MID BIT LAYOUT (initial_mids = 50: low field 6 bits, then 5 and 5)
//
//    15          11 10           6 5               0
//   +--------------+--------------+-----------------+
//   |  root index  |  dir index   |   slot index    |
//   +--------------+--------------+-----------------+
//         |               |               |
//   root[32] ----> dir[32] ------> leaf map[64 slots] ---> context
//   (permanent)   (dir 0 permanent, (leaf 0 permanent,
//                  others grow and   others grow and
//                  shrink)           shrink)
//
//   The low field is as wide as initial_mids needs (at least 4 bits); the remaining bits are
//   split between the dir field (the larger half) and the root field. See docs/DESIGN.md.
#ifndef MIDATLAS_MID_ATLAS_H_
#define MIDATLAS_MID_ATLAS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <optional>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace midatlas {

// A multiplex ID.
using Mid = std::uint16_t;

// The largest max_mids an atlas accepts (the RDBSS maximum: MaximumNumberOfMids is a USHORT).
inline constexpr std::uint32_t kMaxMidsLimit = 65535;

// The narrowest low (leaf) field. A leaf narrower than this would spend more on per-map
// overhead than on slots, so initial_mids below 16 still get a 16-slot first map.
inline constexpr int kMinLeafBits = 4;

// Called with each context still associated when an atlas is destroyed. May be empty.
using ContextDestructor = std::function<void(void*)>;

// How an associate picks among the free MIDs (docs/DESIGN.md 10.5).
enum class ReusePolicy : std::uint8_t {
  // Recently freed low MIDs first: values stay low, memory shrinks after bursts.
  kCompact,
  // The first free index at or after a moving cursor over the whole index space
  // (idr_alloc_cyclic): with generation_bits 0 and max_mids 50, a value recurs only after
  // all 65,536 came by.
  kCyclic,
  // Each index drawn uniformly from every free index of the index space by a CSPRNG seeded
  // from the OS (RFC 5452: unpredictable IDs).
  kRandom,
};

struct AtlasOptions {
  // Most MIDs in use at once (RDBSS MaximumNumberOfMids), 1..65535. MIDs handed out are
  // always below this value, unless excluded_mids or generation_bits say otherwise (below).
  std::uint32_t max_mids = kMaxMidsLimit;
  // MIDs the first map holds (RDBSS MidsAllocatedAtStart), 1..max_mids. Decides the width of
  // the low MID field and the memory allocated at creation; never the maximum.
  std::uint32_t initial_mids = 50;
  // Receives every context still associated when the atlas is destroyed, once per association.
  ContextDestructor context_destructor{};
  // Of max_mids, how many only Associate(context, {.use_reserve = true}) may take: capacity
  // kept for requests that must not be refused (a cancel, an echo). 0..max_mids-1.
  std::uint32_t reserved_mids = 0;
  // Values never handed out (SMB1's 0 and 0xFFFF, 9P's NOTAG), any order, duplicates allowed.
  // The MIDs handed out are then the lowest max_mids values that are not excluded, so
  // max_mids may be at most 65536 less the distinct excluded values.
  std::vector<Mid> excluded_mids{};
  // G, 0..15, for stale-response protection: a MID is gen << (16 - G) | index, and each time
  // an index is handed out again its generation advances (mod 2^G, skipping excluded values),
  // so a freed value recurs only after its index was reused 2^G times; until then Map,
  // MapAndDissociate and Reassociate treat it as a MID not in use. max_mids must be at most
  // 2^(16 - G). An excluded value is one generation of an index; an index whose every
  // generation is excluded is never used.
  std::uint32_t generation_bits = 0;
  // kCyclic and kRandom hand out any index of the index space [0, 2^(16 - generation_bits))
  // not excluded, max_mids limiting how many are held at once; their memory is up to 8 bytes
  // per index and is not returned while the atlas lives.
  ReusePolicy reuse_policy = ReusePolicy::kCompact;
};

// How one association may take a MID.
struct AssociateOptions {
  // May take the reserved capacity (AtlasOptions::reserved_mids).
  bool use_reserve = false;
};

// Widths of the three MID fields, low to high (see the diagram above).
struct MidLayout {
  int leaf_bits = 0;  // slot index inside a leaf map
  int dir_bits = 0;   // leaf index inside a directory map
  int root_bits = 0;  // directory index inside the root map

  friend bool operator==(const MidLayout&, const MidLayout&) = default;
};

// The layout an atlas created with `initial_mids` uses. initial_mids must be 1..65535.
MidLayout LayoutForInitialMids(std::uint32_t initial_mids) noexcept;

// A point-in-time view of the atlas's shape and memory; exact only when no call is running.
struct AtlasStats {
  std::uint32_t mids_in_use = 0;
  std::uint32_t leaf_maps = 0;       // leaf maps attached, the permanent first one included
  std::uint32_t directory_maps = 0;  // directory maps attached, the permanent first one included
  std::size_t bytes_attached = 0;    // bytes of the atlas object and every map attached to it
  // Of bytes_attached: the contexts' memory. Every MID's context sits in one flat array that
  // is reserved as address space; the pages of it that attached maps cover are counted
  // (each is backed by memory once a context was written into it), the rest is returned.
  std::size_t context_bytes = 0;
};

// Status codes. Each failing call returns exactly one of these codes.
//   kUnavailable        all max_mids MIDs are in use (retry when a MID is released)
//   kResourceExhausted  a map could not be allocated while growing (or, in an atlas of more
//                       than 64 leaf maps, the scratch array that confirms "all in use")
//   kInvalidArgument    bad argument: null context, MID not in use, bad options
// The statuses of Associate, MapAndDissociate and Reassociate carry the code alone (no
// message): they cost nothing to build and never allocate, so answering a late duplicate
// response or a full atlas costs what a lookup does. Create's errors carry a message.
bool IsAllMidsInUse(const absl::Status& status) noexcept;
bool IsOutOfMemory(const absl::Status& status) noexcept;

namespace internal {
class AtlasCore;
struct FrontEndAccess;  // the C front ends' view of the core (src/capi/handles.h)
struct AsyncWaitNode;
}  // namespace internal

// What MapAndDissociateOrLate found for a MID.
struct Dissociated {
  // The association's context; or, when `late`, the discard's late context (null when the
  // discarder left none, or a late response already took it).
  void* context = nullptr;
  // The MID was discarded (Discard): it stays discarded until ReleaseDiscarded.
  bool late = false;
};

// Runs once for a queued AssociateAsync: with the MID, already associated with the context,
// on the thread that freed it (or, rarely, inside another caller's associate that served the
// queue first); or with a Cancelled status (Cancel, the handle's destruction,
// the atlas's destruction).
using MidWaitCallback = absl::AnyInvocable<void(absl::StatusOr<Mid>)>;

class MidAtlas;

// The handle of one AssociateAsync call. Either the MID was associated at once (mid() holds
// it, the callback never runs), or the request is queued until a MID is handed to it or it is
// cancelled. Destroying a handle whose request is still queued cancels it (the callback runs
// with Cancelled first); destroying it while a hand-off is completing waits for that
// completion to have started. Move-only; must not outlive its atlas while queued.
class MidWait {
 public:
  MidWait() noexcept = default;
  MidWait(MidWait&& other) noexcept;
  MidWait& operator=(MidWait&& other) noexcept;
  MidWait(const MidWait&) = delete;
  MidWait& operator=(const MidWait&) = delete;
  ~MidWait();

  // The MID associated at once; empty when the request was queued.
  [[nodiscard]] std::optional<Mid> mid() const noexcept { return mid_; }
  // true: it was queued, and its callback has run with Cancelled before this returns. false:
  // a MID was already handed to it (the callback runs or ran with it), or it never queued.
  bool Cancel() noexcept;

 private:
  friend class MidAtlas;
  std::optional<Mid> mid_;
  internal::AtlasCore* core_ = nullptr;
  internal::AsyncWaitNode* node_ = nullptr;
};

// Guarded lookups (MidAtlas::MapGuarded): a ContextGuard keeps the context a lookup returned
// alive while it is held. A context retired with MidAtlas::Retire (after its MID was
// dissociated) is destroyed only once no guard that returned it is held, and at the latest
// when the atlas is destroyed; no guard may outlive the atlas. Move-only, like
// std::unique_ptr; an empty guard (a failed lookup, moved from, released) holds nothing.
// A guard holds a hazard slot of the thread that took it, so it must be released (or
// destroyed) on that thread (checked in debug builds).
class ContextGuard {
 public:
  ContextGuard() noexcept = default;
  ContextGuard(ContextGuard&& other) noexcept
      : context_(std::exchange(other.context_, nullptr)),
        slot_(std::exchange(other.slot_, nullptr)),
        record_(std::exchange(other.record_, nullptr)) {}
  ContextGuard& operator=(ContextGuard&& other) noexcept {
    if (this != &other) {
      Release();
      context_ = std::exchange(other.context_, nullptr);
      slot_ = std::exchange(other.slot_, nullptr);
      record_ = std::exchange(other.record_, nullptr);
    }
    return *this;
  }
  ContextGuard(const ContextGuard&) = delete;
  ContextGuard& operator=(const ContextGuard&) = delete;
  ~ContextGuard() { Release(); }

  // The guarded context; nullptr when empty.
  [[nodiscard]] void* get() const noexcept { return context_; }
  explicit operator bool() const noexcept { return context_ != nullptr; }
  // Ends the protection now instead of at destruction; the guard is empty afterwards.
  // Nothing happens for an empty guard.
  void Release() noexcept {
    if (context_ != nullptr) ReleaseHeld();
  }

 private:
  friend class MidAtlas;
  void ReleaseHeld() noexcept;
  void* context_ = nullptr;
  void* slot_ = nullptr;    // the hazard slot (src/reclamation/context_hazard.h)
  void* record_ = nullptr;  // the taking thread's hazard record, which lent the slot
};

// The atlas: a move-only owner, like std::unique_ptr, of the lock-free structure. Calls on a
// moved-from MidAtlas are not allowed (except assignment and destruction).
class MidAtlas {
 public:
  // Validates `options` (InvalidArgument for max_mids outside 1..65535, initial_mids outside
  // 1..max_mids, reserved_mids >= max_mids, generation_bits above 15, max_mids above the
  // index space 2^(16 - generation_bits) less the indexes the exclusions take) and allocates
  // the first maps; memory is proportional to initial_mids (with generation_bits > 0, plus 4
  // bytes per index).
  static absl::StatusOr<MidAtlas> Create(AtlasOptions options);

  MidAtlas(MidAtlas&& other) noexcept : core_(other.core_) { other.core_ = nullptr; }
  MidAtlas& operator=(MidAtlas&& other) noexcept;
  MidAtlas(const MidAtlas&) = delete;
  MidAtlas& operator=(const MidAtlas&) = delete;
  // Hands every context still associated to options.context_destructor, once each. The
  // caller guarantees that no other thread uses the atlas during or after destruction.
  ~MidAtlas();

  // Associates `context` (any non-null value, aligned or not) with a MID no other live
  // association holds. InvalidArgument for a null context; Unavailable when max_mids MIDs
  // are in use; ResourceExhausted when growth could not allocate.
  absl::StatusOr<Mid> Associate(void* context) noexcept;
  // As above; without options.use_reserve, Unavailable once max_mids - reserved_mids MIDs are
  // held (so also for the overload above), with it once max_mids are. Neither limit is
  // exceeded even for an instant under races.
  absl::StatusOr<Mid> Associate(void* context, AssociateOptions options) noexcept;

  // The context associated with `mid`, or nullptr when `mid` is not in use (never handed
  // out, already dissociated, or >= max_mids). Wait-free.
  [[nodiscard]] void* Map(Mid mid) const noexcept;

  // Returns the context of `mid` and frees the MID. InvalidArgument (and no change) when
  // `mid` is not in use.
  absl::StatusOr<void*> MapAndDissociate(Mid mid) noexcept;

  // Replaces the context of `mid`. InvalidArgument (and no change) when `mid` is not in use
  // or `new_context` is null.
  absl::Status Reassociate(Mid mid, void* new_context) noexcept;

  // --- Quarantine: stale responses after a cancel or a timeout (docs/DESIGN.md 10.6). ---
  // Takes the context of an in-use MID and keeps the MID held - counted in use and against
  // the limits, never handed out, mapping to null - with `late_context` (may be null) for a
  // response that still arrives. InvalidArgument (no change) when `mid` is not in use;
  // ResourceExhausted when the atlas's first discard could not allocate the quarantine. Of a
  // racing Discard and MapAndDissociate exactly one gets the context.
  absl::StatusOr<void*> Discard(Mid mid, void* late_context = nullptr) noexcept;
  // Ends a discarded MID's quarantine: the MID is free (or handed to a waiter). Returns the
  // late context unless a late response took it (then null): it goes out exactly once.
  // InvalidArgument when `mid` is not discarded. Of racing calls exactly one succeeds.
  absl::StatusOr<void*> ReleaseDiscarded(Mid mid) noexcept;
  // As MapAndDissociate, and for a discarded MID: {late context, late = true} the first time,
  // {nullptr, true} afterwards; the MID stays discarded. (MapAndDissociate answers Cancelled
  // for a discarded MID and leaves its late context.)
  absl::StatusOr<Dissociated> MapAndDissociateOrLate(Mid mid) noexcept;
  [[nodiscard]] std::uint32_t discarded_mids() const noexcept;

  // --- Waiting for a free MID (docs/DESIGN.md 10.8). Blocking and asynchronous waiters share
  // one FIFO; while one that may take a freed MID is queued, the MID goes to the oldest such
  // waiter, never to a new caller. ---
  // Associates at once, or waits up to `timeout` (InfiniteDuration: no limit; zero or less:
  // one try) for a MID: DeadlineExceeded when none could be had in time. Spurious wake-ups
  // never surface.
  absl::StatusOr<Mid> AssociateWait(void* context, absl::Duration timeout,
                                    AssociateOptions options = {}) noexcept;
  // Associates at once (the handle's mid()), or queues the request: `done` then runs exactly
  // once (MidWaitCallback). InvalidArgument for a null context or callback; ResourceExhausted
  // when the request's node could not be allocated.
  absl::StatusOr<MidWait> AssociateAsync(void* context, MidWaitCallback done,
                                         AssociateOptions options = {}) noexcept;
  // Waiters queued now.
  [[nodiscard]] std::uint32_t waiters() const noexcept;

  // Dissociates every MID in use and hands each context to `fn` exactly once, after its MID
  // is free. Discarded MIDs are freed too, their late context (when not taken and not null)
  // handed to `fn`. Racing MapAndDissociate calls never receive a context `fn` also received. `fn`
  // may call any operation on this atlas except destruction. Returns how many it handed out.
  std::size_t IterateAndRemove(absl::FunctionRef<void(void*)> fn);

  // Guarded lookup and deferred destruction (docs/DESIGN.md 10.7).
  // MapGuarded: the context of `mid`, as Map, in a guard that keeps it alive while held; an
  // empty guard when `mid` is not in use (or, rarely, when the thread can get no hazard slot:
  // memory short for its first call or for one more guard than it ever held). Lock-free,
  // takes no lock; allocates only on a thread's first call and when the thread holds more
  // guards at once than ever before. A thread may hold any number of guards.
  [[nodiscard]] ContextGuard MapGuarded(Mid mid) const noexcept;
  // Hands `context`, whose MID was already dissociated (MapAndDissociate, Reassociate,
  // IterateAndRemove), to `destructor`, which runs exactly once: never while a guard that
  // returned `context` is held, at the latest when the atlas is destroyed. Every few
  // retirements the calling thread runs the destructors no guard holds; when memory is
  // short it waits until no guard holds `context` and runs it itself (so it never returns
  // if the calling thread holds a guard on `context`). Nothing happens for a null context
  // or an empty destructor; retiring a context again before its destructor ran is an error
  // (caught in debug builds). Destructors must not throw and may call any operation on this
  // atlas except destruction.
  void Retire(void* context, ContextDestructor destructor) noexcept;
  // Before it returns, runs the destructor of every retired context no guard holds. Blocks
  // while another thread runs retired destructors of this atlas (called from a destructor
  // it does not wait).
  void FlushRetired() noexcept;

  [[nodiscard]] std::uint32_t max_mids() const noexcept;
  [[nodiscard]] std::uint32_t initial_mids() const noexcept;
  [[nodiscard]] std::uint32_t reserved_mids() const noexcept;
  [[nodiscard]] std::uint32_t generation_bits() const noexcept;
  [[nodiscard]] ReusePolicy reuse_policy() const noexcept;
  [[nodiscard]] MidLayout layout() const noexcept;
  // MIDs held, counting associations and dissociations still in progress.
  [[nodiscard]] std::uint32_t mids_in_use() const noexcept;
  [[nodiscard]] AtlasStats stats() const noexcept;

 private:
  friend struct internal::FrontEndAccess;
  explicit MidAtlas(internal::AtlasCore* core) noexcept : core_(core) {}
  internal::AtlasCore* core_;
};

// A MidAtlas whose contexts are T*, so callers never cast.
template <typename T>
class TypedMidAtlas {
 public:
  struct Options {
    std::uint32_t max_mids = kMaxMidsLimit;
    std::uint32_t initial_mids = 50;
    std::function<void(T*)> context_destructor{};
    // As AtlasOptions.
    std::uint32_t reserved_mids = 0;
    std::vector<Mid> excluded_mids{};
    std::uint32_t generation_bits = 0;
  };

  static absl::StatusOr<TypedMidAtlas> Create(Options options) {
    AtlasOptions untyped{.max_mids = options.max_mids,
                         .initial_mids = options.initial_mids,
                         .reserved_mids = options.reserved_mids,
                         .excluded_mids = std::move(options.excluded_mids),
                         .generation_bits = options.generation_bits};
    if (options.context_destructor) {
      try {  // wrapping the destructor may allocate
        untyped.context_destructor = [destroy = std::move(options.context_destructor)](void* p) {
          destroy(static_cast<T*>(p));
        };
      } catch (const std::bad_alloc&) {
        return absl::Status(absl::StatusCode::kResourceExhausted, {});
      }
    }
    absl::StatusOr<MidAtlas> atlas = MidAtlas::Create(std::move(untyped));
    if (!atlas.ok()) return atlas.status();
    return TypedMidAtlas(*std::move(atlas));
  }

  absl::StatusOr<Mid> Associate(T* context) noexcept {
    return atlas_.Associate(const_cast<void*>(static_cast<const void*>(context)));
  }
  [[nodiscard]] T* Map(Mid mid) const noexcept { return static_cast<T*>(atlas_.Map(mid)); }
  absl::StatusOr<T*> MapAndDissociate(Mid mid) noexcept {
    absl::StatusOr<void*> context = atlas_.MapAndDissociate(mid);
    if (!context.ok()) return context.status();
    return static_cast<T*>(*context);
  }
  absl::Status Reassociate(Mid mid, T* new_context) noexcept {
    return atlas_.Reassociate(mid, const_cast<void*>(static_cast<const void*>(new_context)));
  }
  template <typename Fn>
  std::size_t IterateAndRemove(Fn&& fn) {
    return atlas_.IterateAndRemove([&fn](void* p) { fn(static_cast<T*>(p)); });
  }
  [[nodiscard]] std::uint32_t max_mids() const noexcept { return atlas_.max_mids(); }
  [[nodiscard]] std::uint32_t mids_in_use() const noexcept { return atlas_.mids_in_use(); }
  MidAtlas& untyped() noexcept { return atlas_; }

 private:
  explicit TypedMidAtlas(MidAtlas atlas) noexcept : atlas_(std::move(atlas)) {}
  MidAtlas atlas_;
};

}  // namespace midatlas

#endif  // MIDATLAS_MID_ATLAS_H_
