// Tests for the hazard-pointer domain and its guards on their own (src/reclamation/
// hazard_domain.h, hazard_guard.h), each on a private HazardDomain so that thresholds and
// record counts are under the test's control.
//
// Every retired object here is a Node that carries a canary: the reclaim function poisons it
// before freeing, and counts the reclamation in a ledger indexed by node id. A reader that
// ever sees a poisoned canary read through a protected pointer, or a ledger entry other than
// exactly 1 at the end, means the domain freed a protected node, leaked one, or freed one
// twice. Sanitizer builds turn the same mistakes into reports with stacks.
#include "reclamation/hazard_domain.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "instrumentation/invariants.h"
#include "reclamation/hazard_guard.h"

namespace midatlas::internal {
namespace {

// How many times each node was reclaimed.
class ReclaimLedger {
 public:
  explicit ReclaimLedger(std::size_t nodes) : counts_(nodes) {}

  // relaxed: a tally read only after the reclaiming threads are joined.
  void Count(std::size_t id) noexcept { counts_[id].fetch_add(1, std::memory_order_relaxed); }
  int times(std::size_t id) const noexcept {
    return counts_[id].load(std::memory_order_relaxed);
  }
  std::size_t size() const noexcept { return counts_.size(); }
  std::size_t total() const noexcept {
    std::size_t sum = 0;
    for (const auto& count : counts_) {
      sum += static_cast<std::size_t>(count.load(std::memory_order_relaxed));
    }
    return sum;
  }

 private:
  std::vector<std::atomic<int>> counts_;
};

struct Node : Retirable {
  static constexpr std::uint64_t kAlive = 0x600DF00D600DF00DULL;
  static constexpr std::uint64_t kPoisoned = 0xDEADBEEFDEADBEEFULL;

  Node(std::size_t node_id, ReclaimLedger* node_ledger) : id(node_id), ledger(node_ledger) {
    reclaim = &Node::Free;
  }

  static void Free(Retirable* self) noexcept {
    auto* node = static_cast<Node*>(self);
    // volatile: the store must survive dead-store elimination before the delete, so that a
    // reader racing with the free in an optimized, unsanitized build reads the poison.
    *static_cast<volatile std::uint64_t*>(&node->canary) = kPoisoned;
    node->ledger->Count(node->id);
    delete node;
  }

