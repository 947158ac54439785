// The flat context array behind Map (src/atlas/context_region.h): small arrays are heap
// blocks; larger ones are reserved address space whose pages come back to the system when no
// attached leaf covers them (CR1), and read as null afterwards.
#include "atlas/context_region.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "atlas/atlas_core.h"

namespace midatlas::internal {
namespace {

std::size_t PageBytes() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }
std::uint32_t CellsPerPage() {
  return static_cast<std::uint32_t>(PageBytes() / sizeof(void*));
}

// Whether the page holding `cell` is backed by memory now.
bool Resident(const void* cell) {
  const auto address = reinterpret_cast<std::uintptr_t>(cell) & ~(PageBytes() - 1);
  unsigned char in_core = 0;
  EXPECT_EQ(mincore(reinterpret_cast<void*>(address), PageBytes(), &in_core), 0);
  return (in_core & 1U) != 0;
}

TEST(ContextRegion, ArraysOfAPageOrLessAreHeapBlocksThatStayWhole) {
  ContextRegion region;
  ASSERT_TRUE(region.Init(50));
  EXPECT_FALSE(region.returns_pages());
  EXPECT_EQ(region.attached_bytes(), 50 * sizeof(void*));
  for (std::uint32_t mid = 0; mid < 50; ++mid) {
    EXPECT_EQ(region.cells()[mid].load(std::memory_order_relaxed), nullptr);
  }
}

TEST(ContextRegion, LargerArraysCountOnlyThePagesAttachedLeavesCover) {
  ContextRegion region;
  ASSERT_TRUE(region.Init(65535));
  ASSERT_TRUE(region.returns_pages());
  EXPECT_EQ(region.attached_bytes(), 0U);
  const std::uint32_t page = CellsPerPage();
  region.CountLeafIn(0, 16);                 // a small leaf in page 0
  region.CountLeafIn(16, 32);                // a second one in the same page
  region.CountLeafIn(page - 8, page + 8);    // a leaf across pages 0 and 1
  EXPECT_EQ(region.attached_bytes(), 2 * PageBytes());
  region.CountLeafOut(page - 8, page + 8);
  EXPECT_EQ(region.attached_bytes(), PageBytes());
  region.CountLeafOut(16, 32);
  region.CountLeafOut(0, 16);
  EXPECT_EQ(region.attached_bytes(), 0U);
}

TEST(ContextRegion, APageNoLeafCoversGoesBackToTheSystemAndReadsNull) {
  ContextRegion region;
  ASSERT_TRUE(region.Init(65535));
  const std::uint32_t first = 3 * CellsPerPage();
  Atomic<void*>& cell = region.cells()[first + 5];
  int context = 0;
  region.CountLeafIn(first, first + 64);
  cell.store(&context, std::memory_order_relaxed);
  EXPECT_TRUE(Resident(&cell));
  // Leave another leaf in the page: it must stay.
  region.CountLeafIn(first + 64, first + 128);
  cell.store(nullptr, std::memory_order_relaxed);  // freed, as a drained leaf's slots are
  region.CountLeafOut(first, first + 64);
  EXPECT_TRUE(Resident(&cell));
  region.CountLeafOut(first + 64, first + 128);
  EXPECT_FALSE(Resident(&cell)) << "a page no attached leaf covers was not returned";
  EXPECT_EQ(cell.load(std::memory_order_relaxed), nullptr);
}

TEST(ContextRegion, ACountInWaitsWhileItsPageIsBeingReturnedAndThenProceeds) {
  // Many rounds of one thread counting a leaf out (returning the page) while another counts
  // a leaf of the same page in and writes a context: the write must survive every time (CR1).
  ContextRegion region;
  ASSERT_TRUE(region.Init(65535));
  const std::uint32_t first = 7 * CellsPerPage();
  int context = 0;
  for (int round = 0; round < 2000; ++round) {
    region.CountLeafIn(first, first + 16);
    std::atomic<bool> go{false};
    std::thread returner([&] {
      while (!go.load(std::memory_order_acquire)) {
      }
      region.CountLeafOut(first, first + 16);
    });
    go.store(true, std::memory_order_release);
    region.CountLeafIn(first + 16, first + 32);
    region.cells()[first + 20].store(&context, std::memory_order_release);
    returner.join();
    ASSERT_EQ(region.cells()[first + 20].load(std::memory_order_acquire), &context)
        << "round " << round << ": a context written after the count-in was lost";
    region.cells()[first + 20].store(nullptr, std::memory_order_relaxed);
    region.CountLeafOut(first + 16, first + 32);
  }
}

// Through the atlas: a burst to 60,000 and back leaves the first leaf's page and at most the
// spare leaf's attached, and every MID of a returned page maps to null.
TEST(ContextRegion, AnAtlasDrainedAfterABurstKeepsAtMostTwoContextPages) {
  AtlasCore* core = AtlasCore::New(65535, 50, nullptr);
  ASSERT_NE(core, nullptr);
  std::vector<Mid> mids;
  int context = 0;
  for (int i = 0; i < 60000; ++i) {
    Mid mid = 0;
    ASSERT_EQ(core->Associate(&context, &mid), AtlasResult::kOk);
    mids.push_back(mid);
  }
  EXPECT_GE(core->stats().context_bytes, 60000 * sizeof(void*));
  for (Mid mid : mids) {
    void* taken = nullptr;
    ASSERT_EQ(core->MapAndDissociate(mid, &taken), AtlasResult::kOk);
  }
  EXPECT_LE(core->stats().context_bytes, 2 * PageBytes());
  for (Mid mid : mids) ASSERT_EQ(core->Map(mid), nullptr) << "MID " << mid;
  AtlasCore::Destroy(core);
}

}  // namespace
}  // namespace midatlas::internal
