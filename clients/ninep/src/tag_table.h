// The tag table of one connection: which request each 16-bit tag in flight belongs to.
//
// Every use the client makes of a tag goes through this interface, so that the table behind
// it can change without the connection noticing. Two implementations:
//   AtlasTagTable  the midatlas MID atlas: Map on the receive path is wait-free, acquiring and
//                  completing take one CAS; the atlas's own generation bits, excluded NOTAG,
//                  quarantine (discard, late context, release) and FIFO waiting.
//   MutexTagTable  an array and a free list under one mutex, the way Linux's 9p client keeps
//                  its requests (an IDR under a spinlock); the benchmark's baseline.
//
// THE LIFE OF A TAG
//   Acquire(request)         -> tag; the request is live. Waits, first come first served,
//                               while every tag is in use; never hands out NOTAG (0xFFFF).
//   CompleteReply(tag)       -> what a reply's tag finds, in one step: the live request (its
//                               tag free again), or the late context of a quarantined tag
//                               (once; the tag stays quarantined), or nothing (counted).
//   Complete(tag)            -> the live request, and the tag is free again (for a tag whose
//                               request the caller knows: one it never sent, an earlier flush).
//   Discard(tag, r, late)       the caller cancelled r and sends a Tflush: the tag stays in use
//                               (quarantined) with `late`, a context that handles a reply which
//                               still arrives before the Rflush (flush(5)).
//   Release(tag)                the Rflush arrived: the tag is free again; answers `late`
//                               unless a reply took it.
// A late context goes out exactly once: to the reply that beat the Rflush (CompleteReply), to
// Release, or to Drain, whichever comes first; whoever receives it owns it from then on.
// Any other reply tag - never issued, already completed, an old generation, NOTAG - finds
// nothing: CompleteReply answers null, and the table counts it.
//
// WHO CLAIMS A REQUEST
//   A request is kLive from Acquire until exactly one of Complete/CompleteReply (kCompleted),
//   Discard (kDiscarded) or the shutdown drain (kCompleted) claims it with a CAS on its phase;
//   the claimer owns its completion. The claim comes before the table is touched: a Discard
//   acts on a tag value, and a value freed by a racing reply can be handed out again at once
//   (to a queued waiter, inside the very free; with no generation bits, under the same value),
//   so only a claimed request's tag is known to be still its own.
//
// WHO CALLS WHAT
//   Acquire, Discard       any application thread (at most one Discard per request).
//   CompleteReply, Release the connection's receive thread, the one thread that frees tags of
//                          requests that were sent.
//   Complete               the receive thread, or an application thread for a tag it acquired
//                          and never sent.
//   Close, Drain           shutdown: Close fails every waiter, Drain hands out what is left once
//                          the receive thread has stopped.
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
  // A request's phase (see WHO CLAIMS A REQUEST); late contexts have none.
  enum Phase : std::uint8_t { kLive, kCompleted, kDiscarded };

  explicit TagEntry(Kind k) : kind(k) {}
  TagEntry(const TagEntry&) = delete;
  TagEntry& operator=(const TagEntry&) = delete;
  virtual ~TagEntry() = default;

  const Kind kind;
  // The full tag (generation bits included) this entry is associated under; NOTAG until the
  // table assigns one. Stored with release by Acquire (ninep:T1) and, for a late context, by
  // Discard (ninep:T2), before the request or its Tflush is sent.
  std::atomic<std::uint16_t> tag{kNoTag};
  std::atomic<std::uint8_t> phase{kLive};
  // A request's late context, written by its Discard before the claim that publishes it: a
  // reply that overtakes the Discard quarantines the tag with it, and a drain that frees the
  // tag first hands it out in the request's place.
  TagEntry* discard_late = nullptr;
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
  // first served while none is free: a tag freed while requests wait goes to the oldest, and
  // a new caller never overtakes them. Unavailable once Close has run.
  virtual absl::StatusOr<std::uint16_t> Acquire(TagEntry* request) = 0;
  // As Acquire, but Unavailable at once instead of waiting (also while others wait).
  virtual absl::StatusOr<std::uint16_t> TryAcquire(TagEntry* request) = 0;
  // The receive path: what `tag` maps to, claimed in one step - a kRequest entry (claimed,
  // phase kCompleted, its tag free again), or a kLate entry (a reply that beat the Rflush of
  // a quarantined tag: handed out once, the tag stays quarantined) - or nullptr, counted.
  virtual TagEntry* CompleteReply(std::uint16_t tag) = 0;
  // The live request of `tag`, now claimed (phase kCompleted) and its tag freed; nullptr when
  // the tag holds no live request. Not counted.
  virtual TagEntry* Complete(std::uint16_t tag) = 0;
  enum class DiscardResult {
    kQuarantined,       // the caller owns `request`; `late` is the table's until it hands it
                        // out (see THE LIFE OF A TAG); a Tflush is due
    kAlreadyCompleted,  // the reply (or the shutdown drain) claimed `request` first; no change,
                        // and `late` stays the caller's
  };
  // Claims `request` (a kRequest entry), then quarantines its `tag` with `late` (a kLate
  // entry). At most once per request.
  virtual DiscardResult Discard(std::uint16_t tag, TagEntry* request, TagEntry* late) = 0;
  // Ends the quarantine of `tag`: the tag is free again (or handed to a waiter). Answers its
  // late context, or nullptr when a reply took it; InvalidArgument when `tag` is not
  // quarantined.
  virtual absl::StatusOr<TagEntry*> Release(std::uint16_t tag) = 0;
  // Fails every waiting and future Acquire with Unavailable.
  virtual void Close() = 0;
  // Frees every tag still in use and hands out, once each, what is left: every request still
  // live (claimed now, phase kCompleted) and every late context not handed out yet (also one
  // whose Discard lost its tag to this drain). Only after Close, with no receive thread
  // running.
  virtual void Drain(absl::FunctionRef<void(TagEntry*)> fn) = 0;

  [[nodiscard]] virtual std::uint32_t max_in_flight() const = 0;
  // High bits of a tag that count reuses of its slot (0 when the maximum leaves none spare).
  [[nodiscard]] virtual int generation_bits() const = 0;
  // Tags held: live requests and quarantined tags.
  [[nodiscard]] virtual std::uint32_t in_use() const = 0;
  [[nodiscard]] virtual std::uint32_t waiting() const = 0;
  [[nodiscard]] virtual TagTableCounters counters() const = 0;
};

// Bits needed for slot indices 0 .. max_in_flight - 1 (at least 1).
int SlotBits(std::uint32_t max_in_flight);

}  // namespace ninep::internal

#endif  // NINEP_SRC_TAG_TABLE_H_
