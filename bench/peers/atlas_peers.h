// midatlas itself (C++ and C API) and the two reference atlases in bench/reference/.
#ifndef MIDATLAS_BENCH_PEERS_ATLAS_PEERS_H_
#define MIDATLAS_BENCH_PEERS_ATLAS_PEERS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"
#include "midatlas/midatlax_ex.h"
#include "peers/peer.h"
#include "reference/classic_mid_atlas.h"
#include "reference/flat_atomic_atlas.h"

namespace midatlas::bench {

class MidatlasCpp {
 public:
  static constexpr const char* kName = "midatlas";
  using ThreadScope = NoThreadScope;

  explicit MidatlasCpp(std::uint32_t start, std::uint32_t max = kMaxMids) {
    absl::StatusOr<midatlas::MidAtlas> atlas =
        midatlas::MidAtlas::Create({.max_mids = max, .initial_mids = start});
    if (atlas.ok()) atlas_ = *std::move(atlas);
  }
  [[nodiscard]] bool ok() const { return atlas_.has_value(); }
  bool Associate(void* context, Mid* mid) noexcept {
    absl::StatusOr<Mid> result = atlas_->Associate(context);
    if (!result.ok()) [[unlikely]] return false;
    *mid = *result;
    return true;
  }
  [[nodiscard]] void* Map(Mid mid) const noexcept { return atlas_->Map(mid); }
  void* MapAndDissociate(Mid mid) noexcept {
    absl::StatusOr<void*> context = atlas_->MapAndDissociate(mid);
    return context.ok() ? *context : nullptr;
  }
  void Settle() noexcept {}
  // Maps attached to the atlas; maps detached but not yet reclaimed by the hazard-pointer
  // domain are still on the heap, so the heap delta can be larger.
  [[nodiscard]] std::size_t attached_bytes() const noexcept {
    return atlas_->stats().bytes_attached;
  }
  [[nodiscard]] std::uint32_t MidsInUse() const noexcept { return atlas_->mids_in_use(); }
  // The context pages of an atlas whose contexts exceed a page are mmap'd, not heap: the
  // memory workload adds them to the heap count (max 65,535 here, so always the case).
  [[nodiscard]] std::size_t context_bytes_outside_heap() const noexcept {
    return atlas_->stats().context_bytes;
  }

 private:
  std::optional<midatlas::MidAtlas> atlas_;
};

class MidatlasC {
 public:
  static constexpr const char* kName = "midatlas-c";
  using ThreadScope = NoThreadScope;

  explicit MidatlasC(std::uint32_t start, std::uint32_t max = kMaxMids)
      : atlas_(RxCreateMidAtlas(static_cast<USHORT>(max), static_cast<USHORT>(start))) {}
  ~MidatlasC() { RxDestroyMidAtlas(atlas_, nullptr); }
  MidatlasC(const MidatlasC&) = delete;
  MidatlasC& operator=(const MidatlasC&) = delete;

  [[nodiscard]] bool ok() const { return atlas_ != nullptr; }
  bool Associate(void* context, Mid* mid) noexcept {
    return RxAssociateContextWithMid(atlas_, context, mid) == STATUS_SUCCESS;
  }
  [[nodiscard]] void* Map(Mid mid) const noexcept { return RxMapMidToContext(atlas_, mid); }
  void* MapAndDissociate(Mid mid) noexcept {
    PVOID context = nullptr;
    RxMapAndDissociateMidFromContext(atlas_, mid, &context);  // null context on failure
    return context;
  }
  void Settle() noexcept {}
  [[nodiscard]] std::uint32_t MidsInUse() const noexcept { return RxGetNumberOfMidsInUse(atlas_); }

 private:
  PRX_MID_ATLAS atlas_;
};

// The C API with the extensions' options: generation bits (the index space shrinks to
// 2^(16 - G), so max is capped there) or a reuse policy. The rows of these variants price
// each option against midatlas-c (docs/BENCHMARKS.md).
template <UCHAR kGenerationBits, UCHAR kPolicy>
class MidatlasCEx {
 public:
  static constexpr const char* kName = kGenerationBits != 0       ? "midatlas-c-g4"
                                       : kPolicy == RX_MID_REUSE_CYCLIC ? "midatlas-c-cyclic"
                                       : kPolicy == RX_MID_REUSE_RANDOM ? "midatlas-c-random"
                                                                        : "midatlas-c-ex";
  using ThreadScope = NoThreadScope;

