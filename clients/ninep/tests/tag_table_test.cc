// The tag tables on their own, every rule run against both implementations: the atlas one the
// client uses and the mutex one the benchmark compares it with.
#include "tag_table.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
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
  EXPECT_EQ(table->counters().unknown_tags, 0U);  // Complete does not count
  EXPECT_EQ(table->CompleteReply(*tag), nullptr);
  EXPECT_EQ(table->counters().unknown_tags, 1U);
}

TEST_P(TagTableTest, CompleteReplyClaimsTheLiveRequest) {
  auto table = Make(GetParam(), 8);
  Req r;
  absl::StatusOr<std::uint16_t> tag = table->Acquire(&r);
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(table->CompleteReply(*tag), &r);
  EXPECT_EQ(r.phase.load(), TagEntry::kCompleted);
  EXPECT_EQ(table->in_use(), 0U);
  EXPECT_EQ(table->CompleteReply(*tag), nullptr);  // a duplicate
  EXPECT_EQ(table->CompleteReply(kNoTag), nullptr);
  EXPECT_EQ(table->counters().unknown_tags, 2U);
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
  EXPECT_EQ(r.phase.load(), TagEntry::kDiscarded);
  EXPECT_EQ(late.tag.load(), *tag);
  EXPECT_EQ(table->in_use(), 1U);
  EXPECT_EQ(table->Complete(*tag), nullptr);  // the reply now belongs to the late context
  Req other;
  EXPECT_TRUE(absl::IsUnavailable(table->TryAcquire(&other).status()));
  // A reply that beats the Rflush reaches the late context, once.
  EXPECT_EQ(table->CompleteReply(*tag), &late);
  EXPECT_EQ(table->counters().unknown_tags, 0U);
  EXPECT_EQ(table->CompleteReply(*tag), nullptr);
  EXPECT_EQ(table->counters().unknown_tags, 1U);
  EXPECT_EQ(table->in_use(), 1U);  // still quarantined
  EXPECT_TRUE(absl::IsUnavailable(table->TryAcquire(&other).status()));
  // The Rflush: the tag is free; the late context went out already, so Release answers none.
  absl::StatusOr<TagEntry*> released = table->Release(*tag);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, nullptr);
  EXPECT_EQ(table->in_use(), 0U);
  EXPECT_FALSE(table->Release(*tag).ok());
  EXPECT_EQ(table->CompleteReply(*tag), nullptr);
  EXPECT_TRUE(table->TryAcquire(&other).ok());
}

TEST_P(TagTableTest, ReleaseWithoutALateReplyFreesTheTag) {
  auto table = Make(GetParam(), 4);
  Req r;
  Late late;
  absl::StatusOr<std::uint16_t> tag = table->Acquire(&r);
  ASSERT_TRUE(tag.ok());
  ASSERT_EQ(table->Discard(*tag, &r, &late), TagTable::DiscardResult::kQuarantined);
  absl::StatusOr<TagEntry*> released = table->Release(*tag);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, &late);  // no reply took it: it comes back with the tag
  EXPECT_EQ(table->in_use(), 0U);
  EXPECT_EQ(table->CompleteReply(*tag), nullptr);  // a reply after the Rflush is stray
}

TEST_P(TagTableTest, DiscardAfterTheReplyChangesNothing) {
  auto table = Make(GetParam(), 4);
  Req r;
  Late late;
  absl::StatusOr<std::uint16_t> tag = table->Acquire(&r);
  ASSERT_TRUE(tag.ok());
  ASSERT_EQ(table->Complete(*tag), &r);
  EXPECT_EQ(table->Discard(*tag, &r, &late), TagTable::DiscardResult::kAlreadyCompleted);
  EXPECT_EQ(r.phase.load(), TagEntry::kCompleted);
  EXPECT_FALSE(table->Release(*tag).ok());
  EXPECT_EQ(table->in_use(), 0U);
}

TEST_P(TagTableTest, WaitersAreAdmittedInArrivalOrder) {
  constexpr std::size_t kSlots = 4;
  constexpr std::size_t kWaiters = 24;
  auto table = Make(GetParam(), kSlots);
  std::vector<Req> holders(kSlots);
  std::deque<std::uint16_t> to_free;
  for (Req& r : holders) to_free.push_back(*table->Acquire(&r));
  std::vector<Req> waiters(kWaiters);
  std::mutex mu;
  std::vector<std::size_t> order;                  // guarded by mu: waiters, as admitted
  std::vector<std::uint16_t> tags(kWaiters, kNoTag);  // guarded by mu
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::uint16_t> tag = table->Acquire(&waiters[i]);
      ASSERT_TRUE(tag.ok()) << tag.status();
      std::lock_guard<std::mutex> lock(mu);
      order.push_back(i);
      tags[i] = *tag;
    });
    WaitUntil([&] { return table->waiting() == i + 1; });
  }
  // Free one tag at a time and wait for whoever it went to: the k-th tag freed must go to
  // the k-th waiter, never to a later one.
  for (std::size_t k = 0; k < kWaiters; ++k) {
    ASSERT_NE(table->Complete(to_free.front()), nullptr);
    to_free.pop_front();
    WaitUntil([&] {
      std::lock_guard<std::mutex> lock(mu);
      return order.size() == k + 1;
    });
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(order[k], k) << "the tag freed " << k << "th went to waiter " << order[k];
    to_free.push_back(tags[order[k]]);
  }
  for (std::thread& t : threads) t.join();
  for (std::size_t i = 1; i < kWaiters; ++i) {
    EXPECT_LT(waiters[i - 1].admission, waiters[i].admission) << "waiter " << i;
  }
  for (std::uint16_t tag : to_free) ASSERT_NE(table->Complete(tag), nullptr);
  EXPECT_EQ(table->counters().waits, static_cast<std::uint64_t>(kWaiters));
  EXPECT_EQ(table->in_use(), 0U);
}

