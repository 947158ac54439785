// The context of every MID of an atlas, in one flat array indexed by the MID, so that Map is
// one bounds check and one load - a flat array's cost - whatever the occupancy, with no
// hazard pointer and no walk through the maps. The leaf maps keep what only writers need
// (free stacks and their links) and point into this array for their slots' contexts.
//
// Memory comes and goes with the leaves. Atlases whose array is larger than a page reserve it
// as address space (mmap): a page is backed by memory only once a context is written into it,
// and a page whose MIDs belong to no attached leaf is handed back to the system
// (madvise(MADV_DONTNEED)), so after a burst the array costs what the attached leaves cover.
// Smaller arrays are ordinary heap blocks, kept for the atlas's lifetime.
//
// Why handing back a page is safe for readers: a page is returned only while no attached leaf
// covers it, and a leaf is detached only when every one of its slots is free (FS3), so every
// context in the page is null, and a returned page reads as zeros, i.e. null. Map can load a
// context of a page while it is returned and still get the right answer.
//
// Why it is safe for writers: only the holder of a MID writes its context (AC1, atlas:A2),
// and a MID can be held only in an attached leaf. Each page counts the attached leaves that
// cover it; a grower counts its leaf in before installing it (so before writing anything),
// and the leaf is counted out after its unlink. The thread whose count-out takes a page's
// count to 0 marks the page kReturning, returns it and clears the mark.
//   INVARIANT CR1: a page is returned only while its count is 0 and it is marked kReturning;
//   a count-in waits while the mark is set, so no context is written into a page while it is
//   being returned.
// The wait is the one place where a grower depends on another thread's progress: it lasts
// one madvise call of the returning thread (the same kind of dependency as the allocator's
// own locks, which growing a leaf already takes).
#ifndef MIDATLAS_SRC_ATLAS_CONTEXT_REGION_H_
#define MIDATLAS_SRC_ATLAS_CONTEXT_REGION_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "instrumentation/atomic.h"

namespace midatlas::internal {

class ContextRegion {
 public:
  ContextRegion() = default;
  ContextRegion(const ContextRegion&) = delete;
  ContextRegion& operator=(const ContextRegion&) = delete;
  ~ContextRegion();

  // Reserves the contexts of MIDs [0, mids), all null. False when memory or address space is
  // short.
  bool Init(std::uint32_t mids) noexcept;

  // The context cells, indexed by MID. Map reads them directly.
  [[nodiscard]] Atomic<void*>* cells() const noexcept { return cells_; }

  // Counts an attached leaf covering MIDs [first, end) into every page they touch, waiting
  // while one of those pages is being returned (CR1). Call before the leaf is installed.
  void CountLeafIn(std::uint32_t first, std::uint32_t end) noexcept;
  // Counts the leaf out again after it was unlinked (or never installed); returns every page
  // whose count this takes to 0.
  void CountLeafOut(std::uint32_t first, std::uint32_t end) noexcept;

  // Bytes of the array that attached leaves may hold backed by memory: the pages with a
  // count-in of a reserved array (a page is backed only once a context was written into it,
  // so this is an upper bound), or the whole heap block. Statistics only; exact when no
  // call is running.
  [[nodiscard]] std::size_t attached_bytes() const noexcept;
  // True when pages are reserved and returned (false: a heap block).
  [[nodiscard]] bool returns_pages() const noexcept { return pages_ != nullptr; }

 private:
  static constexpr std::uint32_t kReturning = 0x80000000U;

  void ReturnPage(std::uint32_t page) noexcept;
  [[nodiscard]] std::uint32_t PageOf(std::uint32_t mid) const noexcept {
    return mid >> cells_per_page_shift_;
  }

  Atomic<void*>* cells_ = nullptr;
  std::size_t bytes_ = 0;            // reserved (or allocated) length
  std::size_t page_bytes_ = 0;
  std::uint32_t cells_per_page_shift_ = 0;
  // Per page of a reserved array: the attached leaves that cover it, or kReturning.
  std::unique_ptr<Atomic<std::uint32_t>[]> pages_;
};

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_ATLAS_CONTEXT_REGION_H_
