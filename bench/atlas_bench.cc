// midatlas against the allocators a user would otherwise pick, in one binary and one run:
//
//   midatlas       the C++ API (midatlas::MidAtlas; results come back as absl::StatusOr)
//   midatlas-c     the RDBSS C API over the same core (RxMapMidToContext, ...)
//   flat-atomic    a flat 65,536-slot array with a lock-free free stack: no growth, no
//                  reclamation, fixed memory (reference/flat_atomic_atlas.h)
//   classic+mutex  the original RDBSS MID_ATLAS design behind one std::mutex, as its callers
//                  used it (reference/classic_mid_atlas.h)
//
// Every atlas is created with max 65535 and start 50 (the RDBSS defaults for a LAN Manager
// server) and reaches its occupancy by associating. bench/README.md explains each name.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "benchmark/benchmark.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"
#include "reference/classic_mid_atlas.h"
#include "reference/flat_atomic_atlas.h"

namespace {

using midatlas::Mid;

constexpr std::uint32_t kMaxMids = 65535;
constexpr std::uint32_t kStartMids = 50;
// Probe MIDs are drawn ahead of time and indexed with a counter, so the timed loop pays for
// neither the RNG nor a modulo. A power of two, and large enough to defeat branch history.
constexpr std::uint32_t kProbes = 4096;
static_assert((kProbes & (kProbes - 1)) == 0, "probe index is masked, not reduced");
constexpr std::uint32_t kProbeSeed = 0x5EED;
constexpr std::size_t kPairInFlight = 50;

// Distinct contexts, 8-byte aligned because the classic atlas tags the two low bits.
std::array<std::uint64_t, 65536> g_objects;
void* ContextFor(std::size_t i) { return &g_objects[i & 0xFFFF]; }

// ---------------------------------------------------------------------------------------
// One adapter per implementation, so every workload runs the same code over each.

class MidatlasCpp {
 public:
  static constexpr const char* kName = "midatlas";
  static constexpr bool kReportsBytes = true;

  MidatlasCpp() {
    absl::StatusOr<std::unique_ptr<midatlas::MidAtlas>> atlas =
        midatlas::MidAtlas::Create({.max_mids = kMaxMids, .initial_mids = kStartMids});
    if (atlas.ok()) atlas_ = *std::move(atlas);
  }
  [[nodiscard]] bool ok() const { return atlas_ != nullptr; }
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
  [[nodiscard]] std::size_t bytes() const noexcept { return atlas_->stats().bytes_attached; }

 private:
  std::unique_ptr<midatlas::MidAtlas> atlas_;
};

class MidatlasC {
 public:
  static constexpr const char* kName = "midatlas-c";
  // The C API has no statistics; its memory is the C++ API's (one core serves both).
  static constexpr bool kReportsBytes = false;

  MidatlasC()
      : atlas_(RxCreateMidAtlas(static_cast<USHORT>(kMaxMids), static_cast<USHORT>(kStartMids))) {}
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
  [[nodiscard]] std::size_t bytes() const noexcept { return 0; }

 private:
  PRX_MID_ATLAS atlas_;
};

class FlatAtomic {
 public:
  static constexpr const char* kName = "flat-atomic";
  static constexpr bool kReportsBytes = true;

  [[nodiscard]] bool ok() const { return true; }
  bool Associate(void* context, Mid* mid) noexcept { return atlas_.Associate(context, mid); }
  [[nodiscard]] void* Map(Mid mid) const noexcept { return atlas_.Map(mid); }
  void* MapAndDissociate(Mid mid) noexcept { return atlas_.MapAndDissociate(mid); }
  [[nodiscard]] std::size_t bytes() const noexcept { return atlas_.bytes(); }

 private:
  midatlas::reference::FlatAtomicAtlas atlas_{kMaxMids};
};

class ClassicMutex {
 public:
  static constexpr const char* kName = "classic+mutex";
  static constexpr bool kReportsBytes = true;

