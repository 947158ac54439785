// Model-based fuzz target for the hazard-pointer domain (src/hazard_domain.h): the input
// decodes into a sequence of protect / clear / unlink-and-retire / reclaim steps on a private
// domain with a fuzzed reclaim threshold, over a few sources and two records. The model:
//   - a retired node is kept while any hazard slot holds it or its guard (HD1), and
//   - Reclaim frees every retired node that no slot holds, directly or through its guard.
// After each step every node a slot protects is read (ASan reports a premature free as a
// use-after-free), and after each Reclaim the set of freed nodes must match the model exactly.
// At the end everything is cleared and reclaimed; LSan reports anything never freed.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "reclamation/hazard_domain.h"

namespace {

using midatlas::internal::HazardDomain;
using midatlas::internal::HazardRecord;
using midatlas::internal::kHazardSlots;
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
  // The model: what each slot holds, and every retired node not yet freed.
  std::array<std::array<const void*, kHazardSlots>, kRecords> slots{};
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
    const int slot = in.ConsumeIntegralInRange<int>(0, kHazardSlots - 1);
    const auto slot_index = static_cast<std::size_t>(slot);
    const auto s = in.ConsumeIntegralInRange<std::size_t>(0, kSources - 1);
    switch (in.ConsumeIntegralInRange<int>(0, 6)) {
      case 0: {  // publish a new node in an empty source
        if (sources[s].load(std::memory_order_relaxed) == nullptr) {
          auto* node = new Node;
          node->id = next_id++;
          node->reclaim = FreeNode;
          sources[s].store(node, std::memory_order_release);
        }
        break;
      }
      case 1: {  // Protect
        Node* got = records[r]->Protect(slot, sources[s]);
        if (got != sources[s].load(std::memory_order_relaxed)) Violation("Protect mismatch");
        slots[r][slot_index] = got;
        break;
      }
      case 2: {  // TryProtect (single-threaded: the source cannot change, so it must succeed)
        Node* got = records[r]->TryProtect(slot, sources[s]);
        if (got != sources[s].load(std::memory_order_relaxed)) Violation("TryProtect mismatch");
        // A null source publishes nothing: the slot keeps what it held.
        if (got != nullptr) slots[r][slot_index] = got;
        break;
      }
      case 3:  // Clear
        records[r]->Clear(slot);
        slots[r][slot_index] = nullptr;
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
      default:  // Get returns what was published
        if (records[r]->Get(slot) != slots[r][slot_index]) Violation("Get mismatch");
        break;
    }
    // Every node a slot holds is alive: read it (ASan: use-after-free if freed early).
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
  for (HazardRecord* record : records) {
    for (int slot = 0; slot < kHazardSlots; ++slot) record->Clear(slot);
    domain->ReleaseRecord(record);
  }
  domain->Reclaim();
  if (domain->retired_count() != 0) Violation("nodes left after clearing every slot");
  for (std::atomic<Node*>& source : sources) delete source.load(std::memory_order_relaxed);
  domain.reset();
  g_freed = nullptr;
  return 0;
}
