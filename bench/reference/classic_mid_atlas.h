// ClassicMidAtlas: the original RDBSS MID_ATLAS design, single-threaded, re-created as a
// benchmark baseline; MutexClassicMidAtlas: the same behind one std::mutex, which is how every
// real caller of the original used it (the redirector held a spin lock around each call).
//
// WHAT IT RE-CREATES
//   A MID's 16 bits are split into three fields. The low field is as wide as
//   MidsAllocatedAtStart needs (50 -> 6 bits, 1 -> 0 bits); the remaining bits are split
//   equally between the two higher fields (the middle one gets the odd bit):
//
//    15          11 10           6 5               0     (MidsAllocatedAtStart = 50)
//   +--------------+--------------+-----------------+
//   |  high (5)    |  middle (5)  |     low (6)     |
//   +--------------+--------------+-----------------+
//
//   Every table is a MID_MAP: a header and an array of pointer-sized entries, each tagged in
//   its two low bits as a free entry (linked into the map's own free list), a context
//   (level 1), or a subordinate MID_MAP (levels 2 and 3). The atlas starts with one level-1
//   map of 2^low entries (the original rounds MidsAllocatedAtStart up to a power of two). When
//   every map is full and fewer than MaximumNumberOfMids MIDs are in use, it grows:
//     - the first time, a level-2 map is created whose entry 0 is the first map, and it
//       becomes the root; further level-1 maps fill its other entries;
//     - when that level-2 map is full too, a level-3 root is created the same way, whose
//       entry 0 is the old root; further level-2 maps fill its other entries.
//   So the tree grows at the top, and Map walks from the root through as many levels as the
//   atlas has grown, reading one tagged entry per level.
//
//   The atlas keeps the maps with a free entry on a list and always associates from the map
//   at its head; a map that regains a free entry goes back to the head. Maps are never freed
//   before the atlas is destroyed, so memory stays at its high-water mark.
//
// WHERE IT DIFFERS FROM THE ORIGINAL
//   - Input is validated: a null or misaligned context, a MID that is not in use, and a null
//     out-parameter are rejected with kInvalidParameter instead of corrupting the atlas.
//     Contexts must be 4-byte aligned, because entries carry their tag in the two low bits.
//   - Maps and directories are allocated with only the entries that MIDs below
//     MaximumNumberOfMids can use.
//   - Subordinate level-1 maps have 2^low entries (the original expanded in fixed quanta).
#ifndef MIDATLAS_BENCH_REFERENCE_CLASSIC_MID_ATLAS_H_
#define MIDATLAS_BENCH_REFERENCE_CLASSIC_MID_ATLAS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/functional/function_ref.h"

namespace midatlas::reference {

// The NTSTATUS codes the original routines return, one enumerator each.
enum class ClassicStatus : std::uint8_t {
  kSuccess,                // STATUS_SUCCESS
  kUnsuccessful,           // STATUS_UNSUCCESSFUL: MaximumNumberOfMids MIDs are in use
  kInsufficientResources,  // STATUS_INSUFFICIENT_RESOURCES: a MID_MAP could not be allocated
  kInvalidParameter,       // STATUS_INVALID_PARAMETER: bad argument or MID not in use
};

// Widths of the three MID fields, low to high.
struct ClassicLayout {
  int low_bits = 0;
  int middle_bits = 0;
  int high_bits = 0;

  friend bool operator==(const ClassicLayout&, const ClassicLayout&) = default;
};

class ClassicMidAtlas {
 public:
  using ContextFn = absl::FunctionRef<void(void*)>;

  // The layout an atlas created with `mids_allocated_at_start` (1..65535) uses.
  static ClassicLayout LayoutFor(std::uint16_t mids_allocated_at_start) noexcept;

  // RxCreateMidAtlas. nullptr when max_mids is 0, mids_allocated_at_start is 0 or above
  // max_mids, or memory is short.
  static std::unique_ptr<ClassicMidAtlas> Create(std::uint16_t max_mids,
                                                 std::uint16_t mids_allocated_at_start);
  // RxDestroyMidAtlas: hands every context still associated to `destructor`, then frees.
  static void Destroy(std::unique_ptr<ClassicMidAtlas> atlas, ContextFn destructor);

  ClassicMidAtlas(const ClassicMidAtlas&) = delete;
  ClassicMidAtlas& operator=(const ClassicMidAtlas&) = delete;
  // Frees every map; contexts still associated are dropped (Destroy hands them out first).
  ~ClassicMidAtlas();