  explicit MidatlasCEx(std::uint32_t start, std::uint32_t max = kMaxMids) {
    const std::uint32_t space = 1U << (16 - kGenerationBits);
    RX_MID_ATLAS_PARAMETERS p{};
    p.MaximumNumberOfMids = static_cast<USHORT>(max < space ? max : space);
    p.MidsAllocatedAtStart = static_cast<USHORT>(start < p.MaximumNumberOfMids ? start
                                                                               : p.MaximumNumberOfMids);
    p.GenerationBits = kGenerationBits;
    p.ReusePolicy = kPolicy;
    atlas_ = RxCreateMidAtlasEx(&p);
  }
  ~MidatlasCEx() { RxDestroyMidAtlas(atlas_, nullptr); }
  MidatlasCEx(const MidatlasCEx&) = delete;
  MidatlasCEx& operator=(const MidatlasCEx&) = delete;

  [[nodiscard]] bool ok() const { return atlas_ != nullptr; }
  bool Associate(void* context, Mid* mid) noexcept {
    return RxAssociateContextWithMid(atlas_, context, mid) == STATUS_SUCCESS;
  }
  [[nodiscard]] void* Map(Mid mid) const noexcept { return RxMapMidToContext(atlas_, mid); }
  void* MapAndDissociate(Mid mid) noexcept {
    PVOID context = nullptr;
    RxMapAndDissociateMidFromContext(atlas_, mid, &context);  // null context on failure
    return context;
  }
  void Settle() noexcept {}
  [[nodiscard]] std::uint32_t MidsInUse() const noexcept { return RxGetNumberOfMidsInUse(atlas_); }

 private:
  PRX_MID_ATLAS atlas_ = nullptr;
};
using MidatlasCGen4 = MidatlasCEx<4, RX_MID_REUSE_COMPACT>;
using MidatlasCCyclic = MidatlasCEx<0, RX_MID_REUSE_CYCLIC>;
using MidatlasCRandom = MidatlasCEx<0, RX_MID_REUSE_RANDOM>;

class FlatAtomic {
 public:
  static constexpr const char* kName = "flat-atomic";
  using ThreadScope = NoThreadScope;

  explicit FlatAtomic(std::uint32_t /*start: it never grows*/, std::uint32_t max = kMaxMids)
      : atlas_(max) {}
  [[nodiscard]] bool ok() const { return true; }
  bool Associate(void* context, Mid* mid) noexcept { return atlas_.Associate(context, mid); }
  [[nodiscard]] void* Map(Mid mid) const noexcept { return atlas_.Map(mid); }
  void* MapAndDissociate(Mid mid) noexcept { return atlas_.MapAndDissociate(mid); }
  void Settle() noexcept {}

 private:
  midatlas::reference::FlatAtomicAtlas atlas_;
};

class ClassicMutex {
 public:
  static constexpr const char* kName = "classic+mutex";
  using ThreadScope = NoThreadScope;

  explicit ClassicMutex(std::uint32_t start)
      : atlas_(midatlas::reference::MutexClassicMidAtlas::Create(
            static_cast<std::uint16_t>(kMaxMids), static_cast<std::uint16_t>(start))) {}
  [[nodiscard]] bool ok() const { return atlas_ != nullptr; }
  bool Associate(void* context, Mid* mid) noexcept {
    return atlas_->Associate(context, mid) == midatlas::reference::ClassicStatus::kSuccess;
  }
  [[nodiscard]] void* Map(Mid mid) const noexcept { return atlas_->Map(mid); }
  void* MapAndDissociate(Mid mid) noexcept {
    void* context = nullptr;
    atlas_->MapAndDissociate(mid, &context);  // null context on failure
    return context;
  }
  void Settle() noexcept {}

 private:
  std::unique_ptr<midatlas::reference::MutexClassicMidAtlas> atlas_;
};

}  // namespace midatlas::bench

#endif  // MIDATLAS_BENCH_PEERS_ATLAS_PEERS_H_
