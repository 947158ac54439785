// The tag tables on their own, every rule run against both implementations: the atlas one the
// client uses and the mutex one the benchmark compares it with.
#include "tag_table.h"

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ninep::internal {
namespace {

struct Req : TagEntry {
  Req() : TagEntry(Kind::kRequest) {}
};
struct Late : TagEntry {
  Late() : TagEntry(Kind::kLate) {}
};

std::unique_ptr<TagTable> Make(TagTableKind kind, std::uint32_t max) {
  absl::StatusOr<std::unique_ptr<TagTable>> t = TagTable::Create(kind, max);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

void WaitUntil(const std::function<bool()>& condition) {
  while (!condition()) std::this_thread::yield();
}

class TagTableTest : public ::testing::TestWithParam<TagTableKind> {};

TEST_P(TagTableTest, CompleteAnswersTheRequestOnceAndFreesItsTag) {
  auto table = Make(GetParam(), 8);
  Req r;
  absl::StatusOr<std::uint16_t> tag = table->Acquire(&r);
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(r.tag.load(), *tag);
  EXPECT_EQ(table->in_use(), 1U);
  EXPECT_EQ(table->Complete(*tag), &r);
  EXPECT_EQ(table->in_use(), 0U);
  EXPECT_EQ(table->Complete(*tag), nullptr);
  EXPECT_EQ(table->CompleteLate(*tag), nullptr);
  EXPECT_EQ(table->counters().unknown_tags, 1U);
}

TEST_P(TagTableTest, MaximumOutOfRangeIsRefused) {
  EXPECT_EQ(TagTable::Create(GetParam(), 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TagTable::Create(GetParam(), 65536).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(TagTable::Create(GetParam(), 65535).ok());
}

TEST_P(TagTableTest, NotagIsNeverHandedOut) {
  // 16 slots leave 12 generation bits in the atlas table: slot 15 at generation 4095 would
  // spell 0xFFFF. Cycle every slot through more than 4,096 generations.
  auto table = Make(GetParam(), 16);
  std::vector<Req> reqs(16);
  for (int round = 0; round < 4200; ++round) {
    std::vector<std::uint16_t> tags;
    for (Req& r : reqs) {
      r.phase.store(TagEntry::kLive);
      absl::StatusOr<std::uint16_t> tag = table->TryAcquire(&r);
      ASSERT_TRUE(tag.ok()) << tag.status();
      ASSERT_NE(*tag, kNoTag) << "round " << round;
      tags.push_back(*tag);
    }
    for (std::uint16_t tag : tags) ASSERT_NE(table->Complete(tag), nullptr);
  }
  EXPECT_EQ(table->Complete(kNoTag), nullptr);
}

TEST_P(TagTableTest, FullTableAnswersUnavailableToTryAcquire) {
  auto table = Make(GetParam(), 2);
  Req a, b, c;
  ASSERT_TRUE(table->TryAcquire(&a).ok());
  ASSERT_TRUE(table->TryAcquire(&b).ok());
  EXPECT_TRUE(absl::IsUnavailable(table->TryAcquire(&c).status()));
}

TEST_P(TagTableTest, DiscardedTagStaysInUseUntilReleased) {
  auto table = Make(GetParam(), 1);
  Req r;
  Late late;
  absl::StatusOr<std::uint16_t> tag = table->Acquire(&r);
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(table->Discard(*tag, &r, &late), TagTable::DiscardResult::kQuarantined);
  EXPECT_EQ(table->in_use(), 1U);
  EXPECT_EQ(table->Complete(*tag), nullptr);  // the reply now belongs to the late context
  Req other;
  EXPECT_TRUE(absl::IsUnavailable(table->TryAcquire(&other).status()));
  EXPECT_EQ(table->CompleteLate(*tag), &late);
  EXPECT_EQ(table->CompleteLate(*tag), nullptr);  // once only
  EXPECT_EQ(table->in_use(), 1U);                 // still quarantined
  EXPECT_EQ(table->Release(*tag), &late);
  EXPECT_EQ(table->in_use(), 0U);
  EXPECT_EQ(table->Release(*tag), nullptr);
  EXPECT_TRUE(table->TryAcquire(&other).ok());
}

TEST_P(TagTableTest, ReleaseWithoutALateReplyFreesTheTag) {
  auto table = Make(GetParam(), 4);
  Req r;
  Late late;
  absl::StatusOr<std::uint16_t> tag = table->Acquire(&r);
  ASSERT_TRUE(tag.ok());
  ASSERT_EQ(table->Discard(*tag, &r, &late), TagTable::DiscardResult::kQuarantined);
  EXPECT_EQ(table->Release(*tag), &late);
  EXPECT_EQ(table->in_use(), 0U);
}

TEST_P(TagTableTest, DiscardAfterTheReplyChangesNothing) {
  auto table = Make(GetParam(), 4);
  Req r;
  Late late;
  absl::StatusOr<std::uint16_t> tag = table->Acquire(&r);
  ASSERT_TRUE(tag.ok());
  ASSERT_EQ(table->Complete(*tag), &r);
  EXPECT_EQ(table->Discard(*tag, &r, &late), TagTable::DiscardResult::kAlreadyCompleted);
  EXPECT_EQ(table->Release(*tag), nullptr);
  EXPECT_EQ(table->in_use(), 0U);
}

TEST_P(TagTableTest, WaitersAreAdmittedInArrivalOrder) {
  constexpr std::size_t kSlots = 4;
  constexpr std::size_t kWaiters = 24;
  auto table = Make(GetParam(), kSlots);
  std::vector<Req> holders(kSlots);
  std::vector<std::uint16_t> held;
  for (Req& r : holders) held.push_back(*table->Acquire(&r));
  std::vector<Req> waiters(kWaiters);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::uint16_t> tag = table->Acquire(&waiters[i]);
      ASSERT_TRUE(tag.ok()) << tag.status();
      EXPECT_EQ(table->Complete(*tag), &waiters[i]);  // its reply: the tag is free again
    });
    WaitUntil([&] { return table->waiting() == i + 1; });
  }
  // The holders' replies free kSlots tags; each admitted waiter frees its own in turn.
  for (std::uint16_t tag : held) ASSERT_NE(table->Complete(tag), nullptr);
  for (std::thread& t : threads) t.join();
  for (std::size_t i = 1; i < kWaiters; ++i) {
    EXPECT_LT(waiters[i - 1].admission, waiters[i].admission) << "waiter " << i;
  }
  EXPECT_EQ(table->counters().waits, static_cast<std::uint64_t>(kWaiters));
  EXPECT_EQ(table->in_use(), 0U);
}

TEST_P(TagTableTest, CloseFailsWaitersAndLaterAcquires) {
  auto table = Make(GetParam(), 1);
  Req holder, waiter, late_comer;
  ASSERT_TRUE(table->Acquire(&holder).ok());
  absl::Status waited;
  std::thread t([&] { waited = table->Acquire(&waiter).status(); });
  WaitUntil([&] { return table->waiting() == 1; });
  table->Close();
  t.join();
  EXPECT_TRUE(absl::IsUnavailable(waited)) << waited;
  EXPECT_TRUE(absl::IsUnavailable(table->Acquire(&late_comer).status()));
}

TEST_P(TagTableTest, DrainHandsOutEveryEntryOnce) {
  auto table = Make(GetParam(), 8);
  std::vector<Req> reqs(5);
  Late late;
  std::vector<std::uint16_t> tags;
  for (Req& r : reqs) tags.push_back(*table->Acquire(&r));
  ASSERT_EQ(table->Discard(tags[0], &reqs[0], &late), TagTable::DiscardResult::kQuarantined);
  table->Close();
  std::multiset<TagEntry*> seen;
  table->Drain([&](TagEntry* e) { seen.insert(e); });
  EXPECT_EQ(seen.size(), 5U);
  EXPECT_EQ(seen.count(&late), 1U);
  for (std::size_t i = 1; i < reqs.size(); ++i) EXPECT_EQ(seen.count(&reqs[i]), 1U);
  EXPECT_EQ(table->in_use(), 0U);
}

TEST_P(TagTableTest, DiscardRacingCompleteHasExactlyOneWinner) {
  // A canceller and the receive thread race for each request: either the reply completes it
  // or the cancel quarantines it, never both, never neither.
  constexpr int kRounds = 3000;
  auto table = Make(GetParam(), 64);
  std::vector<Req> reqs(kRounds);
  std::vector<Late> lates(kRounds);
  std::mutex mu;
  std::deque<std::uint16_t> sent;
  std::atomic<bool> done{false};
  std::atomic<int> completed{0}, late_seen{0};
  std::thread receiver([&] {
    for (;;) {
      std::uint16_t tag = 0;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (sent.empty()) {
          if (done.load()) return;
          continue;
        }
        tag = sent.front();
        sent.pop_front();
      }
      if (table->Complete(tag) != nullptr) {
        completed.fetch_add(1);
      } else if (table->CompleteLate(tag) != nullptr) {
        late_seen.fetch_add(1);
        ASSERT_NE(table->Release(tag), nullptr);  // the "Rflush"
      } else {
        ADD_FAILURE() << "tag " << tag << " matched nothing";
      }
    }
  });
  int quarantined = 0;
  for (int i = 0; i < kRounds; ++i) {
    absl::StatusOr<std::uint16_t> tag = table->Acquire(&reqs[static_cast<std::size_t>(i)]);
    ASSERT_TRUE(tag.ok());
    {
      std::lock_guard<std::mutex> lock(mu);
      sent.push_back(*tag);
    }
    if (i % 2 == 0) {
      const auto at = static_cast<std::size_t>(i);
      TagTable::DiscardResult r = table->Discard(*tag, &reqs[at], &lates[at]);
      ASSERT_NE(r, TagTable::DiscardResult::kDrained);
      if (r == TagTable::DiscardResult::kQuarantined) ++quarantined;
    }
  }
  done.store(true);
  receiver.join();
  EXPECT_EQ(completed.load() + late_seen.load(), kRounds);
  EXPECT_EQ(late_seen.load(), quarantined);
  EXPECT_EQ(table->in_use(), 0U);
}

INSTANTIATE_TEST_SUITE_P(BothTables, TagTableTest,
                         ::testing::Values(TagTableKind::kAtlas, TagTableKind::kMutex),
                         [](const ::testing::TestParamInfo<TagTableKind>& p) {
                           return p.param == TagTableKind::kAtlas ? "Atlas" : "Mutex";
                         });

TEST(AtlasTagTable, GenerationBitsFillWhatTheMaximumLeavesSpare) {
  EXPECT_EQ(Make(TagTableKind::kAtlas, 1024)->generation_bits(), 6);
  EXPECT_EQ(Make(TagTableKind::kAtlas, 64)->generation_bits(), 10);
  EXPECT_EQ(Make(TagTableKind::kAtlas, 4096)->generation_bits(), 4);
  EXPECT_EQ(Make(TagTableKind::kAtlas, 4097)->generation_bits(), 3);
  EXPECT_EQ(Make(TagTableKind::kAtlas, 65535)->generation_bits(), 0);
  EXPECT_EQ(Make(TagTableKind::kMutex, 1024)->generation_bits(), 0);
}

TEST(AtlasTagTable, ReplyWithAnOldGenerationMatchesNothing) {
  auto table = Make(TagTableKind::kAtlas, 1);  // one slot: every request reuses it
  Req first, second;
  const std::uint16_t old_tag = *table->Acquire(&first);
  ASSERT_EQ(table->Complete(old_tag), &first);
  const std::uint16_t new_tag = *table->Acquire(&second);
  EXPECT_NE(new_tag, old_tag);
  EXPECT_EQ(new_tag & 1U, old_tag & 1U);  // same slot, another generation
  EXPECT_EQ(table->Complete(old_tag), nullptr);
  EXPECT_EQ(table->CompleteLate(old_tag), nullptr);
  EXPECT_EQ(table->counters().unknown_tags, 1U);
  EXPECT_EQ(table->Complete(new_tag), &second);
}

}  // namespace
}  // namespace ninep::internal