TEST_P(TagTableTest, FreedTagGoesToTheWaiterNotToANewCaller) {
  auto table = Make(GetParam(), 2);
  Req a, b, waiter, newcomer;
  const std::uint16_t tag_a = *table->Acquire(&a);
  ASSERT_TRUE(table->Acquire(&b).ok());
  absl::StatusOr<std::uint16_t> waited;
  std::thread t([&] { waited = table->Acquire(&waiter); });
  WaitUntil([&] { return table->waiting() == 1; });
  ASSERT_EQ(table->Complete(tag_a), &a);
  // The free handed the tag to the waiter before it returned: nothing is left to take.
  EXPECT_TRUE(absl::IsUnavailable(table->TryAcquire(&newcomer).status()));
  t.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(waiter.tag.load(), *waited);
  EXPECT_EQ(table->in_use(), 2U);
  EXPECT_EQ(table->waiting(), 0U);
  EXPECT_EQ(table->Complete(*waited), &waiter);
}

TEST_P(TagTableTest, CloseFailsWaitersAndLaterAcquires) {
  constexpr std::size_t kWaiters = 3;
  auto table = Make(GetParam(), 1);
  Req holder, late_comer;
  const std::uint16_t held = *table->Acquire(&holder);
  std::vector<Req> waiters(kWaiters);
  std::vector<absl::Status> waited(kWaiters);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] { waited[i] = table->Acquire(&waiters[i]).status(); });
    WaitUntil([&] { return table->waiting() == i + 1; });
  }
  table->Close();
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : waited) EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(table->waiting(), 0U);
  EXPECT_TRUE(absl::IsUnavailable(table->Acquire(&late_comer).status()));
  // A tag freed now goes to nobody: no waiter is left behind.
  EXPECT_EQ(table->Complete(held), &holder);
  EXPECT_EQ(table->in_use(), 0U);
}

TEST_P(TagTableTest, CloseRacingAcquiresLeavesNoWaiterBehind) {
  // Every tag is held; acquirers arrive while Close runs. Each must end, with Unavailable,
  // whether it queued before Close, while it ran, or after.
  constexpr std::size_t kThreads = 8;
  for (int round = 0; round < 20; ++round) {
    auto table = Make(GetParam(), 2);
    Req a, b;
    ASSERT_TRUE(table->Acquire(&a).ok());
    ASSERT_TRUE(table->Acquire(&b).ok());
    std::vector<Req> reqs(kThreads);
    std::vector<absl::Status> got(kThreads);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] { got[i] = table->Acquire(&reqs[i]).status(); });
    }
    table->Close();
    for (std::thread& t : threads) t.join();
    for (const absl::Status& s : got) EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    EXPECT_EQ(table->waiting(), 0U);
    EXPECT_EQ(table->in_use(), 2U);
  }
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
  for (std::size_t i = 1; i < reqs.size(); ++i) {
    EXPECT_EQ(seen.count(&reqs[i]), 1U);
    EXPECT_EQ(reqs[i].phase.load(), TagEntry::kCompleted);  // claimed by the drain
  }
  EXPECT_EQ(table->in_use(), 0U);
  seen.clear();
  table->Drain([&](TagEntry* e) { seen.insert(e); });  // nothing is handed out twice
  EXPECT_TRUE(seen.empty());
}

