// Regression tests for the all-in-use check (AC6, AtlasCore::ConfirmAllInUse), each replaying
// its defect as a deterministic schedule: the library is built with test hooks
// (src/instrumentation/test_hooks.h), so this thread performs, inside the check and between
// two of its collects, the steps other threads would; and the allocator below hands a freed
// leaf's block back to the next leaf allocation, so an address is reused on purpose instead of
// by the luck of the heap.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "atlas/atlas_core.h"
#include "atlas/free_stack.h"
#include "atlas/map_nodes.h"
#include "capi/handles.h"
#include "instrumentation/test_hooks.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"
#include "reclamation/hazard_domain.h"

// ----------------------------------------------------------------------------------------
// The aligned allocation functions of this binary (leaf maps are over-aligned, see
// LeafMap::Create), replaced as the standard permits. support/failing_allocation.cc replaces
// the nothrow forms and forwards them to these. Unarmed they allocate and free plainly; armed
// (ReuseFreedBlock) they keep one given block when it is freed and hand it back to the next
// allocation of its size and alignment.

namespace {

// Armed, used and read by the test's one thread between its calls; relaxed throughout.
std::atomic<const void*> g_reuse_target{nullptr};
std::atomic<std::size_t> g_reuse_size{0};
std::atomic<std::size_t> g_reuse_alignment{0};
std::atomic<void*> g_kept_block{nullptr};
std::atomic<int> g_blocks_kept{0};
std::atomic<int> g_blocks_handed_back{0};

void* AllocateAligned(std::size_t size, std::align_val_t alignment) {
  const auto align = static_cast<std::size_t>(alignment);
  if (void* kept = g_kept_block.load(std::memory_order_relaxed);
      kept != nullptr && size == g_reuse_size.load(std::memory_order_relaxed) &&
      align == g_reuse_alignment.load(std::memory_order_relaxed)) {
    g_kept_block.store(nullptr, std::memory_order_relaxed);
    g_blocks_handed_back.fetch_add(1, std::memory_order_relaxed);
    return kept;
  }
  // aligned_alloc wants a multiple of the alignment.
  void* block = std::aligned_alloc(align, (size + align - 1) / align * align);
  if (block == nullptr) throw std::bad_alloc();
  return block;
}

void FreeAligned(void* block) noexcept {
  if (block != nullptr && block == g_reuse_target.load(std::memory_order_relaxed) &&
      g_kept_block.load(std::memory_order_relaxed) == nullptr) {
    g_reuse_target.store(nullptr, std::memory_order_relaxed);  // kept once
    g_kept_block.store(block, std::memory_order_relaxed);
    g_blocks_kept.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::free(block);  // pairs with aligned_alloc above
}

// Arms the reuse for its lifetime: when `block` (of `size` bytes, `alignment`) is freed it is
// kept, and the next aligned allocation of that size and alignment receives it.
class ReuseFreedBlock {
 public:
  ReuseFreedBlock(const void* block, std::size_t size, std::size_t alignment) {
    g_blocks_kept.store(0, std::memory_order_relaxed);
    g_blocks_handed_back.store(0, std::memory_order_relaxed);
    g_reuse_size.store(size, std::memory_order_relaxed);
    g_reuse_alignment.store(alignment, std::memory_order_relaxed);
    g_reuse_target.store(block, std::memory_order_relaxed);
  }
  ReuseFreedBlock(const ReuseFreedBlock&) = delete;
  ReuseFreedBlock& operator=(const ReuseFreedBlock&) = delete;
  ~ReuseFreedBlock() {
    g_reuse_target.store(nullptr, std::memory_order_relaxed);
    std::free(g_kept_block.exchange(nullptr, std::memory_order_relaxed));
  }
  static int kept() { return g_blocks_kept.load(std::memory_order_relaxed); }
  static int handed_back() { return g_blocks_handed_back.load(std::memory_order_relaxed); }
};

}  // namespace

void* operator new(std::size_t size, std::align_val_t alignment) {
  return AllocateAligned(size, alignment);
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return AllocateAligned(size, alignment);
}
// The nothrow forms too (the maps use them): sanitizer runtimes provide their own, which would
// not forward to the throwing forms above.
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  try {
    return AllocateAligned(size, alignment);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, std::align_val_t alignment,
                     const std::nothrow_t&) noexcept {
  try {
    return AllocateAligned(size, alignment);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void operator delete(void* block, std::align_val_t) noexcept { FreeAligned(block); }
void operator delete[](void* block, std::align_val_t) noexcept { FreeAligned(block); }
void operator delete(void* block, std::size_t, std::align_val_t) noexcept { FreeAligned(block); }
void operator delete[](void* block, std::size_t, std::align_val_t) noexcept {
  FreeAligned(block);
}
void operator delete(void* block, std::align_val_t, const std::nothrow_t&) noexcept {
  FreeAligned(block);
}
void operator delete[](void* block, std::align_val_t, const std::nothrow_t&) noexcept {
  FreeAligned(block);
}

namespace midatlas::internal {

// AtlasCore's friend (atlas_core.h), for this file's single-threaded schedules: reads which
// leaf object sits at an index, and the spare-leaf hint. relaxed: no other thread runs.
class AtlasCoreTestPeer {
 public:
  static const LeafMap* Leaf(const AtlasCore& core, std::uint32_t leaf_index) noexcept {
    if (leaf_index == 0) return core.leaf0_;
    const DirectoryMap* dir =
        core.root_[leaf_index >> core.dir_shift_].load(std::memory_order_relaxed);
    return dir == nullptr ? nullptr : dir->LoadLeafQuiescent(leaf_index & core.entry_mask_);
  }
  static std::uint32_t SpareLeaf(const AtlasCore& core) noexcept {
    return core.spare_leaf_.load(std::memory_order_relaxed);
  }
};

namespace {

void* ContextFor(std::uint32_t n) {
  // Any non-null value is a valid context; odd values prove nothing is dereferenced.
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(n) * 2 + 1);
}

// Installs a hook for its lifetime.
class InstallTestHook {
 public:
  explicit InstallTestHook(TestHook hook) : previous_(SetTestHook(hook)) {}
  InstallTestHook(const InstallTestHook&) = delete;
  InstallTestHook& operator=(const InstallTestHook&) = delete;
  ~InstallTestHook() { SetTestHook(previous_); }

 private:
  TestHook previous_;
};

// --- AC6 keyed by (pointer, head word): the ABA of the leaf object itself. ---------------

constexpr USHORT kLeafSlots = 16;
constexpr USHORT kMaxMids = 3 * kLeafSlots;  // leaves 0, 1 and 2, all in directory 0
constexpr std::uint32_t kTarget = 2;         // the leaf drained, freed and regrown

// What the hook does between the first and the second collect, and what it saw.
struct LeafAbaSchedule {
  PRX_MID_ATLAS handle = nullptr;
  AtlasCore* core = nullptr;
  const LeafMap* old_leaf = nullptr;
  std::uint64_t old_serial = 0;
  std::uint64_t old_head = 0;

  int collects = 0;
  bool in_hook = false;
  bool drained_and_detached = false;
  bool freed = false;
  const LeafMap* new_leaf = nullptr;
  std::uint64_t new_serial = 0;
  std::uint64_t new_head = 0;
  bool refilled = false;
};

LeafAbaSchedule* g_aba = nullptr;

// Another thread's steps, performed inline between the first and the second collect: every
// MID of the target leaf is dissociated (the leaf drains, is detached and retired), the
// retired leaf is reclaimed (freed: nothing protects it now), and as many associations
// regrow it - at the same address, from the allocator above - and fill it again with the same
// pops, so its head word is the one the first collect saw.
void ReplaceTargetLeafBetweenCollects() noexcept {
  LeafAbaSchedule& s = *g_aba;
  bool ok = true;
  for (std::uint32_t slot = 0; slot < kLeafSlots; ++slot) {
    const auto mid = static_cast<USHORT>(kTarget * kLeafSlots + slot);
    PVOID context = nullptr;
    ok = ok && RxMapAndDissociateMidFromContext(s.handle, mid, &context) == STATUS_SUCCESS &&
         context == ContextFor(mid);
  }
  s.drained_and_detached = ok && AtlasCoreTestPeer::Leaf(*s.core, kTarget) == nullptr;
  HazardDomain::Default().Reclaim();
  s.freed = ReuseFreedBlock::kept() == 1;
  ok = true;
  for (std::uint32_t slot = 0; slot < kLeafSlots; ++slot) {
    const auto expected = static_cast<USHORT>(kTarget * kLeafSlots + slot);
    USHORT mid = 0;
    ok = ok && RxAssociateContextWithMid(s.handle, ContextFor(expected), &mid) == STATUS_SUCCESS &&
         mid == expected;
  }
  s.refilled = ok;
  s.new_leaf = AtlasCoreTestPeer::Leaf(*s.core, kTarget);
  if (s.new_leaf != nullptr) {
    s.new_serial = s.new_leaf->serial();
    s.new_head = s.new_leaf->stack().Load().Pack();
  }
}

void OnCollectOfLeafAba(TestHookPoint point) noexcept {
  if (point != TestHookPoint::kAllInUseCollected || g_aba->in_hook) return;
  g_aba->in_hook = true;
  if (++g_aba->collects == 1) ReplaceTargetLeafBetweenCollects();
  g_aba->in_hook = false;
}

// Regression: AC6 compared each leaf's (pointer, head word) across two collects, and a new
// leaf's tag starts at 0, so a leaf drained, detached, freed and regrown at the same address
// came back with the identical head word and the two collects agreed across an ABA of the
// leaf object itself: "all in use" rested on a stretch in which that leaf had been empty.
// Keyed by the leaf's serial too, the second collect differs and the check collects again.
TEST(AllInUseCheck, LeafRegrownAtTheSameAddressWithTheSameHeadWordCountsAsChanged) {
  PRX_MID_ATLAS handle = RxCreateMidAtlas(kMaxMids, kLeafSlots);
  ASSERT_NE(handle, nullptr);
  AtlasCore& core = *CoreOf(handle);
  ASSERT_EQ(core.layout().leaf_bits, 4);

  // Leaf 1 becomes the spare (OnLeafDrained keeps the lowest drained leaf attached), so that
  // the target, a higher leaf, is detached as soon as it drains.
  USHORT mid = 0;
  for (USHORT i = 0; i < 2 * kLeafSlots; ++i) {
    ASSERT_EQ(RxAssociateContextWithMid(handle, ContextFor(i), &mid), STATUS_SUCCESS);
    ASSERT_EQ(mid, i);
  }
  for (USHORT i = kLeafSlots; i < 2 * kLeafSlots; ++i) {
    PVOID context = nullptr;
    ASSERT_EQ(RxMapAndDissociateMidFromContext(handle, i, &context), STATUS_SUCCESS);
  }
  ASSERT_EQ(AtlasCoreTestPeer::SpareLeaf(core), 1U);
  ASSERT_NE(AtlasCoreTestPeer::Leaf(core, 1), nullptr) << "the spare stays attached";
  // Full: leaf 1 again, then the target, grown with its first MID and filled by 15 pops.
  for (USHORT i = kLeafSlots; i < 2 * kLeafSlots; ++i) {
    ASSERT_EQ(RxAssociateContextWithMid(handle, ContextFor(i), &mid), STATUS_SUCCESS);
    ASSERT_EQ(mid / kLeafSlots, 1) << mid;
  }
  for (USHORT i = 2 * kLeafSlots; i < kMaxMids; ++i) {
    ASSERT_EQ(RxAssociateContextWithMid(handle, ContextFor(i), &mid), STATUS_SUCCESS);
    ASSERT_EQ(mid, i);
  }
  ASSERT_EQ(RxGetNumberOfMidsInUse(handle), kMaxMids);

  LeafAbaSchedule schedule;
  schedule.handle = handle;
  schedule.core = &core;
  schedule.old_leaf = AtlasCoreTestPeer::Leaf(core, kTarget);
  ASSERT_NE(schedule.old_leaf, nullptr);
  schedule.old_serial = schedule.old_leaf->serial();
  schedule.old_head = schedule.old_leaf->stack().Load().Pack();  // what the first collect sees
  g_aba = &schedule;
  NTSTATUS status = STATUS_SUCCESS;
  {
    const ReuseFreedBlock reuse(schedule.old_leaf, LeafMap::AllocationSize(kLeafSlots),
                                alignof(LeafMap));
    const InstallTestHook hook(&OnCollectOfLeafAba);
    // The hints show no room, so Associate runs the check: collect, hook, collect, ...
    status = RxAssociateContextWithMid(handle, ContextFor(0xABC), &mid);
    EXPECT_EQ(ReuseFreedBlock::handed_back(), 1) << "the regrown leaf got the freed block";
  }
  g_aba = nullptr;

  // The schedule ran as intended...
  EXPECT_TRUE(schedule.drained_and_detached) << "the target leaf was not detached";
  EXPECT_TRUE(schedule.freed) << "the detached leaf was not freed by Reclaim";
  EXPECT_TRUE(schedule.refilled);
  EXPECT_EQ(schedule.new_leaf, schedule.old_leaf) << "regrown at another address";
  EXPECT_EQ(schedule.new_head, schedule.old_head)
      << "the regrown leaf's head word differs from the one the first collect saw";
  EXPECT_NE(schedule.new_serial, schedule.old_serial);
  // ...so only the leaf's identity tells the second collect from the first: the check must
  // not accept it, and accepts the third, which matches the second.
  EXPECT_EQ(schedule.collects, 3)
      << "ConfirmAllInUse accepted two collects that straddled the leaf's free and regrowth";
  // The atlas is full again when the check ends, so the answer itself is "all in use".
  EXPECT_EQ(status, STATUS_UNSUCCESSFUL);
  EXPECT_EQ(RxGetNumberOfMidsInUse(handle), kMaxMids);
  RxDestroyMidAtlas(handle, nullptr);
}

// --- Out of memory inside the check itself. -------------------------------------------------

}  // namespace
}  // namespace midatlas::internal
