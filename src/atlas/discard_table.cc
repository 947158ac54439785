#include "atlas/discard_table.h"

#include <new>

namespace midatlas::internal {

DiscardTable* DiscardTable::Create(std::uint32_t indexes) noexcept {
  auto* table = new (std::nothrow) DiscardTable();
  if (table == nullptr) return nullptr;
  table->words_.reset(new (std::nothrow) Atomic<std::uint64_t>[indexes]);
  table->late_.reset(new (std::nothrow) Atomic<void*>[indexes]);
  if (!table->words_ || !table->late_) {
    delete table;
    return nullptr;
  }
  for (std::uint32_t i = 0; i < indexes; ++i) {
    // Unshared until the creator publishes the table (discard:Q9).
    table->words_[i].store(0, std::memory_order_relaxed);
    table->late_[i].store(nullptr, std::memory_order_relaxed);
  }
  return table;
}

void DiscardTable::Destroy(DiscardTable* table) noexcept { delete table; }

std::uint32_t DiscardTable::count() const noexcept {
  // (discard:Q4) relaxed: a snapshot of a count; pairs with nothing.
  return count_.load(std::memory_order_relaxed);
}

void DiscardTable::CountIn() noexcept {
  // (discard:Q5) relaxed: a count, as (atlas:C1); it comes before the discarded phase's
  // publication, so the end that follows it counts out after it.
  count_.fetch_add(1, std::memory_order_relaxed);
}

void DiscardTable::CountOut() noexcept {
  // (discard:Q6) relaxed: as (discard:Q5).
  count_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace midatlas::internal
