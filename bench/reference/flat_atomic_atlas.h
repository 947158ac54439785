// FlatAtomicAtlas ("flat-atomic"): the lock-free MID allocator a user would write first. One
// flat array of 65,536 context slots and a Treiber stack of free MIDs; nothing grows and
// nothing is ever reclaimed, so it needs no hazard pointers - and it holds 768 KiB whether one
// MID is in use or all of them.
//
// It is a benchmark baseline: the floor midatlas's Map and Associate are measured against, and
// the memory ceiling its growth and shrinking are measured against.
//
// Numbered atomic operations (each comment names its partners):
//   (F1) acquire load of the stack head        pairs with (F4)
//   (F2) acquire CAS popping the head          pairs with (F4)
//   (F3) release store of the context          pairs with (F5), (F6), (F7)
//   (F4) release CAS pushing a freed MID       pairs with (F1), (F2)
//   (F5) acquire load of a context (Map)       pairs with (F3), (F8)
//   (F6) acquire exchange to null (dissociate) pairs with (F3), (F8)
//   (F7) relaxed load before reassociating, (F8) release CAS of the new context
//
// Stack head word:
//
//    63                  32 31                   0
//   +----------------------+----------------------+
//   |       tag (32)       |      top (32)        |
//   +----------------------+----------------------+
//
//   top = the first free MID, or kNone when the stack is empty.
//   tag = bumped by every successful CAS, so a CAS based on a head read before another thread
//         popped and pushed the same top fails (no ABA).
#ifndef MIDATLAS_BENCH_REFERENCE_FLAT_ATOMIC_ATLAS_H_
#define MIDATLAS_BENCH_REFERENCE_FLAT_ATOMIC_ATLAS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace midatlas::reference {

class FlatAtomicAtlas {
 public:
  static constexpr std::uint32_t kSlots = 65536;

  // MIDs below `max_mids` (at most kSlots) are handed out, lowest first while none has been
  // freed. The slot arrays are allocated at full size whatever `max_mids` is.
  explicit FlatAtomicAtlas(std::uint32_t max_mids);
  FlatAtomicAtlas(const FlatAtomicAtlas&) = delete;
  FlatAtomicAtlas& operator=(const FlatAtomicAtlas&) = delete;

  // False when `context` is null or every MID is in use. Lock-free.
  bool Associate(void* context, std::uint16_t* mid) noexcept;
  // The context of `mid`, or nullptr when it is not in use. Wait-free.
  [[nodiscard]] void* Map(std::uint16_t mid) const noexcept;
  // The context of `mid`, which is free again afterwards; nullptr (and no change) when `mid`
  // is not in use. Of racing calls on one MID exactly one receives the context. Lock-free.
  void* MapAndDissociate(std::uint16_t mid) noexcept;
  // Replaces the context of `mid`; false (and no change) when `mid` is not in use or
  // `new_context` is null. Lock-free.
  bool Reassociate(std::uint16_t mid, void* new_context) noexcept;

  [[nodiscard]] std::uint32_t max_mids() const noexcept { return max_mids_; }
  // Bytes of the object and both slot arrays.
  [[nodiscard]] std::size_t bytes() const noexcept;

 private:
  static constexpr std::uint32_t kNone = 0xFFFFFFFFU;

  static std::uint64_t Pack(std::uint32_t top, std::uint32_t tag) noexcept {
    return (std::uint64_t{tag} << 32) | top;
  }
  static std::uint32_t Top(std::uint64_t word) noexcept {
    return static_cast<std::uint32_t>(word);
  }
  static std::uint32_t Tag(std::uint64_t word) noexcept {
    return static_cast<std::uint32_t>(word >> 32);
  }

  void Push(std::uint32_t mid) noexcept;

  // Contended by every associate and dissociate: kept off the line the read-only fields share.
  alignas(64) std::atomic<std::uint64_t> head_;
  alignas(64) const std::uint32_t max_mids_;
  const std::unique_ptr<std::atomic<void*>[]> contexts_;
  const std::unique_ptr<std::atomic<std::uint32_t>[]> next_;
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the tagged head is one CAS");

}  // namespace midatlas::reference

#endif  // MIDATLAS_BENCH_REFERENCE_FLAT_ATOMIC_ATLAS_H_