TEST_P(TagTableTest, DrainSkipsALateContextAReplyTook) {
  auto table = Make(GetParam(), 4);
  Req r;
  Late late;
  const std::uint16_t tag = *table->Acquire(&r);
  ASSERT_EQ(table->Discard(tag, &r, &late), TagTable::DiscardResult::kQuarantined);
  ASSERT_EQ(table->CompleteReply(tag), &late);  // the late reply: whoever took it owns it
  table->Close();
  std::multiset<TagEntry*> seen;
  table->Drain([&](TagEntry* e) { seen.insert(e); });
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(table->in_use(), 0U);  // the quarantine ended all the same
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
      TagEntry* e = table->CompleteReply(tag);
      if (e == nullptr) {
        ADD_FAILURE() << "tag " << tag << " matched nothing";
      } else if (e->kind == TagEntry::Kind::kRequest) {
        completed.fetch_add(1);
      } else {
        late_seen.fetch_add(1);
        absl::StatusOr<TagEntry*> released = table->Release(tag);  // the "Rflush"
        ASSERT_TRUE(released.ok()) << released.status();
        EXPECT_EQ(*released, nullptr);  // the late reply took the context
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
      if (table->Discard(*tag, &reqs[at], &lates[at]) ==
          TagTable::DiscardResult::kQuarantined) {
        ++quarantined;
      }
    }
  }
  done.store(true);
  receiver.join();
  EXPECT_EQ(completed.load() + late_seen.load(), kRounds);
  EXPECT_EQ(late_seen.load(), quarantined);
  EXPECT_EQ(table->in_use(), 0U);
  EXPECT_EQ(table->counters().unknown_tags, 0U);
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
  EXPECT_EQ(table->CompleteReply(old_tag), nullptr);  // dropped, counted, never delivered
  EXPECT_EQ(table->counters().unknown_tags, 1U);
  EXPECT_EQ(second.phase.load(), TagEntry::kLive);
  EXPECT_EQ(table->CompleteReply(new_tag), &second);
}

TEST(AtlasTagTable, OldGenerationOfAQuarantinedTagLeavesItsLateContext) {
  auto table = Make(TagTableKind::kAtlas, 1);  // 1 slot bit, 15 generation bits
  Req r;
  Late late;
  const std::uint16_t tag = *table->Acquire(&r);
  ASSERT_EQ(table->Discard(tag, &r, &late), TagTable::DiscardResult::kQuarantined);
  const auto other_generation = static_cast<std::uint16_t>(tag ^ 0x8000);
  EXPECT_EQ(table->CompleteReply(other_generation), nullptr);
  EXPECT_FALSE(table->Release(other_generation).ok());
  EXPECT_EQ(table->counters().unknown_tags, 1U);
  EXPECT_EQ(table->CompleteReply(tag), &late);  // still there for the real late reply
}

TEST(AtlasTagTable, ReplyThatOvertakesTheCancellersDiscardQuarantinesTheTagItself) {
  // A canceller that has claimed its request (Discard's first step: the phase, and the late
  // context left in the request) but not yet discarded its tag. The reply must not wait for
  // it, and must not free the tag: it discards the tag itself and takes the late context.
  auto table = Make(TagTableKind::kAtlas, 4);
  Req r;
  Late late;
  const std::uint16_t tag = *table->Acquire(&r);
  r.discard_late = &late;
  late.tag.store(tag);
  r.phase.store(TagEntry::kDiscarded);
  EXPECT_EQ(table->CompleteReply(tag), &late);
  EXPECT_EQ(table->in_use(), 1U);  // quarantined until the Rflush
  EXPECT_EQ(table->CompleteReply(tag), nullptr);
  absl::StatusOr<TagEntry*> released = table->Release(tag);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, nullptr);
  EXPECT_EQ(table->in_use(), 0U);
}

TEST(AtlasTagTable, DrainHandsOutTheLateContextOfADiscardThatLostItsTag) {
  // The canceller claimed its request, then the shutdown drain freed the tag before its
  // Discard could: the late context goes out in the request's place, once.
  auto table = Make(TagTableKind::kAtlas, 4);
  Req r, live;
  Late late;
  const std::uint16_t tag = *table->Acquire(&r);
  ASSERT_TRUE(table->Acquire(&live).ok());
  r.discard_late = &late;
  late.tag.store(tag);
  r.phase.store(TagEntry::kDiscarded);
  table->Close();
  std::multiset<TagEntry*> seen;
  table->Drain([&](TagEntry* e) { seen.insert(e); });
  EXPECT_EQ(seen, (std::multiset<TagEntry*>{&late, &live}));
  EXPECT_EQ(table->in_use(), 0U);
}

TEST(AtlasTagTable, NotagIsExcludedAtEveryWidth) {
  // 2^k slots: the last slot's last generation would spell 0xFFFF. Every slot is taken each
  // round, so each goes through all its generations.
  for (std::uint32_t max : {1024U, 4096U, 32768U}) {
    auto table = Make(TagTableKind::kAtlas, max);
    std::vector<Req> reqs(max);
    const std::uint32_t generations = 1U << table->generation_bits();
    for (std::uint32_t round = 0; round <= generations; ++round) {
      std::vector<std::uint16_t> tags;
      for (Req& r : reqs) {
        r.phase.store(TagEntry::kLive);
        absl::StatusOr<std::uint16_t> tag = table->TryAcquire(&r);
        ASSERT_TRUE(tag.ok()) << "max " << max << ": " << tag.status();
        ASSERT_NE(*tag, kNoTag) << "max " << max;
        tags.push_back(*tag);
      }
      for (std::uint16_t tag : tags) ASSERT_NE(table->Complete(tag), nullptr);
    }
  }
}

}  // namespace
}  // namespace ninep::internal
