#include "reference/classic_mid_atlas.h"

#include <algorithm>
#include <bit>
#include <new>
#include <vector>

namespace midatlas::reference {

namespace {

// Entry tags, in the two low bits of every MID_MAP entry as in the original. A zero word is
// never a valid entry, so an entry that was never initialized cannot pass for one.
constexpr std::uintptr_t kTagMask = 3;
constexpr std::uintptr_t kFreeTag = 1;     // upper bits: index of the next free entry
constexpr std::uintptr_t kContextTag = 2;  // upper bits: the context (4-byte aligned)
constexpr std::uintptr_t kMapTag = 3;      // upper bits: a subordinate MID_MAP

// Ends a map's free list. Fits in the 30 bits a free entry has for its link on any platform.
constexpr std::uint32_t kNoEntry = 0x3FFFFFFFU;

std::uintptr_t FreeWord(std::uint32_t next) noexcept {
  return (std::uintptr_t{next} << 2) | kFreeTag;
}
std::uint32_t NextFree(std::uintptr_t word) noexcept {
  return static_cast<std::uint32_t>(word >> 2);
}
std::uintptr_t Tagged(const void* pointer, std::uintptr_t tag) noexcept {
  return reinterpret_cast<std::uintptr_t>(pointer) | tag;
}
void* Untagged(std::uintptr_t word) noexcept {
  return reinterpret_cast<void*>(word & ~kTagMask);
}
bool Aligned(const void* pointer) noexcept {
  return (reinterpret_cast<std::uintptr_t>(pointer) & kTagMask) == 0;
}
std::uint32_t CeilShift(std::uint32_t value, int bits) noexcept {
  return (value + (std::uint32_t{1} << bits) - 1) >> bits;
}

}  // namespace

// One MID_MAP: this header, then entry_count tagged entries in the same allocation.
struct ClassicMidAtlas::MidMap {
  MidMap* next_listed = nullptr;  // next map on the free_maps_ or expandable_* list
  std::uint32_t base_mid = 0;     // first MID the map covers
  std::uint32_t entry_count = 0;
  std::uint32_t entries_in_use = 0;  // contexts (level 1) or subordinate maps (levels 2, 3)
  std::uint32_t free_head = kNoEntry;
  std::uint32_t index_mask = 0;  // entry index = (mid >> shift) & index_mask
  std::uint8_t shift = 0;
  std::uint8_t level = 1;
  bool listed = false;

  [[nodiscard]] std::uintptr_t* entries() noexcept {
    return reinterpret_cast<std::uintptr_t*>(this + 1);
  }
  [[nodiscard]] const std::uintptr_t* entries() const noexcept {
    return reinterpret_cast<const std::uintptr_t*>(this + 1);
  }
  [[nodiscard]] bool full() const noexcept { return free_head == kNoEntry; }

  std::uint32_t PopFree() noexcept {
    const std::uint32_t index = free_head;
    free_head = NextFree(entries()[index]);
    ++entries_in_use;
    return index;
  }
  void PushFree(std::uint32_t index) noexcept {
    entries()[index] = FreeWord(free_head);
    free_head = index;
    --entries_in_use;
  }

