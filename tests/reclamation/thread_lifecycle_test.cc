// Thread lifecycles and the hazard records they hold: a thread takes a record of the default
// domain on its first call that needs one, and gives it back when it exits - after its C++
// thread_local destructors, which may still use an atlas or the NetName table. So however many
// threads come and go, the domain holds no more records than the most threads ever alive at
// once (plus the main thread's and the emergency record).
//
// HazardDomain::record_count() counts records ever allocated (records are never freed, only
// reused), so every test measures how much it grows. Threads are ordered with joins, latches
// and barriers only.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "midatlas/mid_atlas.h"
#include "midatlas/net_name_table.h"
#include "reclamation/hazard_domain.h"

namespace midatlas {
namespace {

using internal::HazardDomain;
using internal::HazardRecord;

// Records the process may add besides one per live worker: the main thread's own, the
// emergency record (added the first time memory is short), and two to spare for chained
// records, which none of these threads should need.
constexpr std::size_t kRecordsBesidesWorkers = 1 + 1 + 2;

std::size_t RecordCount() { return HazardDomain::Default().record_count(); }

// The calling thread's record, or null when it has none (read without taking one).
const HazardRecord* ThisThreadsRecordIfAny() {
  return internal::hazard_detail::this_thread_record;
}

void* ContextFor(std::uint32_t n) {
  // Any non-null value is a valid context; odd values prove nothing is dereferenced.
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(n) * 2 + 1);
}

MidAtlas MakeAtlas(std::uint32_t max_mids, std::uint32_t initial_mids) {
  absl::StatusOr<MidAtlas> atlas =
      MidAtlas::Create({.max_mids = max_mids, .initial_mids = initial_mids});
  EXPECT_TRUE(atlas.ok()) << atlas.status();
  return *std::move(atlas);
}

// Fills the first leaf, so that every later Associate, and every Map and MapAndDissociate of
// the MIDs it hands out, needs the calling thread's hazard record. Returns the MIDs taken.
std::vector<Mid> FillFirstLeaf(MidAtlas& atlas) {
  const std::uint32_t leaf_slots = 1U << atlas.layout().leaf_bits;
  std::vector<Mid> mids;
  for (std::uint32_t i = 0; i < leaf_slots; ++i) {
    absl::StatusOr<Mid> mid = atlas.Associate(ContextFor(i));
    EXPECT_TRUE(mid.ok()) << mid.status();
    if (mid.ok()) mids.push_back(*mid);
  }
  return mids;
}

bool BeyondFirstLeaf(const MidAtlas& atlas, Mid mid) {
  return (std::uint32_t{mid} >> atlas.layout().leaf_bits) != 0;
}

// What the workers' thread_local destructors report back; read after the joins.
struct AtExitResults {
  std::atomic<int> ran{0};
  std::atomic<int> succeeded{0};
  std::atomic<int> setup_failures{0};

  void Report(bool ok) {
    ran.fetch_add(1, std::memory_order_relaxed);  // read after the join
    if (ok) succeeded.fetch_add(1, std::memory_order_relaxed);  // read after the join
  }
};

// A thread_local whose destructor maps and then dissociates one MID beyond the first leaf.
class AtlasUserAtExit {
 public:
  AtlasUserAtExit() = default;
  AtlasUserAtExit(const AtlasUserAtExit&) = delete;
  AtlasUserAtExit& operator=(const AtlasUserAtExit&) = delete;
  ~AtlasUserAtExit() {
    if (atlas_ == nullptr) return;
    const bool mapped = atlas_->Map(mid_) == context_;
    absl::StatusOr<void*> taken = atlas_->MapAndDissociate(mid_);
    results_->Report(mapped && taken.ok() && *taken == context_);
  }
  void Arm(MidAtlas* atlas, Mid mid, void* context, AtExitResults* results) {
    atlas_ = atlas;
    mid_ = mid;
    context_ = context;
    results_ = results;
  }