  ClassicMutex()
      : atlas_(midatlas::reference::MutexClassicMidAtlas::Create(
            static_cast<std::uint16_t>(kMaxMids), static_cast<std::uint16_t>(kStartMids))) {}
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
  [[nodiscard]] std::size_t bytes() const noexcept { return atlas_->bytes(); }

 private:
  std::unique_ptr<midatlas::reference::MutexClassicMidAtlas> atlas_;
};

// Associates `count` fresh contexts; false if any association failed.
template <typename Impl>
bool Fill(Impl& atlas, std::size_t count, std::vector<Mid>* mids) {
  mids->reserve(mids->size() + count);
  for (std::size_t i = 0; i < count; ++i) {
    Mid mid = 0;
    if (!atlas.Associate(ContextFor(i), &mid)) return false;
    mids->push_back(mid);
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// map: the receive path. One thread maps random MIDs that are in use.

template <typename Impl>
void MapWorkload(benchmark::State& state, std::size_t in_use) {
  Impl atlas;
  std::vector<Mid> mids;
  if (!atlas.ok() || !Fill(atlas, in_use, &mids)) {
    state.SkipWithError("could not reach the requested occupancy");
    return;
  }
  std::mt19937 rng(kProbeSeed);
  std::uniform_int_distribution<std::size_t> pick(0, mids.size() - 1);
  std::array<Mid, kProbes> probes{};
  for (Mid& probe : probes) {
    probe = mids[pick(rng)];
    if (atlas.Map(probe) == nullptr) {
      state.SkipWithError("an in-use MID mapped to null");
      return;
    }
  }
  std::uint32_t next = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(atlas.Map(probes[next++ & (kProbes - 1)]));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---------------------------------------------------------------------------------------
// pair: the request lifecycle on one connection with a steady window. The oldest of 50
// outstanding MIDs is dissociated and a new association takes its place, FIFO.

template <typename Impl>
void PairWorkload(benchmark::State& state) {
  Impl atlas;
  std::vector<Mid> ring;
  if (!atlas.ok() || !Fill(atlas, kPairInFlight, &ring)) {
    state.SkipWithError("could not fill the window");
    return;
  }
  std::size_t oldest = 0;
  for (auto _ : state) {
    void* context = atlas.MapAndDissociate(ring[oldest]);
    // A null context (the dissociate failed) makes the associate fail too.
    if (!atlas.Associate(context, &ring[oldest])) [[unlikely]] {
      state.SkipWithError("dissociate or associate failed");
      break;
    }
    if (++oldest == kPairInFlight) oldest = 0;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---------------------------------------------------------------------------------------
// rpc: several threads share one atlas; each runs whole requests: associate, three maps (one
// per response packet), dissociate. The atlas is built by the Setup hook, which runs before
// the threads of each run start and so happens-before all of them.

template <typename Impl>
Impl* g_rpc_atlas = nullptr;

template <typename Impl>
void RpcSetup(const benchmark::State&) {
  g_rpc_atlas<Impl> = new Impl();
}

template <typename Impl>
void RpcTeardown(const benchmark::State&) {
  delete g_rpc_atlas<Impl>;
  g_rpc_atlas<Impl> = nullptr;
}

template <typename Impl>
void RpcWorkload(benchmark::State& state) {
  Impl& atlas = *g_rpc_atlas<Impl>;
  if (!atlas.ok()) {
    state.SkipWithError("could not create the atlas");
    return;
  }
  void* mine = ContextFor(static_cast<std::size_t>(state.thread_index()));
  // Counted, not branched on: a wrong answer must be reported, but checking it must not
  // cost more than a compare.
  std::int64_t wrong = 0;
  for (auto _ : state) {
    Mid mid = 0;
    if (!atlas.Associate(mine, &mid)) [[unlikely]] {
      state.SkipWithError("associate failed");
      break;
    }
    wrong += atlas.Map(mid) != mine;
    wrong += atlas.Map(mid) != mine;
    wrong += atlas.Map(mid) != mine;
    wrong += atlas.MapAndDissociate(mid) != mine;
  }
  if (wrong != 0) state.SkipWithError("a MID mapped to another thread's context");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---------------------------------------------------------------------------------------
// memory: bytes held fresh, at 50 and 60,000 in use, and after 60,000 were taken and all
// released again. Measured once; the time reported is meaningless.

enum class MemoryPhase { kFresh, kInUse50, kInUse60000, kDrained };

template <typename Impl>
void MemoryWorkload(benchmark::State& state, MemoryPhase phase) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    Impl atlas;
    std::vector<Mid> mids;
    const std::size_t fill = phase == MemoryPhase::kFresh     ? 0
                             : phase == MemoryPhase::kInUse50 ? 50
                                                              : 60000;
    if (!atlas.ok() || !Fill(atlas, fill, &mids)) {
      state.SkipWithError("could not reach the requested occupancy");
      return;
    }
    if (phase == MemoryPhase::kDrained) {
      for (Mid mid : mids) {
        if (atlas.MapAndDissociate(mid) == nullptr) {
          state.SkipWithError("dissociate failed while draining");
          return;
        }
      }
    }
    bytes = atlas.bytes();
  }
  state.counters["bytes"] = benchmark::Counter(static_cast<double>(bytes),
                                               benchmark::Counter::kDefaults,
                                               benchmark::Counter::kIs1024);
}

// ---------------------------------------------------------------------------------------

template <typename Impl>
std::string NameFor(const char* workload, const std::string& suffix = "") {
  std::string name = std::string("BM_") + workload + "/" + Impl::kName;
  if (!suffix.empty()) name += "/" + suffix;
  return name;
}

template <typename... Impls>
void RegisterAll() {
  for (const std::size_t in_use : {std::size_t{50}, std::size_t{2000}, std::size_t{60000}}) {
    (benchmark::RegisterBenchmark(
         NameFor<Impls>("Map", "in_use:" + std::to_string(in_use)).c_str(),
         [in_use](benchmark::State& state) { MapWorkload<Impls>(state, in_use); }),
     ...);
  }
  (benchmark::RegisterBenchmark(
       NameFor<Impls>("Pair", "in_flight:" + std::to_string(kPairInFlight)).c_str(),
       PairWorkload<Impls>),
   ...);
  (benchmark::RegisterBenchmark(NameFor<Impls>("Rpc").c_str(), RpcWorkload<Impls>)
       ->Setup(RpcSetup<Impls>)
       ->Teardown(RpcTeardown<Impls>)
       ->Threads(1)
       ->Threads(2)
       ->Threads(4)
       ->Threads(8)
       ->UseRealTime(),
   ...);
  const std::pair<MemoryPhase, const char*> phases[] = {
      {MemoryPhase::kFresh, "fresh"},
      {MemoryPhase::kInUse50, "in_use:50"},
      {MemoryPhase::kInUse60000, "in_use:60000"},
      {MemoryPhase::kDrained, "drained"},
  };
  for (const std::pair<MemoryPhase, const char*>& entry : phases) {
    const MemoryPhase phase = entry.first;
    (
        [&] {
          if constexpr (Impls::kReportsBytes) {
            benchmark::RegisterBenchmark(
                NameFor<Impls>("Memory", entry.second).c_str(),
                [phase](benchmark::State& state) { MemoryWorkload<Impls>(state, phase); })
                ->Iterations(1);
          }
        }(),
        ...);
  }
}

}  // namespace

int main(int argc, char** argv) {
  RegisterAll<MidatlasCpp, MidatlasC, FlatAtomic, ClassicMutex>();
  benchmark::AddCustomContext("atlas", "max_mids=65535 initial_mids=50");
  benchmark::AddCustomContext("probe_seed", std::to_string(kProbeSeed));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
