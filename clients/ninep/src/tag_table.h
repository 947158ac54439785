// The tag table of one connection: which request each 16-bit tag in flight belongs to.
//
// Every use the client makes of a tag goes through this interface, so that the table behind
// it can change without the connection noticing. Two implementations:
//   AtlasTagTable  the midatlas MID atlas: Map on the receive path is wait-free, acquiring and
//                  completing take one CAS; generation bits in the spare high bits of the tag.
//   MutexTagTable  an array and a free list under one mutex, the way Linux's 9p client keeps
//                  its requests (an IDR under a spinlock); the benchmark's baseline.
//
// THE LIFE OF A TAG
//   Acquire(request)         -> tag; the request is live. Waits, first come first served,
//                               while every tag is in use; never hands out NOTAG (0xFFFF).
//   Complete(tag)            -> the live request, and the tag is free again (map-and-dissociate).
//   Discard(tag, r, late)       the caller cancelled r and sent a Tflush: the tag stays in use
//                               (quarantined), now mapping to `late`, a context that handles a
//                               reply which still arrives before the Rflush (flush(5)).
//   CompleteLate(tag)        -> `late`, once: such a reply arrived. The tag stays quarantined.
//   Release(tag)             -> `late`; the Rflush arrived: the tag is free again.
// Any other reply tag - never issued, already completed, an old generation - finds nothing:
// Complete and CompleteLate answer null, and the table counts it.
//
// WHO CALLS WHAT
//   Acquire, Discard       any application thread.
//   Complete, CompleteLate, Release
//                          the connection's receive thread, the one thread that frees tags of
//                          requests that were sent; an application thread may Complete a tag
//                          it acquired and never sent.
//   Close, Drain           shutdown: Close wakes every waiter (they fail), Drain hands out what
//                          is left once the receive thread has stopped.
#ifndef NINEP_SRC_TAG_TABLE_H_
#define NINEP_SRC_TAG_TABLE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ninep/connection.h"
#include "ninep/wire.h"

namespace ninep::internal {

// What a tag maps to: a request (live), or the late context of a cancelled one.
struct TagEntry {
  enum class Kind : std::uint8_t { kRequest, kLate };
  // Phases. A request is kLive from Acquire until exactly one of Complete (kCompleted),
  // Discard (kDiscarding, then kDiscarded) or the shutdown drain (kCompleted) claims it: the
  // one whose CAS moves it out of kLive owns its completion. A late context is kLatePending
  // until CompleteLate hands it out (kLateConsumed).
  enum Phase : std::uint8_t {
    kLive,
    kCompleted,
    kDiscarding,
    kDiscarded,
    kLatePending,
    kLateConsumed,
  };

  explicit TagEntry(Kind k) : kind(k), phase(k == Kind::kLate ? kLatePending : kLive) {}
  TagEntry(const TagEntry&) = delete;
  TagEntry& operator=(const TagEntry&) = delete;
  virtual ~TagEntry() = default;

  const Kind kind;
  // The full tag (generation bits included) this entry is associated under; NOTAG until the
  // table assigns one. A reply whose tag differs is stale. (ninep:T1) release store by
  // Acquire/Discard before the request is sent; acquire load on the receive path.
  std::atomic<std::uint16_t> tag{kNoTag};
  std::atomic<std::uint8_t> phase;
  // The order in which Acquire admitted this entry (0, 1, 2, ... per table); tests check that
  // waiters are admitted first come, first served.
  std::uint64_t admission = 0;
};

struct TagTableCounters {
  std::uint64_t unknown_tags = 0;  // replies whose tag maps to nothing (or to an old generation)
  std::uint64_t waits = 0;         // Acquire calls that had to wait for a free tag
};

class TagTable {
 public:
  static absl::StatusOr<std::unique_ptr<TagTable>> Create(TagTableKind kind,
                                                          std::uint32_t max_in_flight);
  virtual ~TagTable() = default;

  // Associates `request` (a kRequest entry in phase kLive) with a free tag, waiting first come
  // first served while none is free. Unavailable once Close has run.
  virtual absl::StatusOr<std::uint16_t> Acquire(TagEntry* request) = 0;
  // As Acquire, but Unavailable at once instead of waiting.
  virtual absl::StatusOr<std::uint16_t> TryAcquire(TagEntry* request) = 0;
  // The live request of `tag`, now claimed (phase kCompleted) and its tag freed; nullptr when
  // the tag holds no live request (unknown, stale, discarded - then try CompleteLate).
  virtual TagEntry* Complete(std::uint16_t tag) = 0;
  enum class DiscardResult {
    kQuarantined,       // `tag` now maps to `late` until Release; the caller owns `request`
    kAlreadyCompleted,  // the reply (or the shutdown drain) claimed `request` first; no change
    kDrained,           // the caller claimed `request`, but shutdown freed its tag already:
                        // nothing maps to `late`, no Tflush is needed
  };
  // Quarantines `tag` of `request` (a kRequest entry), mapping it to `late` (a kLate entry).
  virtual DiscardResult Discard(std::uint16_t tag, TagEntry* request, TagEntry* late) = 0;
  // The late context of a quarantined `tag`, the first time only; nullptr otherwise (and the
  // reply is counted as unknown).
  virtual TagEntry* CompleteLate(std::uint16_t tag) = 0;
  // Frees a quarantined `tag` and answers its late context; nullptr when `tag` is not
  // quarantined.
  virtual TagEntry* Release(std::uint16_t tag) = 0;
  // Fails every waiting and future Acquire with Unavailable.
  virtual void Close() = 0;
  // Frees every tag still in use and hands its entry to `fn`, once each. Only after Close,
  // with no receive thread running.
  virtual void Drain(absl::FunctionRef<void(TagEntry*)> fn) = 0;

  [[nodiscard]] virtual std::uint32_t max_in_flight() const = 0;
  // High bits of a tag that count reuses of its slot (0 when the maximum leaves none spare).
  [[nodiscard]] virtual int generation_bits() const = 0;
  [[nodiscard]] virtual std::uint32_t in_use() const = 0;
  [[nodiscard]] virtual std::uint32_t waiting() const = 0;
  [[nodiscard]] virtual TagTableCounters counters() const = 0;
};

// Bits needed for slot indices 0 .. max_in_flight - 1 (at least 1).
int SlotBits(std::uint32_t max_in_flight);

}  // namespace ninep::internal

#endif  // NINEP_SRC_TAG_TABLE_H_