 private:
  MidAtlas* atlas_ = nullptr;
  Mid mid_ = 0;
  void* context_ = nullptr;
  AtExitResults* results_ = nullptr;
};

AtlasUserAtExit& ThisThreadsAtlasUser() {
  thread_local AtlasUserAtExit user;
  return user;
}

// A thread_local holding a NetNameRef: its destructor looks the entry up (a guarded walk) and
// then drops the last reference, which drains the connection's atlas (a walk of its leaves
// under a hazard guard, and a MapAndDissociate beyond the first leaf).
class NetNameUserAtExit {
 public:
  NetNameUserAtExit() = default;
  NetNameUserAtExit(const NetNameUserAtExit&) = delete;
  NetNameUserAtExit& operator=(const NetNameUserAtExit&) = delete;
  ~NetNameUserAtExit() {
    if (!entry_) return;
    bool found = false;
    {
      absl::StatusOr<NetNameMatch> match = table_->Lookup(path_, entry_.connection_id());
      found = match.ok() && match->entry == entry_ && match->remaining == "\\dir\\file";
    }
    entry_ = NetNameRef();  // the last reference: the server call and its atlas go too
    results_->Report(found);
  }
  void Arm(const NetNameTable* table, NetNameRef entry, std::string path,
           AtExitResults* results) {
    table_ = table;
    entry_ = std::move(entry);
    path_ = std::move(path);
    results_ = results;
  }

