#include "atlas/map_nodes.h"

#include <cstring>
#include <new>

#include "instrumentation/atomic.h"

namespace midatlas::internal {

LeafMap* LeafMap::Create(std::uint32_t index, std::uint32_t capacity, std::uint32_t valid_slots,
                         std::uint64_t serial, Atomic<void*>* contexts, bool first_slot_held,
                         const std::uint32_t* excluded,
                         const std::uint32_t* excluded_end,
                         std::uint32_t excluded_base) noexcept {
  void* memory =
      ::operator new(AllocationSize(capacity), std::align_val_t{alignof(LeafMap)}, std::nothrow);
  if (memory == nullptr) return nullptr;
  auto* leaf = new (memory) LeafMap(index, valid_slots, serial, contexts);
  leaf->reclaim = &LeafMap::Reclaim;
  Atomic<std::uint32_t>* links = leaf->links();
  for (std::uint32_t slot = 0; slot < capacity; ++slot) {
    new (&links[slot]) Atomic<std::uint32_t>(FreeStack::kNone);
  }
  // The lowest slot that is not excluded (valid_slots when there is none).
  std::uint32_t first_usable = 0;
  for (const std::uint32_t* skip = excluded;
       skip != excluded_end && *skip == first_usable + excluded_base; ++skip) {
    ++first_usable;
  }
  first_usable = first_usable < valid_slots ? first_usable : valid_slots;
  leaf->first_usable_ = first_usable;
  const std::uint32_t begin = first_slot_held && first_usable < valid_slots ? first_usable + 1
                                                                            : first_usable;
  const std::uint32_t on_stack =
      leaf->stack_.InitUnshared(links, begin, valid_slots, excluded, excluded_end, excluded_base);
  leaf->usable_slots_ = on_stack + (begin != first_usable ? 1 : 0);
  return leaf;
}

void LeafMap::Destroy(LeafMap* leaf) noexcept {
  // The links are trivially destructible atomics: ending the header's lifetime is enough.
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
