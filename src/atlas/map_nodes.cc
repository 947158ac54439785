#include "atlas/map_nodes.h"

#include <cstring>
#include <new>

#include "instrumentation/atomic.h"

namespace midatlas::internal {

LeafMap* LeafMap::Create(std::uint32_t index, std::uint32_t capacity, std::uint32_t valid_slots,
                         std::uint64_t serial, void* context_for_first_slot) noexcept {
  void* memory =
      ::operator new(AllocationSize(capacity), std::align_val_t{alignof(LeafMap)}, std::nothrow);
  if (memory == nullptr) return nullptr;
  auto* leaf = new (memory) LeafMap(index, capacity, valid_slots, serial);
  leaf->reclaim = &LeafMap::Reclaim;
  Atomic<void*>* contexts = leaf->contexts();
  for (std::uint32_t slot = 0; slot < capacity; ++slot) {
    new (&contexts[slot]) Atomic<void*>(nullptr);
  }
  Atomic<std::uint32_t>* links = leaf->links();
  for (std::uint32_t slot = 0; slot < capacity; ++slot) {
    new (&links[slot]) Atomic<std::uint32_t>(FreeStack::kNone);
  }
  std::uint32_t first_free = 0;
  if (context_for_first_slot != nullptr && valid_slots > 0) {
    // relaxed: the leaf is unshared; the install (atlas:A3) publishes this store.
    contexts[0].store(context_for_first_slot, std::memory_order_relaxed);
    first_free = 1;
  }
  leaf->stack_.InitUnshared(links, first_free, valid_slots);
  return leaf;
}

void LeafMap::Destroy(LeafMap* leaf) noexcept {
  // The arrays hold trivially destructible atomics: ending the header's lifetime is enough.
  leaf->~LeafMap();
  ::operator delete(static_cast<void*>(leaf), std::align_val_t{alignof(LeafMap)});
}

DirectoryMap* DirectoryMap::Create(std::uint32_t index, std::uint32_t entries) noexcept {
  void* memory = ::operator new(AllocationSize(entries), std::nothrow);
  if (memory == nullptr) return nullptr;
  return CreateAt(memory, index, entries);
}

DirectoryMap* DirectoryMap::CreateAt(void* storage, std::uint32_t index,
                                     std::uint32_t entries) noexcept {
  auto* dir = new (storage) DirectoryMap(index, entries);
  dir->reclaim = &DirectoryMap::Reclaim;
  Atomic<LeafMap*>* leaves = dir->leaves();
  for (std::uint32_t entry = 0; entry < entries; ++entry) {
    new (&leaves[entry]) Atomic<LeafMap*>(nullptr);
  }
  return dir;
}

void DirectoryMap::Destroy(DirectoryMap* dir) noexcept {
  dir->~DirectoryMap();
  ::operator delete(static_cast<void*>(dir));
}

}  // namespace midatlas::internal