  static std::size_t AllocationSize(std::uint32_t entry_count) noexcept {
    return sizeof(MidMap) + std::size_t{entry_count} * sizeof(std::uintptr_t);
  }
};

ClassicLayout ClassicMidAtlas::LayoutFor(std::uint16_t mids_allocated_at_start) noexcept {
  const unsigned start = mids_allocated_at_start == 0 ? 1U : mids_allocated_at_start;
  const int low = static_cast<int>(std::bit_width(start - 1U));
  const int rest = 16 - low;
  return ClassicLayout{.low_bits = low, .middle_bits = (rest + 1) / 2, .high_bits = rest / 2};
}

ClassicMidAtlas::ClassicMidAtlas(std::uint16_t max_mids, ClassicLayout layout) noexcept
    : max_mids_(max_mids), layout_(layout), root_span_bits_(layout.low_bits) {}

std::unique_ptr<ClassicMidAtlas> ClassicMidAtlas::Create(std::uint16_t max_mids,
                                                         std::uint16_t mids_allocated_at_start) {
  if (max_mids == 0 || mids_allocated_at_start == 0 || mids_allocated_at_start > max_mids) {
    return nullptr;
  }
  std::unique_ptr<ClassicMidAtlas> atlas(
      new (std::nothrow) ClassicMidAtlas(max_mids, LayoutFor(mids_allocated_at_start)));
  if (atlas == nullptr) return nullptr;
  const int low = atlas->layout_.low_bits;
  const std::uint32_t first_entries = std::min(std::uint32_t{1} << low, std::uint32_t{max_mids});
  atlas->first_map_ = atlas->NewMap(1, 0, first_entries, 0, low);
  if (atlas->first_map_ == nullptr) return nullptr;
  atlas->root_ = atlas->first_map_;
  atlas->first_map_->listed = true;
  atlas->free_maps_ = atlas->first_map_;
  return atlas;
}

void ClassicMidAtlas::Destroy(std::unique_ptr<ClassicMidAtlas> atlas, ContextFn destructor) {
  if (atlas == nullptr) return;
  atlas->IterateAndRemove(destructor);
}

ClassicMidAtlas::~ClassicMidAtlas() {
  if (root_ != nullptr) FreeTree(root_);
}

ClassicMidAtlas::MidMap* ClassicMidAtlas::NewMap(int level, std::uint32_t base_mid,
                                                 std::uint32_t entry_count, int shift,
                                                 int bits) noexcept {
  static_assert(sizeof(MidMap) % alignof(std::uintptr_t) == 0,
                "entries must start aligned right after the header");
  const std::size_t size = MidMap::AllocationSize(entry_count);
  void* memory = ::operator new(size, std::nothrow);
  if (memory == nullptr) return nullptr;
  auto* map = new (memory) MidMap();
  map->base_mid = base_mid;
  map->entry_count = entry_count;
  map->index_mask = (std::uint32_t{1} << bits) - 1;
  map->shift = static_cast<std::uint8_t>(shift);
  map->level = static_cast<std::uint8_t>(level);
  // Lowest entry first, so MIDs stay low while the atlas is young.
  for (std::uint32_t i = 0; i < entry_count; ++i) {
    map->entries()[i] = FreeWord(i + 1 < entry_count ? i + 1 : kNoEntry);
  }
  map->free_head = entry_count > 0 ? 0 : kNoEntry;
  ++map_count_;
  map_bytes_ += size;
  return map;
}

void ClassicMidAtlas::FreeTree(MidMap* map) noexcept {
  if (map->level > 1) {
    for (std::uint32_t i = 0; i < map->entry_count; ++i) {
      const std::uintptr_t word = map->entries()[i];
      if ((word & kTagMask) == kMapTag) FreeTree(static_cast<MidMap*>(Untagged(word)));
    }
  }
  map->~MidMap();
  ::operator delete(static_cast<void*>(map));
}

ClassicMidAtlas::MidMap* ClassicMidAtlas::FindLeaf(std::uint16_t mid,
                                                   std::uint32_t* index) const noexcept {
  // The root covers [0, 2^root_span_bits_); a MID above that has no map yet. Without this
  // check a young root would alias high MIDs onto its own entries.
  if (mid >= max_mids_ || (std::uint32_t{mid} >> root_span_bits_) != 0) return nullptr;
  MidMap* map = root_;
  while (true) {
    const std::uint32_t i = (std::uint32_t{mid} >> map->shift) & map->index_mask;
    if (i >= map->entry_count) return nullptr;
    if (map->level == 1) {
      *index = i;
      return map;
    }
    const std::uintptr_t word = map->entries()[i];
    if ((word & kTagMask) != kMapTag) return nullptr;
    map = static_cast<MidMap*>(Untagged(word));
  }
}

ClassicStatus ClassicMidAtlas::Associate(void* context, std::uint16_t* mid) noexcept {
  if (context == nullptr || !Aligned(context) || mid == nullptr) {
    return ClassicStatus::kInvalidParameter;
  }
  if (in_use_ == max_mids_) return ClassicStatus::kUnsuccessful;
  if (free_maps_ == nullptr) {
    const ClassicStatus grown = GrowLeaf();
    if (grown != ClassicStatus::kSuccess) return grown;
  }
  MidMap& leaf = *free_maps_;
  const std::uint32_t index = leaf.PopFree();
  leaf.entries()[index] = Tagged(context, kContextTag);
  ++in_use_;
  if (leaf.full()) {
    free_maps_ = leaf.next_listed;
    leaf.listed = false;
  }
  *mid = static_cast<std::uint16_t>(leaf.base_mid + index);
  return ClassicStatus::kSuccess;
}

// Every level-1 map is full and fewer than max_mids_ MIDs are in use, so some MID below
// max_mids_ has no map yet: maps are only ever added, lowest entry first, so the covered MIDs
// are always one prefix of [0, max_mids_) and the next level-1 map starts where it ends.
ClassicStatus ClassicMidAtlas::GrowLeaf() noexcept {
  if (expandable_middles_ == nullptr) {
    const ClassicStatus grown = GrowMiddle();
    if (grown != ClassicStatus::kSuccess) return grown;
  }
  MidMap& middle = *expandable_middles_;
  const std::uint32_t index = middle.PopFree();
  const std::uint32_t base = middle.base_mid + (index << layout_.low_bits);
  const std::uint32_t entries =
      std::min(std::uint32_t{1} << layout_.low_bits, std::uint32_t{max_mids_} - base);
  MidMap* leaf = NewMap(1, base, entries, 0, layout_.low_bits);
  if (leaf == nullptr) {
    middle.PushFree(index);
    return ClassicStatus::kInsufficientResources;
  }
  middle.entries()[index] = Tagged(leaf, kMapTag);
  if (middle.full()) {
    expandable_middles_ = middle.next_listed;
    middle.listed = false;
  }
  leaf->listed = true;
  leaf->next_listed = free_maps_;
  free_maps_ = leaf;
  return ClassicStatus::kSuccess;
}

ClassicStatus ClassicMidAtlas::GrowMiddle() noexcept {
  if (levels_ == 1) {
    const ClassicStatus grown = AddLevel();
    if (grown != ClassicStatus::kSuccess || expandable_middles_ != nullptr) return grown;
  }
  if (levels_ == 2) {
    const ClassicStatus grown = AddLevel();
    if (grown != ClassicStatus::kSuccess) return grown;
  }
  // Unreachable while the prefix argument above holds; answer as the original would rather
  // than dereference null.
  if (expandable_high_ == nullptr) return ClassicStatus::kUnsuccessful;
  MidMap& high = *expandable_high_;
  const std::uint32_t index = high.PopFree();
  const int middle_shift = layout_.low_bits + layout_.middle_bits;
  const std::uint32_t base = index << middle_shift;
  const std::uint32_t entries =
      std::min(std::uint32_t{1} << layout_.middle_bits,
               CeilShift(std::uint32_t{max_mids_} - base, layout_.low_bits));
  MidMap* middle = NewMap(2, base, entries, layout_.low_bits, layout_.middle_bits);
  if (middle == nullptr) {
    high.PushFree(index);
    return ClassicStatus::kInsufficientResources;
  }
  high.entries()[index] = Tagged(middle, kMapTag);
  if (high.full()) {
    expandable_high_ = nullptr;
    high.listed = false;
  }
  middle->listed = true;
  middle->next_listed = expandable_middles_;
  expandable_middles_ = middle;
  return ClassicStatus::kSuccess;
}

// Grows the tree at the top: a new root whose entry 0 is the old root.
ClassicStatus ClassicMidAtlas::AddLevel() noexcept {
  const int level = levels_ + 1;
  const int shift = level == 2 ? layout_.low_bits : layout_.low_bits + layout_.middle_bits;
  const int bits = level == 2 ? layout_.middle_bits : layout_.high_bits;
  const std::uint32_t entries =
      std::min(std::uint32_t{1} << bits, CeilShift(max_mids_, shift));
  MidMap* top = NewMap(level, 0, entries, shift, bits);
  if (top == nullptr) return ClassicStatus::kInsufficientResources;
  const std::uint32_t zero = top->PopFree();
  top->entries()[zero] = Tagged(root_, kMapTag);
  root_ = top;
  levels_ = level;
  root_span_bits_ = shift + bits;
  if (!top->full()) {
    top->listed = true;
    if (level == 2) {
      top->next_listed = expandable_middles_;
      expandable_middles_ = top;
    } else {
      expandable_high_ = top;
    }
  }
  return ClassicStatus::kSuccess;
}

void ClassicMidAtlas::FreeEntry(MidMap& leaf, std::uint32_t index) noexcept {
  leaf.PushFree(index);
  --in_use_;
  // Back to the head: the next associate takes the MID just freed, as in the original.
  if (!leaf.listed) {
    leaf.listed = true;
    leaf.next_listed = free_maps_;
    free_maps_ = &leaf;
  }
}

void* ClassicMidAtlas::Map(std::uint16_t mid) const noexcept {
  std::uint32_t index = 0;
  const MidMap* leaf = FindLeaf(mid, &index);
  if (leaf == nullptr) return nullptr;
  const std::uintptr_t word = leaf->entries()[index];
  return (word & kTagMask) == kContextTag ? Untagged(word) : nullptr;
}

ClassicStatus ClassicMidAtlas::MapAndDissociate(std::uint16_t mid, void** context) noexcept {
  if (context == nullptr) return ClassicStatus::kInvalidParameter;
  *context = nullptr;
  std::uint32_t index = 0;
  MidMap* leaf = FindLeaf(mid, &index);
  if (leaf == nullptr) return ClassicStatus::kInvalidParameter;
  const std::uintptr_t word = leaf->entries()[index];
  if ((word & kTagMask) != kContextTag) return ClassicStatus::kInvalidParameter;
  FreeEntry(*leaf, index);
  *context = Untagged(word);
  return ClassicStatus::kSuccess;
}

ClassicStatus ClassicMidAtlas::Reassociate(std::uint16_t mid, void* new_context) noexcept {
  if (new_context == nullptr || !Aligned(new_context)) return ClassicStatus::kInvalidParameter;
  std::uint32_t index = 0;
  MidMap* leaf = FindLeaf(mid, &index);
  if (leaf == nullptr) return ClassicStatus::kInvalidParameter;
  std::uintptr_t& entry = leaf->entries()[index];
  if ((entry & kTagMask) != kContextTag) return ClassicStatus::kInvalidParameter;
  entry = Tagged(new_context, kContextTag);
  return ClassicStatus::kSuccess;
}

template <typename Visit>
void ClassicMidAtlas::ForEachLeaf(MidMap* map, Visit&& visit) {
  if (map->level == 1) {
    visit(*map);
    return;
  }
  for (std::uint32_t i = 0; i < map->entry_count; ++i) {
    const std::uintptr_t word = map->entries()[i];
    if ((word & kTagMask) == kMapTag) ForEachLeaf(static_cast<MidMap*>(Untagged(word)), visit);
  }
}

std::size_t ClassicMidAtlas::IterateAndRemove(ContextFn fn) {
  std::size_t removed = 0;
  ForEachLeaf(root_, [&](MidMap& leaf) {
    for (std::uint32_t i = 0; i < leaf.entry_count; ++i) {
      const std::uintptr_t word = leaf.entries()[i];
      if ((word & kTagMask) != kContextTag) continue;
      FreeEntry(leaf, i);
      fn(Untagged(word));
      ++removed;
    }
  });
  return removed;
}

// ----------------------------------------------------------------------------------------

std::unique_ptr<MutexClassicMidAtlas> MutexClassicMidAtlas::Create(
    std::uint16_t max_mids, std::uint16_t mids_allocated_at_start) {
  std::unique_ptr<ClassicMidAtlas> atlas =
      ClassicMidAtlas::Create(max_mids, mids_allocated_at_start);
  if (atlas == nullptr) return nullptr;
  return std::unique_ptr<MutexClassicMidAtlas>(
      new (std::nothrow) MutexClassicMidAtlas(std::move(atlas)));
}

void MutexClassicMidAtlas::Destroy(std::unique_ptr<MutexClassicMidAtlas> atlas,
                                   ContextFn destructor) {
  if (atlas == nullptr) return;
  atlas->atlas_->IterateAndRemove(destructor);
}

ClassicStatus MutexClassicMidAtlas::Associate(void* context, std::uint16_t* mid) noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  return atlas_->Associate(context, mid);
}

void* MutexClassicMidAtlas::Map(std::uint16_t mid) const noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  return atlas_->Map(mid);
}

ClassicStatus MutexClassicMidAtlas::MapAndDissociate(std::uint16_t mid,
                                                     void** context) noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  return atlas_->MapAndDissociate(mid, context);
}

ClassicStatus MutexClassicMidAtlas::Reassociate(std::uint16_t mid, void* new_context) noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  return atlas_->Reassociate(mid, new_context);
}

std::size_t MutexClassicMidAtlas::IterateAndRemove(ContextFn fn) {
  std::vector<void*> removed;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    removed.reserve(atlas_->mids_in_use());
    atlas_->IterateAndRemove([&removed](void* context) { removed.push_back(context); });
  }
  for (void* context : removed) fn(context);
  return removed.size();
}

std::uint16_t MutexClassicMidAtlas::mids_in_use() const noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  return atlas_->mids_in_use();
}

std::size_t MutexClassicMidAtlas::bytes() const noexcept {
  const std::lock_guard<std::mutex> lock(mutex_);
  return sizeof(*this) + atlas_->bytes();
}

}  // namespace midatlas::reference
