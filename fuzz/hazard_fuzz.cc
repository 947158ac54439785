// Model-based fuzz target for the hazard-pointer domain and its guards
// (src/reclamation/hazard_domain.h, hazard_guard.h): the input decodes into a sequence of
// take / protect / reset / move / release-guard / unlink-and-retire / reclaim steps on a
// private domain with a fuzzed reclaim threshold, over a few sources and two records, each
// with more guard positions than a record has slots (so chained records are exercised). The
// model:
//   - a retired node is kept while any hazard slot holds it or its guard (HD1), and
//   - Reclaim frees every retired node that no slot holds, directly or through its guard.
//   - a live guard holds exactly what it last protected, no two live guards share a slot,
//     and a record hands out exactly as many slots as there are live guards on it.
// After each step every node a slot protects is checked against the freed set, and after each
// Reclaim the set of freed nodes must match the model exactly. At the end every guard is
// released and everything reclaimed; LSan reports anything never freed.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "reclamation/hazard_domain.h"
#include "reclamation/hazard_guard.h"

namespace {

using midatlas::internal::HazardDomain;
using midatlas::internal::HazardGuard;
using midatlas::internal::HazardRecord;
using midatlas::internal::Retirable;

struct Node : Retirable {
  int id = 0;
  int payload = 0;
};

std::set<int>* g_freed = nullptr;  // ids freed by the domain, for the model

void FreeNode(Retirable* object) noexcept {
  Node* node = static_cast<Node*>(object);
  g_freed->insert(node->id);
  delete node;
}

[[noreturn]] void Violation(const char* what) {
  std::fprintf(stderr, "hazard_fuzz: model mismatch: %s\n", what);
  std::abort();
}

constexpr std::size_t kSources = 4;
constexpr std::size_t kRecords = 2;
// Guard positions per record: more than a record's slots, so that a record chains another.
constexpr std::size_t kGuards = HazardRecord::kLendableSlots + 4;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  std::set<int> freed;
  g_freed = &freed;
  auto domain = std::make_unique<HazardDomain>(
      HazardDomain::Options{.reclaim_threshold = in.ConsumeIntegralInRange<std::size_t>(1, 8)});
  std::array<HazardRecord*, kRecords> records{};
  for (HazardRecord*& record : records) record = domain->AcquireRecord();
  std::array<std::atomic<Node*>, kSources> sources{};
  // The guards, and the model: what each live guard's slot holds (nullptr for none), and
  // every retired node not yet freed.
  std::array<std::array<std::optional<HazardGuard>, kGuards>, kRecords> guards;
  std::array<std::array<const void*, kGuards>, kRecords> slots{};
  struct Retired {
    const Node* node;   // compared by address only once freed
    int id;
    const void* guard;  // copied at retirement: the node may be freed later
  };
  std::vector<Retired> retired;
  int next_id = 0;

  auto held = [&](const void* p) {
    if (p == nullptr) return false;
    for (const auto& record : slots) {
      for (const void* slot : record) {
        if (slot == p) return true;
      }
    }
    return false;
  };
  // After a scan: no node a slot holds (directly or through its guard) was freed, and the
  // domain's count matches the nodes still kept.
  auto check_scan = [&]() {
    std::vector<Retired> still;
    for (const Retired& entry : retired) {
      if (freed.count(entry.id) == 0) {
        still.push_back(entry);
      } else if (held(entry.node) || held(entry.guard)) {
        Violation("a retired node was freed while a slot held it or its guard");
      }
    }
    retired = std::move(still);
    if (domain->retired_count() != retired.size()) Violation("retired_count mismatch");
  };