  // Plain, not atomic: readers read it only under protection, and the reclaimer writes it
  // only after the scan; TSan must see the hazard protocol order the two.
  std::uint64_t canary = kAlive;
  std::size_t id;
  ReclaimLedger* ledger;
};

using Options = HazardDomain::Options;
// The slots TakeSlot lends from one record before it chains another (one is reserved for
// leaf guards).
constexpr unsigned kSlots = HazardRecord::kLendableSlots;

// Releases a record when the test scope ends, even when an assertion returns early. Declare
// it before the guards that take its slots, so that they are destroyed first (HG2).
struct RecordLease {
  HazardDomain& domain;
  HazardRecord* record;
  explicit RecordLease(HazardDomain& d) : domain(d), record(d.AcquireRecord()) {}
  ~RecordLease() { domain.ReleaseRecord(record); }
  RecordLease(const RecordLease&) = delete;
  RecordLease& operator=(const RecordLease&) = delete;
  HazardRecord* operator->() const { return record; }
  HazardRecord& operator*() const { return *record; }
};

// `count` guards on `record`, built in order. Reserved up front so that no guard is moved
// while the test runs (a move would be correct, but the tests below move guards on purpose).
std::vector<HazardGuard> TakeGuards(HazardRecord& record, std::size_t count) {
  std::vector<HazardGuard> guards;
  guards.reserve(count);
  for (std::size_t i = 0; i < count; ++i) guards.emplace_back(record);
  return guards;
}

// ----------------------------------------------------------------------------------------
// Single-threaded rules.

TEST(HazardDomain, ProtectedObjectIsNotReclaimedUntilClearedAndScanned) {
  ReclaimLedger ledger(1);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  HazardGuard guard(*record);
  std::atomic<Node*> source{new Node(0, &ledger)};
  Node* node = guard.Protect(source);
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(guard.protected_node(), node);

  source.store(nullptr, std::memory_order_release);  // unlink, then retire
  domain.Retire(node);  // threshold 1: scans at once, and must keep the node
  EXPECT_EQ(ledger.times(0), 0);
  EXPECT_EQ(node->canary, Node::kAlive);
  EXPECT_EQ(domain.retired_count(), 1U);
  EXPECT_EQ(domain.Reclaim(), 0U) << "a protected node must survive every scan";
  EXPECT_EQ(ledger.times(0), 0);

  guard.Reset();
  EXPECT_EQ(guard.protected_node(), nullptr);
  EXPECT_EQ(ledger.times(0), 0) << "clearing alone frees nothing; the next scan does";
  EXPECT_EQ(domain.Reclaim(), 1U);
  EXPECT_EQ(ledger.times(0), 1);
  EXPECT_EQ(domain.retired_count(), 0U);
}

TEST(HazardDomain, DestroyingAGuardEndsItsProtection) {
  ReclaimLedger ledger(1);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  auto* node = new Node(0, &ledger);
  {
    HazardGuard guard(*record);
    guard.ProtectUnshared(node);
    EXPECT_EQ(record->TakenSlots(), 1U);
    domain.Retire(node);
    EXPECT_EQ(ledger.times(0), 0);
  }
  EXPECT_EQ(record->TakenSlots(), 0U) << "the guard gives its slot back";
  EXPECT_EQ(domain.Reclaim(), 1U) << "and the slot it gave back is clear";
  EXPECT_EQ(ledger.times(0), 1);
}

TEST(HazardDomain, UnprotectedRetiredObjectsAreReclaimedAtTheThreshold) {
  constexpr std::size_t kThreshold = 4;
  ReclaimLedger ledger(kThreshold);
  HazardDomain domain(Options{.reclaim_threshold = kThreshold});
  for (std::size_t id = 0; id + 1 < kThreshold; ++id) {
    domain.Retire(new Node(id, &ledger));
    EXPECT_EQ(domain.retired_count(), id + 1);
    EXPECT_EQ(ledger.total(), 0U) << "scanned before the threshold after " << id + 1;
  }
  domain.Retire(new Node(kThreshold - 1, &ledger));
  EXPECT_EQ(domain.retired_count(), 0U);
  for (std::size_t id = 0; id < kThreshold; ++id) EXPECT_EQ(ledger.times(id), 1) << id;
}

TEST(HazardDomain, ZeroThresholdScansOnEveryRetirement) {
  ReclaimLedger ledger(1);
  HazardDomain domain(Options{.reclaim_threshold = 0});
  domain.Retire(new Node(0, &ledger));
  EXPECT_EQ(ledger.times(0), 1);
}

TEST(HazardDomain, ProtectedObjectStaysRetiredWhileOthersAreFreedAroundIt) {
  ReclaimLedger ledger(3);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  // All slots of the record taken; the last one protects as well as the first.
  std::vector<HazardGuard> guards = TakeGuards(*record, kSlots);
  auto* kept = new Node(0, &ledger);
  guards.back().ProtectUnshared(kept);

  domain.Retire(kept);
  domain.Retire(new Node(1, &ledger));
  domain.Retire(new Node(2, &ledger));
  EXPECT_EQ(ledger.times(0), 0);
  EXPECT_EQ(ledger.times(1), 1);
  EXPECT_EQ(ledger.times(2), 1);
  EXPECT_EQ(domain.retired_count(), 1U) << "the kept node goes back on the retired list";

  guards.back().Reset();
  EXPECT_EQ(domain.Reclaim(), 1U);
  EXPECT_EQ(ledger.times(0), 1);
  EXPECT_EQ(domain.Reclaim(), 0U) << "a scan of an empty list frees nothing";
}

TEST(HazardDomain, ProtectUnsharedKeepsANodeThatIsPublishedAndUnlinkedLater) {
  ReclaimLedger ledger(1);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  HazardGuard guard(*record);
  auto* fresh = new Node(0, &ledger);
  guard.ProtectUnshared(fresh);  // before anyone can see it
  std::atomic<Node*> source{nullptr};
  source.store(fresh, std::memory_order_release);       // publish
  source.store(nullptr, std::memory_order_release);     // someone unlinks it at once
  domain.Retire(fresh);
  EXPECT_EQ(ledger.times(0), 0);
  EXPECT_EQ(fresh->canary, Node::kAlive);
  guard.Reset();
  domain.Reclaim();
  EXPECT_EQ(ledger.times(0), 1);
}

TEST(HazardDomain, TryProtectReturnsNullForANullSourceAndLeavesTheSlotClear) {
  ReclaimLedger ledger(1);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  HazardGuard guard(*record);
  std::atomic<Node*> source{nullptr};
  EXPECT_EQ(guard.TryProtect(source), nullptr);
  EXPECT_EQ(guard.protected_node(), nullptr);

  // Also when the guard protected something before: a null result holds nothing.
  auto* node = new Node(0, &ledger);
  guard.ProtectUnshared(node);
  EXPECT_EQ(guard.Protect(source), nullptr);
  EXPECT_EQ(guard.protected_node(), nullptr) << "protecting a null source drops the old hazard";
  domain.Retire(node);
  EXPECT_EQ(ledger.times(0), 1);
}

TEST(HazardDomain, TryProtectReturnsTheNodeOfAStableSourceAndHoldsIt) {
  ReclaimLedger ledger(1);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  HazardGuard bystander(*record);
  HazardGuard guard(*record);
  auto* node = new Node(0, &ledger);
  std::atomic<Node*> source{node};
  EXPECT_EQ(guard.TryProtect(source), node);
  EXPECT_EQ(guard.protected_node(), node);
  EXPECT_EQ(bystander.protected_node(), nullptr) << "only the guard's own slot is written";
  source.store(nullptr, std::memory_order_release);
  domain.Retire(node);
  EXPECT_EQ(ledger.times(0), 0);
  guard.Reset();
  domain.Reclaim();
  EXPECT_EQ(ledger.times(0), 1);
}

TEST(HazardDomain, ProtectFollowsAChangingSource) {
  ReclaimLedger ledger(2);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  HazardGuard guard(*record);
  auto* first = new Node(0, &ledger);
  auto* second = new Node(1, &ledger);
  std::atomic<Node*> source{first};

  EXPECT_EQ(guard.Protect(source), first);
  source.store(second, std::memory_order_release);
  EXPECT_EQ(guard.Protect(source), second);
  EXPECT_EQ(guard.protected_node(), second) << "re-protecting replaces the old hazard";

  domain.Retire(first);  // no longer protected by anyone
  EXPECT_EQ(ledger.times(0), 1);

  source.store(nullptr, std::memory_order_release);
  EXPECT_EQ(guard.Protect(source), nullptr);
  EXPECT_EQ(guard.protected_node(), nullptr) << "protecting a null source drops the old hazard";
  domain.Retire(second);
  EXPECT_EQ(ledger.times(1), 1);
}

TEST(HazardDomain, RecordsAreReusedAfterReleaseRecord) {
  HazardDomain domain(Options{.reclaim_threshold = 1});
  HazardRecord* first = domain.AcquireRecord();
  HazardRecord* second = domain.AcquireRecord();
  EXPECT_NE(first, second) << "two records held at once must be distinct";
  EXPECT_EQ(domain.record_count(), 2U);

  domain.ReleaseRecord(first);
  HazardRecord* again = domain.AcquireRecord();
  EXPECT_EQ(again, first) << "a released record is reused before a new one is allocated";
  EXPECT_EQ(domain.record_count(), 2U);

  domain.ReleaseRecord(again);
  domain.ReleaseRecord(second);
  for (int round = 0; round < 100; ++round) domain.ReleaseRecord(domain.AcquireRecord());
  EXPECT_EQ(domain.record_count(), 2U) << "acquire/release cycles must not grow the list";
}

TEST(HazardDomain, AReleasedRecordKeepsNoProtectionAndIsReusedWithClearSlots) {
  ReclaimLedger ledger(1);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  HazardRecord* record = domain.AcquireRecord();
  auto* node = new Node(0, &ledger);
  {
    std::vector<HazardGuard> guards = TakeGuards(*record, kSlots);
    for (HazardGuard& guard : guards) guard.ProtectUnshared(node);
    domain.Retire(node);
    EXPECT_EQ(ledger.times(0), 0);
  }
  domain.ReleaseRecord(record);
  domain.Reclaim();
  EXPECT_EQ(ledger.times(0), 1);

  HazardRecord* reused = domain.AcquireRecord();
  ASSERT_EQ(reused, record);
  EXPECT_EQ(reused->TakenSlots(), 0U);
  {
    const std::vector<HazardGuard> guards = TakeGuards(*reused, kSlots);
    for (const HazardGuard& guard : guards) {
      EXPECT_EQ(guard.protected_node(), nullptr) << "a reused record starts with clear slots";
    }
  }
  domain.ReleaseRecord(reused);
}

TEST(HazardDomain, DestroyingTheDomainFreesEveryRetiredObjectOnce) {
  constexpr std::size_t kNodes = 5;
  ReclaimLedger ledger(kNodes);
  {
    HazardDomain domain(Options{.reclaim_threshold = 1000});
    for (std::size_t id = 0; id < kNodes; ++id) domain.Retire(new Node(id, &ledger));
    EXPECT_EQ(ledger.total(), 0U);
  }
  for (std::size_t id = 0; id < kNodes; ++id) EXPECT_EQ(ledger.times(id), 1) << id;
}

// ----------------------------------------------------------------------------------------
// Guards: any number per thread, released in any order, movable, never sharing a slot.

TEST(HazardGuard, AThreadHoldingMoreGuardsThanARecordHasSlotsProtectsEveryNode) {
  constexpr std::size_t kGuards = 20;  // two and a half records' worth
  ReclaimLedger ledger(kGuards);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  std::vector<std::atomic<Node*>> sources(kGuards);
  std::vector<HazardGuard> guards = TakeGuards(*record, kGuards);
  EXPECT_EQ(record->TakenSlots(), kGuards);
  EXPECT_EQ(domain.record_count(), 3U) << "the record chained two more for the extra guards";
  for (std::size_t i = 0; i < kGuards; ++i) {
    sources[i].store(new Node(i, &ledger), std::memory_order_release);
    ASSERT_NE(guards[i].Protect(sources[i]), nullptr) << i;
  }
  for (std::size_t i = 0; i < kGuards; ++i) {
    domain.Retire(sources[i].exchange(nullptr, std::memory_order_acq_rel));  // scans each time
  }
  EXPECT_EQ(ledger.total(), 0U) << "a guard beyond the first record's slots was not seen";
  // Each guard protects exactly its own node: ending one frees that node and no other.
  for (std::size_t i = kGuards; i-- > 0;) {
    guards[i].Reset();
    EXPECT_EQ(domain.Reclaim(), 1U) << "guard " << i;
    EXPECT_EQ(ledger.times(i), 1) << i;
    EXPECT_EQ(ledger.total(), kGuards - i) << i;
  }
}

TEST(HazardGuard, GuardsReleasedInAnyOrderGiveEverySlotBack) {
  constexpr std::size_t kGuards = 20;
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  // Release orders that are not the reverse of construction: FIFO, and a stride that hops
  // between the three records of the chain.
  const std::vector<std::vector<std::size_t>> orders = [] {
    std::vector<std::size_t> fifo;
    std::vector<std::size_t> stride;
    for (std::size_t i = 0; i < kGuards; ++i) fifo.push_back(i);
    for (std::size_t i = 0; i < kGuards; ++i) stride.push_back((i * 7 + 3) % kGuards);
    return std::vector<std::vector<std::size_t>>{fifo, stride};
  }();
  for (const std::vector<std::size_t>& order : orders) {
    std::vector<std::optional<HazardGuard>> guards(kGuards);
    for (std::optional<HazardGuard>& guard : guards) guard.emplace(*record);
    ASSERT_EQ(record->TakenSlots(), kGuards);
    std::size_t left = kGuards;
    for (std::size_t index : order) {
      ASSERT_TRUE(guards[index].has_value()) << "the order repeats " << index;
      guards[index].reset();
      EXPECT_EQ(record->TakenSlots(), --left) << "after releasing guard " << index;
    }
  }
  EXPECT_EQ(record->TakenSlots(), 0U);
  EXPECT_EQ(domain.record_count(), 3U) << "slots given back are reused, not re-chained";
}

TEST(HazardGuard, AMovedFromGuardReleasesNothingAndTheMovedToGuardKeepsProtection) {
  ReclaimLedger ledger(2);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  auto* node = new Node(0, &ledger);
  auto* other = new Node(1, &ledger);
  std::optional<HazardGuard> source_guard;
  source_guard.emplace(*record);
  source_guard->ProtectUnshared(node);

  // Move construction: one slot, still holding the node.
  std::optional<HazardGuard> moved;
  moved.emplace(std::move(*source_guard));
  EXPECT_EQ(moved->protected_node(), node);
  source_guard.reset();  // the moved-from guard gives nothing back and clears nothing
  EXPECT_EQ(record->TakenSlots(), 1U);
  domain.Retire(node);
  EXPECT_EQ(ledger.times(0), 0) << "the moved-to guard still protects the node";

  // Move assignment: the target's own slot is released (its node becomes reclaimable), and
  // it takes over the moved-from guard's slot and protection.
  HazardGuard target(*record);
  target.ProtectUnshared(other);
  EXPECT_EQ(record->TakenSlots(), 2U);
  target = std::move(*moved);
  EXPECT_EQ(record->TakenSlots(), 1U);
  EXPECT_EQ(target.protected_node(), node);
  domain.Retire(other);
  EXPECT_EQ(ledger.times(1), 1) << "the target's old slot was cleared";
  moved.reset();
  EXPECT_EQ(record->TakenSlots(), 1U);
  EXPECT_EQ(domain.Reclaim(), 0U);
  EXPECT_EQ(ledger.times(0), 0);

  target.Reset();
  EXPECT_EQ(domain.Reclaim(), 1U);
  EXPECT_EQ(ledger.times(0), 1);
}

TEST(HazardGuard, TwoGuardsNeverShareASlot) {
  constexpr std::size_t kGuards = 20;
  HazardDomain domain(Options{.reclaim_threshold = 1});
  RecordLease record(domain);
  std::array<int, kGuards> tokens{};
  std::vector<std::optional<HazardGuard>> guards(kGuards);
  // Take, release some from the middle of the chain, take again: every live guard must keep
  // its own token. Two guards on one slot would see the later writer's token.
  for (std::optional<HazardGuard>& guard : guards) guard.emplace(*record);
  for (std::size_t i = 0; i < kGuards; i += 3) guards[i].reset();
  for (std::size_t i = 0; i < kGuards; i += 3) guards[i].emplace(*record);
  for (std::size_t i = 0; i < kGuards; ++i) guards[i]->ProtectUnshared(&tokens[i]);
  std::set<const void*> held;
  for (std::size_t i = 0; i < kGuards; ++i) {
    EXPECT_EQ(guards[i]->protected_node(), &tokens[i]) << "guard " << i;
    held.insert(guards[i]->protected_node());
  }
  EXPECT_EQ(held.size(), kGuards);
  EXPECT_EQ(record->TakenSlots(), kGuards);
}

// A changing source: TryProtect must answer null whenever the source moved between its load
// (hp:H1) and its re-load (hp:H3), and then hold nothing. The source never holds null, so
// every null answer is such a change. Bounded by count and time; ordered by a latch.
TEST(HazardGuard, TryProtectOfAChangingSourceReturnsNullAndLeavesTheSlotClear) {
  constexpr std::uint64_t kWantedMisses = 10;
  constexpr auto kDeadline = std::chrono::seconds(20);
  ReclaimLedger ledger(2);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  auto* a = new Node(0, &ledger);
  auto* b = new Node(1, &ledger);
  std::atomic<Node*> source{a};
  std::atomic<bool> reader_done{false};
  std::latch start(2);
  std::uint64_t misses = 0;
  std::uint64_t wrong = 0;

  std::thread reader([&] {
    RecordLease record(domain);
    HazardGuard guard(*record);
    start.arrive_and_wait();
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    for (std::uint64_t attempt = 0; misses < kWantedMisses; ++attempt) {
      if ((attempt & 1023) == 0 && std::chrono::steady_clock::now() > deadline) break;
      Node* node = guard.TryProtect(source);
      if (node == nullptr) {
        ++misses;
        if (guard.protected_node() != nullptr) ++wrong;  // a miss must not keep a hazard
        continue;
      }
      if ((node != a && node != b) || guard.protected_node() != node) ++wrong;
      guard.Reset();
    }
    reader_done.store(true, std::memory_order_release);
  });
  start.arrive_and_wait();
  for (std::uint64_t i = 0; !reader_done.load(std::memory_order_acquire); ++i) {
    source.store((i & 1) != 0 ? a : b, std::memory_order_release);
  }
  reader.join();
  EXPECT_EQ(wrong, 0U);
  EXPECT_GT(misses, 0U) << "no TryProtect ever saw the source change";
  domain.Retire(a);
  domain.Retire(b);
  EXPECT_EQ(ledger.total(), 2U);
}

// ----------------------------------------------------------------------------------------
// Debug builds check the invariants and name the broken one.

#if MIDATLAS_CHECK_INVARIANTS
class HazardInvariantsDeathTest : public testing::Test {
 protected:
  // The threadsafe style re-runs the test binary for each death test instead of forking a
  // process that other tests may have left with threads.
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(HazardInvariantsDeathTest, GivingASlotBackTwiceAbortsNamingHG1) {
  EXPECT_DEATH(
      {
        HazardDomain domain(Options{.reclaim_threshold = 1});
        HazardRecord* record = domain.AcquireRecord();
        std::atomic<const void*>* slot = record->TakeSlot();
        record->GiveBack(slot);
        record->GiveBack(slot);
      },
      "invariant HG1 broken");
}

TEST_F(HazardInvariantsDeathTest, GivingAChainedSlotBackTwiceAbortsNamingHG1) {
  EXPECT_DEATH(
      {
        HazardDomain domain(Options{.reclaim_threshold = 1});
        HazardRecord* record = domain.AcquireRecord();
        std::vector<std::atomic<const void*>*> slots;
        for (unsigned i = 0; i <= kSlots; ++i) slots.push_back(record->TakeSlot());
        record->GiveBack(slots.back());  // the first slot of the chained record
        record->GiveBack(slots.back());
      },
      "invariant HG1 broken");
}

TEST_F(HazardInvariantsDeathTest, GivingBackASlotNoRecordOfTheChainLentAbortsNamingHG1) {
  EXPECT_DEATH(
      {
        HazardDomain domain(Options{.reclaim_threshold = 1});
        HazardRecord* record = domain.AcquireRecord();
        std::atomic<const void*> stranger{nullptr};
        record->GiveBack(&stranger);
      },
      "invariant HG1 broken");
}

TEST_F(HazardInvariantsDeathTest, ReleasingARecordWhileAGuardHoldsASlotAbortsNamingHG2) {
  EXPECT_DEATH(
      {
        HazardDomain domain(Options{.reclaim_threshold = 1});
        HazardRecord* record = domain.AcquireRecord();
        HazardGuard guard(*record);
        domain.ReleaseRecord(record);
      },
      "invariant HG2 broken");
}

TEST_F(HazardInvariantsDeathTest, RetiringAnObjectTwiceAbortsNamingHD2) {
  EXPECT_DEATH(
      {
        ReclaimLedger ledger(1);
        // A threshold the test never reaches: the first retirement must not free the node.
        HazardDomain domain(Options{.reclaim_threshold = 1000});
        auto* node = new Node(0, &ledger);
        domain.Retire(node);
        domain.Retire(node);
      },
      "invariant HD2 broken");
}
#endif  // MIDATLAS_CHECK_INVARIANTS

// ----------------------------------------------------------------------------------------
// Across threads, ordered with latches (never sleeps).

TEST(HazardDomain, ObjectProtectedByAnotherThreadSurvivesUntilThatThreadClears) {
  ReclaimLedger ledger(1);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  std::atomic<Node*> source{new Node(0, &ledger)};
  std::latch protected_it(1);
  std::latch retired_it(1);
  std::latch cleared_it(1);
  std::uint64_t canary_after_retire = 0;

  std::thread reader([&] {
    RecordLease record(domain);
    HazardGuard guard(*record);
    Node* node = guard.Protect(source);
    protected_it.count_down();
    retired_it.wait();
    canary_after_retire = node->canary;  // still ours to read
    guard.Reset();
    cleared_it.count_down();
  });

  protected_it.wait();
  Node* node = source.exchange(nullptr, std::memory_order_acq_rel);
  domain.Retire(node);  // scans at once and must keep the node
  EXPECT_EQ(ledger.times(0), 0);
  retired_it.count_down();
  cleared_it.wait();
  EXPECT_EQ(domain.Reclaim(), 1U);
  reader.join();
  EXPECT_EQ(canary_after_retire, Node::kAlive);
  EXPECT_EQ(ledger.times(0), 1);
}

TEST(HazardDomain, RecordsAcquiredConcurrentlyAreDistinctAndReused) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  HazardDomain domain(Options{.reclaim_threshold = 1});
  std::atomic<int> shared_records{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  // Each thread stamps its own token into every slot of the record it holds and checks that
  // nobody else overwrote it: two threads holding one record at once would see each other's
  // token.
  std::vector<int> tokens(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int* token = &tokens[static_cast<std::size_t>(t)];
      start.arrive_and_wait();
      for (int round = 0; round < kRounds; ++round) {
        HazardRecord* record = domain.AcquireRecord();
        {
          std::vector<HazardGuard> guards = TakeGuards(*record, kSlots);
          for (HazardGuard& guard : guards) guard.ProtectUnshared(token);
          for (const HazardGuard& guard : guards) {
            // relaxed: a tally read after the join.
            if (guard.protected_node() != token) shared_records.fetch_add(1, std::memory_order_relaxed);
          }
        }
        domain.ReleaseRecord(record);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(shared_records.load(std::memory_order_relaxed), 0)
      << "a record was handed to two threads at once";
  EXPECT_LE(domain.record_count(), static_cast<std::size_t>(kThreads))
      << "released records must be reused, not leaked";
}

TEST(HazardDomain, ExitedThreadsReturnTheirRecordsToTheDefaultDomain) {
  HazardDomain& domain = HazardDomain::Default();
  auto record_of_new_thread = [] {
    const void* seen = nullptr;
    std::thread thread([&seen] {
      HazardRecord& first = ThisThreadRecord();
      HazardRecord& again = ThisThreadRecord();
      seen = &first == &again ? &first : nullptr;
    });
    thread.join();
    return seen;
  };
  ASSERT_NE(record_of_new_thread(), nullptr) << "a thread must keep one record";
  const std::size_t records = domain.record_count();
  std::set<const void*> seen;
  for (int round = 0; round < 20; ++round) seen.insert(record_of_new_thread());
  EXPECT_EQ(domain.record_count(), records) << "each exiting thread must return its record";
  EXPECT_LE(seen.size(), records);
}

TEST(HazardDomain, ExitedThreadsThatHeldMoreThanOneRecordOfGuardsReturnTheWholeChain) {
  HazardDomain& domain = HazardDomain::Default();
  auto run_thread_with_guards = [] {
    std::thread thread([] {
      const std::vector<HazardGuard> guards = TakeGuards(ThisThreadRecord(), 2 * kSlots + 1);
    });
    thread.join();
  };
  run_thread_with_guards();
  const std::size_t records = domain.record_count();
  for (int round = 0; round < 20; ++round) run_thread_with_guards();
  EXPECT_EQ(domain.record_count(), records) << "a chained record was not returned at exit";
}

// Readers keep protecting whatever a shared pointer holds and check the node's canary on
// every read, while writers swap in fresh nodes and retire the old ones with a threshold of
// 1, so every retirement scans. At the end every node must have been reclaimed exactly once.
struct ChurnParams {
  int readers;
  int writers;
  int swaps_per_writer;
};

void RunReadersAgainstRetiringWriters(const ChurnParams& params) {
  const std::size_t nodes =
      static_cast<std::size_t>(params.writers) * static_cast<std::size_t>(params.swaps_per_writer) +
      1;
  ReclaimLedger ledger(nodes);
  auto domain = std::make_unique<HazardDomain>(Options{.reclaim_threshold = 1});
  std::atomic<Node*> source{new Node(0, &ledger)};
  std::atomic<int> writers_running{params.writers};
  std::atomic<std::uint64_t> bad_canaries{0};
  std::atomic<std::uint64_t> bad_ids{0};
  std::atomic<std::uint64_t> lost_hazards{0};
  std::atomic<std::uint64_t> protected_reads{0};
  std::latch start(params.readers + params.writers);

  std::vector<std::thread> threads;
  for (int r = 0; r < params.readers; ++r) {
    threads.emplace_back([&] {
      RecordLease record(*domain);
      // More guards than a record has slots, so the chained record is scanned too.
      std::vector<HazardGuard> guards = TakeGuards(*record, kSlots + 2);
      start.arrive_and_wait();
      std::uint64_t reads = 0;
      // acquire: the writers' last retirements are done when the count reaches 0. A reader
      // the scheduler starts late still makes kMinReads attempts (the source never becomes
      // null while readers run), so every reader reads something.
      constexpr std::uint64_t kMinReads = 1000;
      for (std::uint64_t i = 0;
           i < kMinReads || writers_running.load(std::memory_order_acquire) > 0; ++i) {
        // Alternate the two protection forms, and both "clear, then protect" and
        // "protect over the previous hazard" (what the atlas's iteration does): iterations
        // 2k and 2k+1 share a guard, and only some iterations clear it. Every fifth
        // iteration reads through a guard built for it alone, so slots are also taken and
        // given back under churn.
        std::optional<HazardGuard> own;
        HazardGuard* guard = &guards[(i / 2) % guards.size()];
        if (i % 5 == 0) guard = &own.emplace(*record);
        Node* node = (i & 1) != 0 ? guard->Protect(source) : guard->TryProtect(source);
        if (node == nullptr) continue;  // TryProtect lost a race with a swap
        ++reads;
        if (guard->protected_node() != node) lost_hazards.fetch_add(1, std::memory_order_relaxed);
        if (node->canary != Node::kAlive) bad_canaries.fetch_add(1, std::memory_order_relaxed);
        if (node->id >= nodes) bad_ids.fetch_add(1, std::memory_order_relaxed);
        // Read again after a gap, so that a swap and a scan can land in between.
        for (int spin = 0; spin < 8; ++spin) {
          if (source.load(std::memory_order_relaxed) != node) break;
        }
        if (node->canary != Node::kAlive) bad_canaries.fetch_add(1, std::memory_order_relaxed);
        if (i % 3 != 0) guard->Reset();
      }
      protected_reads.fetch_add(reads, std::memory_order_relaxed);
    });
  }
  for (int w = 0; w < params.writers; ++w) {
    threads.emplace_back([&, w] {
      start.arrive_and_wait();
      for (int i = 0; i < params.swaps_per_writer; ++i) {
        const std::size_t id =
            static_cast<std::size_t>(w) * static_cast<std::size_t>(params.swaps_per_writer) +
            static_cast<std::size_t>(i) + 1;
        // acq_rel: release publishes the fresh node's fields to readers' (H1); acquire makes
        // the old node's history ours before we retire it.
        Node* old = source.exchange(new Node(id, &ledger), std::memory_order_acq_rel);
        domain->Retire(old);
      }
      writers_running.fetch_sub(1, std::memory_order_release);
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(bad_canaries.load(std::memory_order_relaxed), 0U)
      << "a reader read a node after it was reclaimed";
  EXPECT_EQ(bad_ids.load(std::memory_order_relaxed), 0U);
  EXPECT_EQ(lost_hazards.load(std::memory_order_relaxed), 0U);
  EXPECT_GT(protected_reads.load(std::memory_order_relaxed), 0U);

  domain->Retire(source.exchange(nullptr, std::memory_order_acq_rel));
  domain->Reclaim();
  EXPECT_EQ(domain->retired_count(), 0U) << "no record holds a hazard any more";
  domain.reset();  // destruction must not free anything a second time
  std::size_t wrong = 0;
  for (std::size_t id = 0; id < ledger.size(); ++id) {
    if (ledger.times(id) != 1) {
      if (++wrong <= 5) ADD_FAILURE() << "node " << id << " reclaimed " << ledger.times(id) << " times";
    }
  }
  EXPECT_EQ(wrong, 0U);
}

TEST(HazardDomain, ReadersNeverSeeAReclaimedNodeWhileOneWriterRetiresEverySwap) {
  RunReadersAgainstRetiringWriters({.readers = 3, .writers = 1, .swaps_per_writer = 20000});
}

TEST(HazardDomain, ReadersNeverSeeAReclaimedNodeWhileTwoWritersScanConcurrently) {
  RunReadersAgainstRetiringWriters({.readers = 2, .writers = 2, .swaps_per_writer = 10000});
}

// TryProtect under churn: every non-null result is a node the source really held and is
// still protected; every null leaves the slot clear.
TEST(HazardDomain, TryProtectUnderChurnReturnsOnlyValidatedNodes) {
  constexpr int kFlips = 50000;
  ReclaimLedger ledger(2);
  HazardDomain domain(Options{.reclaim_threshold = 1});
  auto* a = new Node(0, &ledger);
  auto* b = new Node(1, &ledger);
  std::atomic<Node*> source{a};
  std::atomic<bool> done{false};
  std::latch start(2);
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t wrong = 0;

  std::thread reader([&] {
    RecordLease record(domain);
    HazardGuard guard(*record);
    start.arrive_and_wait();
    // At least kMinAttempts, so that a reader the scheduler starts late still checks some.
    constexpr int kMinAttempts = 1000;
    for (int attempt = 0; attempt < kMinAttempts || !done.load(std::memory_order_acquire);
         ++attempt) {
      Node* node = guard.TryProtect(source);
      if (node == nullptr) {
        ++misses;
        if (guard.protected_node() != nullptr) ++wrong;  // a failed attempt must not keep a hazard
        continue;
      }
      ++hits;
      if ((node != a && node != b) || guard.protected_node() != node) ++wrong;
      guard.Reset();
    }
  });
  start.arrive_and_wait();
  for (int i = 0; i < kFlips; ++i) {
    // The source alternates a -> null -> b -> null, so a reader can see each change.
    source.store(nullptr, std::memory_order_release);
    source.store((i & 1) != 0 ? a : b, std::memory_order_release);
  }
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(wrong, 0U);
  EXPECT_GT(hits + misses, 0U);
  domain.Retire(a);
  domain.Retire(b);
  EXPECT_EQ(ledger.total(), 2U);
}

}  // namespace
}  // namespace midatlas::internal