 private:
  const NetNameTable* table_ = nullptr;
  NetNameRef entry_;
  std::string path_;
  AtExitResults* results_ = nullptr;
};

NetNameUserAtExit& ThisThreadsNetNameUser() {
  thread_local NetNameUserAtExit user;
  return user;
}

// Regression: the record was returned by a function-local static thread_local built on the
// thread's first atlas call, so it was destroyed before any thread_local built earlier. Such
// an older object's destructor then took a fresh record (writing into the destroyed returner)
// that nobody ever returned: one record lost per thread.
TEST(ThreadLifecycle, ThreadLocalDestructorUsingAnAtlasLeaksNoHazardRecord) {
  MidAtlas atlas = MakeAtlas(/*max_mids=*/256, /*initial_mids=*/16);
  ASSERT_EQ(FillFirstLeaf(atlas).size(), 16U);
  constexpr int kThreads = 200;
  AtExitResults results;
  const std::size_t records_before = RecordCount();
  for (int i = 0; i < kThreads; ++i) {
    std::thread([&atlas, &results, i] {
      // Built before the thread's first atlas call, so destroyed after whatever that call
      // builds for the thread.
      AtlasUserAtExit& user = ThisThreadsAtlasUser();
      void* const context = ContextFor(1000 + static_cast<std::uint32_t>(i));
      absl::StatusOr<Mid> mid = atlas.Associate(context);  // the thread's first atlas call
      if (!mid.ok() || !BeyondFirstLeaf(atlas, *mid)) {
        results.setup_failures.fetch_add(1, std::memory_order_relaxed);  // read after the join
        return;
      }
      user.Arm(&atlas, *mid, context, &results);
    }).join();
  }
  EXPECT_EQ(results.setup_failures.load(), 0);
  EXPECT_EQ(results.ran.load(), kThreads);
  EXPECT_EQ(results.succeeded.load(), kThreads)
      << "a thread_local destructor did not map and dissociate its own MID";
  EXPECT_EQ(atlas.mids_in_use(), 16U) << "every destructor dissociated its MID";
  const std::size_t grown = RecordCount() - records_before;
  std::printf("records before %zu, after %d threads %zu (grew by %zu)\n", records_before,
              kThreads, RecordCount(), grown);
  EXPECT_LE(grown, 1 + kRecordsBesidesWorkers)
      << "one thread alive at a time, yet the domain grew by " << grown << " records";
}

// The same through the NetName table: a thread_local holding a NetNameRef released at exit.
TEST(ThreadLifecycle, ThreadLocalDestructorReleasingANetNameRefLeaksNoHazardRecord) {
  std::atomic<int> outstanding{0};
  absl::StatusOr<std::unique_ptr<NetNameTable>> table = NetNameTable::Create(
      {.atlas = {.max_mids = 64, .initial_mids = 16},
       .outstanding_context = [&outstanding](std::string_view, const ConnectionId&, void*) {
         outstanding.fetch_add(1, std::memory_order_relaxed);  // read after the join
       }});
  ASSERT_TRUE(table.ok()) << table.status();
  constexpr int kThreads = 200;
  constexpr int kContextsPerThread = 17;  // the 17th goes beyond the 16-slot first leaf
  AtExitResults results;
  const std::size_t records_before = RecordCount();
  for (int i = 0; i < kThreads; ++i) {
    std::thread([&table, &results, i] {
      NetNameUserAtExit& user = ThisThreadsNetNameUser();  // built before the first call
      const std::string name = "\\\\server" + std::to_string(i) + "\\share";
      absl::StatusOr<NetNameRef> root = (*table)->FindOrCreateWithId(
          name, NetNameKind::kNetRoot, ConnectionIdFromSession(static_cast<std::uint32_t>(i)));
      if (!root.ok()) {
        results.setup_failures.fetch_add(1, std::memory_order_relaxed);  // read after the join
        return;
      }
      MidAtlas* atlas = root->atlas();
      for (std::uint32_t n = 0; n < kContextsPerThread; ++n) {
        if (!atlas->Associate(ContextFor(n)).ok()) {
          results.setup_failures.fetch_add(1, std::memory_order_relaxed);  // read after join
        }
      }
      user.Arm(table->get(), *std::move(root), name + "\\dir\\file", &results);
    }).join();
  }
  EXPECT_EQ(results.setup_failures.load(), 0);
  EXPECT_EQ(results.ran.load(), kThreads);
  EXPECT_EQ(results.succeeded.load(), kThreads) << "a thread_local destructor's lookup missed";
  EXPECT_EQ(outstanding.load(), kThreads * kContextsPerThread)
      << "the last release drains each connection's atlas";
  EXPECT_EQ((*table)->size(), 0U) << "every entry went with its last reference";
  const std::size_t grown = RecordCount() - records_before;
  std::printf("records before %zu, after %d threads %zu (grew by %zu)\n", records_before,
              kThreads, RecordCount(), grown);
  EXPECT_LE(grown, 1 + kRecordsBesidesWorkers)
      << "one thread alive at a time, yet the domain grew by " << grown << " records";
}

// Threads that never need a record - no atlas call at all, or only calls on the first leaf,
// which are plain atomic operations - take none. They are all alive at once, more of them
// than the domain has records (in a process that has not gathered hundreds), so a record
// taken by each would show in the count as well as in the thread's own record pointer.
TEST(ThreadLifecycle, ThreadsThatNeedNoRecordTakeNone) {
  MidAtlas atlas = MakeAtlas(/*max_mids=*/256, /*initial_mids=*/256);
  const std::size_t records_before = RecordCount();
  const auto threads = static_cast<std::ptrdiff_t>(std::min<std::size_t>(records_before + 8, 256));
  std::atomic<int> with_record{0};
  std::atomic<int> failures{0};
  std::latch ready(threads);
  std::latch release(1);
  std::vector<std::thread> workers;
  for (std::ptrdiff_t i = 0; i < threads; ++i) {
    workers.emplace_back([&, i] {
      if (i % 2 == 1) {  // the odd ones use the first leaf only
        void* const context = ContextFor(static_cast<std::uint32_t>(i));
        absl::StatusOr<Mid> mid = atlas.Associate(context);
        const bool ok = mid.ok() && !BeyondFirstLeaf(atlas, *mid) && atlas.Map(*mid) == context &&
                        atlas.MapAndDissociate(*mid).ok();
        if (!ok) failures.fetch_add(1, std::memory_order_relaxed);  // read after the latch
      }
      if (ThisThreadsRecordIfAny() != nullptr) {
        with_record.fetch_add(1, std::memory_order_relaxed);  // read after the latch
      }
      ready.count_down();
      release.wait();  // all alive together while the main thread counts
    });
  }
  ready.wait();
  EXPECT_EQ(RecordCount(), records_before) << "with " << threads << " threads alive";
  release.count_down();
  for (std::thread& worker : workers) worker.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(with_record.load(), 0) << "threads that needed no record took one";
  EXPECT_EQ(RecordCount(), records_before);
}

// Many short-lived threads, eight alive at a time, each holding its record until all eight
// hold one: the domain ends with about eight records, however many threads came and went.
TEST(ThreadLifecycle, ManyShortLivedThreadsNeedNoMoreRecordsThanThePeakOfLiveThreads) {
  MidAtlas atlas = MakeAtlas(/*max_mids=*/4096, /*initial_mids=*/16);
  ASSERT_EQ(FillFirstLeaf(atlas).size(), 16U);
  constexpr int kThreads = 2000;
  constexpr int kAtATime = 8;
  constexpr std::uint32_t kMidsPerThread = 3;
  std::atomic<int> failures{0};
  const std::size_t records_before = RecordCount();
  for (int batch = 0; batch < kThreads / kAtATime; ++batch) {
    std::barrier all_hold_a_record(kAtATime);
    std::vector<std::thread> workers;
    for (int t = 0; t < kAtATime; ++t) {
      workers.emplace_back([&, t] {
        const auto base = static_cast<std::uint32_t>((batch * kAtATime + t) * 4);
        std::array<Mid, kMidsPerThread> mids{};
        bool ok = true;
        for (std::uint32_t n = 0; n < kMidsPerThread; ++n) {
          absl::StatusOr<Mid> mid = atlas.Associate(ContextFor(base + n));
          ok = ok && mid.ok() && BeyondFirstLeaf(atlas, *mid);
          if (mid.ok()) mids[n] = *mid;
        }
        ok = ok && ThisThreadsRecordIfAny() != nullptr;
        all_hold_a_record.arrive_and_wait();
        for (std::uint32_t n = 0; ok && n < kMidsPerThread; ++n) {
          absl::StatusOr<void*> taken = atlas.MapAndDissociate(mids[n]);
          ok = atlas.Map(mids[n]) == nullptr && taken.ok() && *taken == ContextFor(base + n);
        }
        if (!ok) failures.fetch_add(1, std::memory_order_relaxed);  // read after the joins
      });
    }
    for (std::thread& worker : workers) worker.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(atlas.mids_in_use(), 16U);
  const std::size_t grown = RecordCount() - records_before;
  std::printf("records before %zu, after %d threads (%d at a time) %zu (grew by %zu)\n",
              records_before, kThreads, kAtATime, RecordCount(), grown);
  EXPECT_GE(RecordCount(), static_cast<std::size_t>(kAtATime))
      << "eight threads held a record at once";
  EXPECT_LE(grown, kAtATime + kRecordsBesidesWorkers);
}

// A thread that exits right after a guarded call - a Reassociate beyond the first leaf (a
// leaf guard), a NetName lookup (a HazardGuard on the bucket array) - has given its record
// back by the time it is joined: the next thread takes that very record.
TEST(ThreadLifecycle, ThreadExitingRightAfterAGuardedCallHandsItsRecordToTheNextThread) {
  MidAtlas atlas = MakeAtlas(/*max_mids=*/64, /*initial_mids=*/16);
  ASSERT_EQ(FillFirstLeaf(atlas).size(), 16U);
  absl::StatusOr<Mid> beyond = atlas.Associate(ContextFor(99));
  ASSERT_TRUE(beyond.ok()) << beyond.status();
  ASSERT_TRUE(BeyondFirstLeaf(atlas, *beyond));
  absl::StatusOr<std::unique_ptr<NetNameTable>> table = NetNameTable::Create({});
  ASSERT_TRUE(table.ok()) << table.status();
  const ConnectionId id = ConnectionIdFromSession(7);
  absl::StatusOr<NetNameRef> root =
      (*table)->FindOrCreateWithId("\\\\server\\share", NetNameKind::kNetRoot, id);
  ASSERT_TRUE(root.ok()) << root.status();

  constexpr int kThreads = 40;  // alternately a reassociater and a looker-up
  std::vector<const HazardRecord*> used(kThreads, nullptr);
  std::vector<int> call_ok(kThreads, 0);
  const std::size_t records_before = RecordCount();
  for (int i = 0; i < kThreads; ++i) {
    std::thread([&, i] {
      const auto at = static_cast<std::size_t>(i);
      if (i % 2 == 0) {
        call_ok[at] = atlas.Reassociate(*beyond, ContextFor(99)).ok() &&
                              atlas.Map(*beyond) == ContextFor(99)
                          ? 1
                          : 0;
      } else {
        absl::StatusOr<NetNameMatch> match = (*table)->Lookup("\\\\server\\share\\f", id);
        call_ok[at] = match.ok() && match->entry == *root ? 1 : 0;
      }
      used[at] = ThisThreadsRecordIfAny();
    }).join();  // the thread exits right after its call
  }
  for (int i = 0; i < kThreads; ++i) {
    const auto at = static_cast<std::size_t>(i);
    EXPECT_EQ(call_ok[at], 1) << "thread " << i;
    ASSERT_NE(used[at], nullptr) << "thread " << i << " made a call that needs a record";
    EXPECT_EQ(used[at], used[0]) << "thread " << i << " did not get its predecessor's record";
  }
  EXPECT_LE(RecordCount() - records_before, 1U)
      << "one thread alive at a time needs at most one new record";
}

}  // namespace
}  // namespace midatlas
