#include "atlas/context_region.h"

#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <new>
#include <thread>

#include "instrumentation/chaos.h"
#include "instrumentation/invariants.h"

namespace midatlas::internal {
namespace {

std::size_t SystemPageBytes() noexcept {
  const long page = sysconf(_SC_PAGESIZE);
  // A page must hold a whole number of cells and be a power of two (it is on every system we
  // know of); otherwise treat the array as one heap block.
  if (page <= 0 || !std::has_single_bit(static_cast<unsigned long>(page))) return 0;
  return static_cast<std::size_t>(page);
}

}  // namespace

bool ContextRegion::Init(std::uint32_t mids) noexcept {
  const std::size_t page = SystemPageBytes();
  const std::size_t bytes = std::size_t{mids} * sizeof(Atomic<void*>);
  if (page == 0 || bytes <= page) {
    // One page or less: a heap block, never returned (it is what one page would cost anyway).
    void* memory = ::operator new(bytes, std::align_val_t{64}, std::nothrow);
    if (memory == nullptr) return false;
    cells_ = static_cast<Atomic<void*>*>(memory);
    for (std::uint32_t mid = 0; mid < mids; ++mid) new (&cells_[mid]) Atomic<void*>(nullptr);
    bytes_ = bytes;
    return true;
  }
  const std::size_t pages = (bytes + page - 1) / page;
  pages_.reset(new (std::nothrow) Atomic<std::uint32_t>[pages]);
  if (!pages_) return false;
  for (std::size_t p = 0; p < pages; ++p) pages_[p].store(0, std::memory_order_relaxed);
  // Address space only: pages are backed on first write and read as zeros (null) until then.
  void* memory = mmap(nullptr, pages * page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED) {
    pages_.reset();
    return false;
  }
  cells_ = static_cast<Atomic<void*>*>(memory);
  bytes_ = pages * page;
  page_bytes_ = page;
  cells_per_page_shift_ =
      static_cast<std::uint32_t>(std::countr_zero(page / sizeof(Atomic<void*>)));
  return true;
}

ContextRegion::~ContextRegion() {
  if (cells_ == nullptr) return;
  if (pages_ != nullptr) {
    munmap(cells_, bytes_);
  } else {
    ::operator delete(static_cast<void*>(cells_), std::align_val_t{64});
  }
}

void ContextRegion::CountLeafIn(std::uint32_t first, std::uint32_t end) noexcept {
  if (pages_ == nullptr || first >= end) return;
  for (std::uint32_t page = PageOf(first); page <= PageOf(end - 1); ++page) {
    Atomic<std::uint32_t>& state = pages_[page];
    // (region:P5) acquire: pairs with (region:P4), so a page seen unmarked after a return is
    // seen with the return complete (CR1).
    std::uint32_t seen = state.load(std::memory_order_acquire);
    while (true) {
      if ((seen & kReturning) != 0) {
        // CR1: the page is being returned; writing into it now could be undone. Let the
        // returning thread finish its one system call.
        MIDATLAS_CHAOS_POINT();
        std::this_thread::yield();
        seen = state.load(std::memory_order_acquire);  // (region:P5)
        continue;
      }
      // (region:P1) acq_rel CAS: acquire pairs with (region:P4) as (region:P5) does; release
      // orders our count before the install (atlas:A3) that lets anyone write into the page.
      if (state.compare_exchange_weak(seen, seen + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        break;
      }
    }
  }
}

void ContextRegion::CountLeafOut(std::uint32_t first, std::uint32_t end) noexcept {
  if (pages_ == nullptr || first >= end) return;
  for (std::uint32_t page = PageOf(first); page <= PageOf(end - 1); ++page) {
    // (region:P2) acq_rel: release orders the leaf's unlink (atlas:U1) - and with it the last
    // write of a null into the page - before a returner's (region:P3); acquire lets the
    // thread that takes the count to 0 see every other leaf's count-out.
    const std::uint32_t before = pages_[page].fetch_sub(1, std::memory_order_acq_rel);
    MIDATLAS_INVARIANT(before != 0 && (before & kReturning) == 0, "CR1",
                       "a page counted out a leaf it never counted in");
    if (before == 1) ReturnPage(page);
  }
}

void ContextRegion::ReturnPage(std::uint32_t page) noexcept {
  Atomic<std::uint32_t>& state = pages_[page];
  std::uint32_t expected = 0;
  // (region:P3) acq_rel CAS: marks the page; fails if a grower counted in since (region:P1),
  // which then owns the page's memory again.
  if (!state.compare_exchange_strong(expected, kReturning, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
    return;
  }
  MIDATLAS_CHAOS_POINT();
  // Every cell of the page is null now and stays so while the mark is set (CR1). A failed
  // madvise only leaves the page backed; the values are the same.
  madvise(reinterpret_cast<char*>(cells_) + std::size_t{page} * page_bytes_, page_bytes_,
          MADV_DONTNEED);
  // (region:P4) release: pairs with (region:P1)/(region:P5): a grower that sees the page
  // unmarked sees the return done.
  state.store(0, std::memory_order_release);
}

std::size_t ContextRegion::attached_bytes() const noexcept {
  if (pages_ == nullptr) return bytes_;
  std::size_t attached = 0;
  for (std::size_t page = 0; page < bytes_ / page_bytes_; ++page) {
    // relaxed: a statistic; a page being returned counts as returned.
    const std::uint32_t state = pages_[page].load(std::memory_order_relaxed);
    if (state != 0 && (state & kReturning) == 0) attached += page_bytes_;
  }
  return attached;
}

}  // namespace midatlas::internal