  // RxAssociateContextWithMid.
  ClassicStatus Associate(void* context, std::uint16_t* mid) noexcept;
  // RxMapMidToContext: the context of `mid`, or nullptr when it is not in use.
  [[nodiscard]] void* Map(std::uint16_t mid) const noexcept;
  // RxMapAndDissociateMidFromContext: *context receives the context (nullptr on failure).
  ClassicStatus MapAndDissociate(std::uint16_t mid, void** context) noexcept;
  // RxReassociateMid.
  ClassicStatus Reassociate(std::uint16_t mid, void* new_context) noexcept;
  // RxIterateMidAtlasAndRemove: frees every MID in use, handing each context to `fn` after its
  // MID is free. `fn` must not call back into this atlas. Returns how many it handed out.
  std::size_t IterateAndRemove(ContextFn fn);

  [[nodiscard]] std::uint16_t max_mids() const noexcept { return max_mids_; }
  [[nodiscard]] std::uint16_t mids_in_use() const noexcept { return in_use_; }
  [[nodiscard]] ClassicLayout layout() const noexcept { return layout_; }
  // 1 until the first growth, then 2, then 3.
  [[nodiscard]] int number_of_levels() const noexcept { return levels_; }
  // MID_MAPs allocated, every level counted.
  [[nodiscard]] std::size_t map_count() const noexcept { return map_count_; }
  // Bytes of the atlas object and every MID_MAP allocated.
  [[nodiscard]] std::size_t bytes() const noexcept { return sizeof(*this) + map_bytes_; }

 private:
  struct MidMap;

  ClassicMidAtlas(std::uint16_t max_mids, ClassicLayout layout) noexcept;

  MidMap* NewMap(int level, std::uint32_t base_mid, std::uint32_t entry_count,
                 int shift, int bits) noexcept;
  void FreeTree(MidMap* map) noexcept;
  // The level-1 map holding `mid` and the entry's index, or nullptr when no map covers it.
  MidMap* FindLeaf(std::uint16_t mid, std::uint32_t* index) const noexcept;
  ClassicStatus GrowLeaf() noexcept;
  ClassicStatus GrowMiddle() noexcept;
  ClassicStatus AddLevel() noexcept;
  void FreeEntry(MidMap& leaf, std::uint32_t index) noexcept;
  template <typename Visit>
  void ForEachLeaf(MidMap* map, Visit&& visit);

  const std::uint16_t max_mids_;
  const ClassicLayout layout_;
  std::uint16_t in_use_ = 0;
  int levels_ = 1;
  int root_span_bits_;  // MIDs at or above 2^root_span_bits_ are not covered yet
  MidMap* root_ = nullptr;
  MidMap* first_map_ = nullptr;
  // Level-1 maps with a free entry (the original's MidMapFreeList).
  MidMap* free_maps_ = nullptr;
  // Level-2 maps with an entry for another level-1 map, and the level-3 root while it has an
  // entry for another level-2 map (the original's MidMapExpansionList).
  MidMap* expandable_middles_ = nullptr;
  MidMap* expandable_high_ = nullptr;
  std::size_t map_count_ = 0;
  std::size_t map_bytes_ = 0;
};

// ClassicMidAtlas with every call under one mutex. Map takes the lock too, as it must: a
// concurrent associate may be growing the tree Map walks.
class MutexClassicMidAtlas {
 public:
  using ContextFn = ClassicMidAtlas::ContextFn;

  static std::unique_ptr<MutexClassicMidAtlas> Create(std::uint16_t max_mids,
                                                      std::uint16_t mids_allocated_at_start);
  // Not thread-safe, as RxDestroyMidAtlas: no other call may run during or after it.
  static void Destroy(std::unique_ptr<MutexClassicMidAtlas> atlas, ContextFn destructor);

  ClassicStatus Associate(void* context, std::uint16_t* mid) noexcept;
  [[nodiscard]] void* Map(std::uint16_t mid) const noexcept;
  ClassicStatus MapAndDissociate(std::uint16_t mid, void** context) noexcept;
  ClassicStatus Reassociate(std::uint16_t mid, void* new_context) noexcept;
  // Removes every context under the lock, then hands them to `fn` without it, so `fn` may
  // call back into this atlas.
  std::size_t IterateAndRemove(ContextFn fn);

  [[nodiscard]] std::uint16_t max_mids() const noexcept { return atlas_->max_mids(); }
  [[nodiscard]] std::uint16_t mids_in_use() const noexcept;
  [[nodiscard]] std::size_t bytes() const noexcept;

 private:
  explicit MutexClassicMidAtlas(std::unique_ptr<ClassicMidAtlas> atlas) noexcept
      : atlas_(std::move(atlas)) {}

  mutable std::mutex mutex_;
  const std::unique_ptr<ClassicMidAtlas> atlas_;
};

}  // namespace midatlas::reference

#endif  // MIDATLAS_BENCH_REFERENCE_CLASSIC_MID_ATLAS_H_