  while (in.remaining_bytes() > 0) {
    const auto r = in.ConsumeIntegralInRange<std::size_t>(0, kRecords - 1);
    const auto g = in.ConsumeIntegralInRange<std::size_t>(0, kGuards - 1);
    const auto s = in.ConsumeIntegralInRange<std::size_t>(0, kSources - 1);
    std::optional<HazardGuard>& guard = guards[r][g];
    switch (in.ConsumeIntegralInRange<int>(0, 8)) {
      case 0: {  // publish a new node in an empty source
        if (sources[s].load(std::memory_order_relaxed) == nullptr) {
          auto* node = new Node;
          node->id = next_id++;
          node->reclaim = FreeNode;
          sources[s].store(node, std::memory_order_release);
        }
        break;
      }
      case 1: {  // Protect, through a guard taken for it if the position has none
        if (!guard.has_value()) guard.emplace(*records[r]);
        Node* got = guard->Protect(sources[s]);
        if (got != sources[s].load(std::memory_order_relaxed)) Violation("Protect mismatch");
        slots[r][g] = got;
        break;
      }
      case 2: {  // TryProtect (single-threaded: the source cannot change, so it must succeed)
        if (!guard.has_value()) guard.emplace(*records[r]);
        Node* got = guard->TryProtect(sources[s]);
        if (got != sources[s].load(std::memory_order_relaxed)) Violation("TryProtect mismatch");
        // A null source publishes nothing: the slot keeps what it held.
        if (got != nullptr) slots[r][g] = got;
        break;
      }
      case 3:  // Reset: the guard keeps its slot, clear
        if (guard.has_value()) guard->Reset();
        slots[r][g] = nullptr;
        break;
      case 4: {  // unlink and retire, with a guard sometimes (HD1)
        Node* node = sources[s].exchange(nullptr, std::memory_order_acq_rel);
        if (node == nullptr) break;
        const auto guard_source = in.ConsumeIntegralInRange<std::size_t>(0, kSources);
        node->guard = guard_source == kSources
                          ? nullptr
                          : sources[guard_source].load(std::memory_order_relaxed);
        retired.push_back(Retired{node, node->id, node->guard});
        const std::size_t freed_before = freed.size();
        domain->Retire(node);
        if (freed.size() != freed_before) check_scan();
        break;
      }
      case 5:  // explicit scan
        domain->Reclaim();
        check_scan();
        break;
      case 6:  // release the guard: its slot is cleared and given back
        guard.reset();
        slots[r][g] = nullptr;
        break;
      case 7: {  // move the guard to another position of the same record
        const auto to = in.ConsumeIntegralInRange<std::size_t>(0, kGuards - 1);
        if (to == g || !guard.has_value()) break;
        if (guards[r][to].has_value()) {
          *guards[r][to] = std::move(*guard);  // releases the target's own slot
        } else {
          guards[r][to].emplace(std::move(*guard));
        }
        guard.reset();  // the moved-from guard releases nothing
        slots[r][to] = slots[r][g];
        slots[r][g] = nullptr;
        break;
      }
      default:  // a guard taken and released at once leaves nothing behind
        HazardGuard{*records[r]};
        break;
    }
    // Every live guard holds what the model says, each record lends one slot per live guard,
    // and every node a slot holds is alive (its id is read: ASan reports a use-after-free).
    for (std::size_t record = 0; record < kRecords; ++record) {
      unsigned live = 0;
      for (std::size_t position = 0; position < kGuards; ++position) {
        const std::optional<HazardGuard>& held_guard = guards[record][position];
        if (!held_guard.has_value()) continue;
        ++live;
        if (held_guard->protected_node() != slots[record][position]) {
          Violation("a guard does not hold what it protected");
        }
      }
      if (records[record]->TakenSlots() != live) Violation("TakenSlots mismatch");
    }
    for (const auto& record : slots) {
      for (const void* p : record) {
        if (p != nullptr) {
          const auto* node = static_cast<const Node*>(p);
          if (freed.count(node->id) != 0) Violation("a protected node was freed");
        }
      }
    }
  }
  // Exactness of a scan: every retired node that nothing holds is freed by a Reclaim.
  domain->Reclaim();
  for (const Retired& entry : retired) {
    if (freed.count(entry.id) == 0 && !held(entry.node) && !held(entry.guard)) {
      Violation("an unprotected retired node was kept");
    }
  }
  check_scan();
  for (std::size_t record = 0; record < kRecords; ++record) {
    for (std::optional<HazardGuard>& guard : guards[record]) guard.reset();
    domain->ReleaseRecord(records[record]);
  }
  slots = {};
  domain->Reclaim();
  if (domain->retired_count() != 0) Violation("nodes left after releasing every guard");
  for (std::atomic<Node*>& source : sources) delete source.load(std::memory_order_relaxed);
  domain.reset();
  g_freed = nullptr;
  return 0;
}
