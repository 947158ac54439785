// midatlas against the tables a user would otherwise pick, in one binary and one run:
//
//   midatlas       the C++ API (midatlas::MidAtlas; results come back as absl::StatusOr)
//   midatlas-c     the RDBSS C API over the same core (RxMapMidToContext, ...)
//   flat-atomic    a flat 65,536-slot array with a lock-free free stack: no growth, no
//                  reclamation, fixed memory (reference/flat_atomic_atlas.h)
//   classic+mutex  the original RDBSS MID_ATLAS design behind one std::mutex, as its callers
//                  used it (reference/classic_mid_atlas.h)
//   absl-map       absl::flat_hash_map + absl::Mutex (shared for lookups) + a free-MID list
//   tbb-map        tbb::concurrent_hash_map + a tbb::concurrent_queue of free MIDs
//   urcu-lfht      liburcu's RCU lock-free hash table + a locked free-MID list
//
// Workloads (bench/README.md has the exact definition of each name and item):
//   BM_Map         lookup: threads map random in-use MIDs (50, 2,000, 60,000 in use)
//   BM_Pair        churn: dissociate the oldest + associate, 50 in flight over all threads
//   BM_Rpc         rpc: associate, map 3 times, dissociate, on every thread
//   BM_ReadMostly  read-mostly: one writer churns 50 MIDs while the benchmark threads map
//   BM_Growth      growth: from start 1 to 65,535 in use and back
//   BM_Memory      heap bytes held at each occupancy
//   BM_LateDuplicate  map-and-dissociate of MIDs not in use (late duplicate responses), with
//                  the heap allocations it made counted (0 expected)
//   BM_MapChain    dependent lookups: each Map's context names the next MID (latency, 1 thread)
//   BM_Refusal     associate until refused: an atlas of max 50 is filled until an associate
//                  is refused (the refusal path with its "all in use" confirmation), then
//                  drained; one item is one associate, refused or not
//   BM_MidsInUse   the in-use count (mids_in_use / RxGetNumberOfMidsInUse) against occupancy
//                  and initial_mids (midatlas only: the count is its own API)
//   BM_WaitAsync, BM_WaitBlocking   waiting for a free MID in a saturated atlas of 64, against
//                  mutex-protected tables with a FIFO of waiters or a condition variable
//                  (wait_bench.cc, peers/wait_peers.h)
//
// Every atlas is created with max 65,535 MIDs and start 50 (the RDBSS defaults for a LAN
// Manager server) unless the workload says otherwise, and reaches its occupancy by
// associating. Peers whose package is missing are compiled out and reported as skipped.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "heap_count.h"
#include "peers/absl_peer.h"
#include "peers/atlas_peers.h"
#include "peers/peer.h"
#if MIDATLAS_BENCH_HAVE_TBB
#include "peers/tbb_peer.h"
#endif
#if MIDATLAS_BENCH_HAVE_URCU
#include "peers/urcu_peer.h"
#endif
#include "wait_bench.h"

namespace midatlas::bench {
namespace {

constexpr std::uint32_t kStartMids = 50;
// Probe MIDs are drawn ahead of time and indexed with a counter, so the timed loop pays for
// neither the RNG nor a modulo. A power of two, and large enough to defeat branch history.
constexpr std::uint32_t kProbes = 4096;
static_assert((kProbes & (kProbes - 1)) == 0, "probe index is masked, not reduced");
// Threads start this far apart in the probe sequence, so they do not map in lockstep.
constexpr std::uint32_t kProbeStride = 1031;
constexpr std::uint32_t kProbeSeed = 0x5EED;
constexpr std::size_t kInFlight = 50;
constexpr std::int64_t kReadMostlyInUse = 2000;
constexpr std::int64_t kMemoryPeak = 60000;
// More threads than the machine has cores is deliberate: lock holders get preempted there.
constexpr std::array<int, 5> kThreads = {1, 2, 4, 8, 16};

// Distinct contexts, 8-byte aligned because the classic atlas tags the two low bits.
std::array<std::uint64_t, 65536> g_objects;
void* ContextFor(std::size_t i) { return &g_objects[i & 0xFFFF]; }

// Associates `count` contexts, starting at context `first`; false if any association failed.
template <typename Impl>
bool Fill(Impl& atlas, std::size_t count, std::vector<Mid>* mids, std::size_t first = 0) {
  mids->reserve(mids->size() + count);
  for (std::size_t i = 0; i < count; ++i) {
    Mid mid = 0;
    if (!atlas.Associate(ContextFor(first + i), &mid)) return false;
    mids->push_back(mid);
  }
  return true;
}

// Every thread must pass the loop's start and stop barriers, so a thread that cannot run
// still enters the (then empty) loop.
void SkipRun(benchmark::State& state, const char* why) {
  state.SkipWithError(why);
  for (auto _ : state) {
  }
}

// ---------------------------------------------------------------------------------------
// What the threads of one run share. The Setup hook builds it on the main thread before the
// run's threads start (so it happens-before all of them) and Teardown discards it after they
// have joined.

template <typename Impl>
struct Shared {
  static inline Impl* atlas = nullptr;
  static inline bool ready = false;
  static inline std::array<Mid, kProbes> probes{};
  // read-mostly: the writer thread and what it did.
  static inline std::thread writer;
  static inline std::atomic<bool> stop{false};
  static inline std::atomic<std::uint64_t> writer_ops{0};
  static inline std::atomic<bool> writer_failed{false};
};

template <typename Impl>
void CreateShared(std::uint32_t start) {
  Shared<Impl>::atlas = new Impl(start);
  Shared<Impl>::ready = Shared<Impl>::atlas->ok();
}

// Fills the atlas to `in_use` and draws the probes from the MIDs in use.
template <typename Impl>
void FillShared(std::size_t in_use) {
  std::vector<Mid> mids;
  if (!Shared<Impl>::ready || !Fill(*Shared<Impl>::atlas, in_use, &mids)) {
    Shared<Impl>::ready = false;
    return;
  }
  // Lookups measure a table at rest: a peer that resizes in the background finishes first.
  Shared<Impl>::atlas->Settle();
  std::mt19937 rng(kProbeSeed);
  std::uniform_int_distribution<std::size_t> pick(0, mids.size() - 1);
  for (Mid& probe : Shared<Impl>::probes) {
    probe = mids[pick(rng)];
    if (Shared<Impl>::atlas->Map(probe) == nullptr) Shared<Impl>::ready = false;
  }
}

template <typename Impl>
void StartSetup(const benchmark::State&) {
  CreateShared<Impl>(kStartMids);
}

template <typename Impl>
void LookupSetup(const benchmark::State& state) {
  CreateShared<Impl>(kStartMids);
  FillShared<Impl>(static_cast<std::size_t>(state.range(0)));
}

template <typename Impl>
void GrowthSetup(const benchmark::State& state) {
  CreateShared<Impl>(static_cast<std::uint32_t>(state.range(0)));
}

// read-mostly's writer: the send path of one connection, a steady window of 50 requests,
// oldest completed first.
template <typename Impl>
void WriterLoop() {
  [[maybe_unused]] typename Impl::ThreadScope rcu_reader;
  Impl& atlas = *Shared<Impl>::atlas;
  std::vector<Mid> ring;
  if (!Fill(atlas, kInFlight, &ring, 0x8000)) {
    Shared<Impl>::writer_failed.store(true, std::memory_order_relaxed);
    return;
  }
  std::uint64_t ops = 0;
  std::size_t oldest = 0;
  // Relaxed: the flags and the count carry no data; join() orders everything else.
  while (!Shared<Impl>::stop.load(std::memory_order_relaxed)) {
    void* context = atlas.MapAndDissociate(ring[oldest]);
    if (!atlas.Associate(context, &ring[oldest])) [[unlikely]] {
      Shared<Impl>::writer_failed.store(true, std::memory_order_relaxed);
      return;
    }
    if (++oldest == kInFlight) oldest = 0;
    Shared<Impl>::writer_ops.store(++ops, std::memory_order_relaxed);
  }
}

template <typename Impl>
void ReadMostlySetup(const benchmark::State& state) {
  LookupSetup<Impl>(state);
  Shared<Impl>::stop.store(false, std::memory_order_relaxed);
  Shared<Impl>::writer_ops.store(0, std::memory_order_relaxed);
  Shared<Impl>::writer_failed.store(false, std::memory_order_relaxed);
  if (Shared<Impl>::ready) Shared<Impl>::writer = std::thread(WriterLoop<Impl>);
}

template <typename Impl>
void TeardownShared(const benchmark::State&) {
  if (Shared<Impl>::writer.joinable()) {
    Shared<Impl>::stop.store(true, std::memory_order_relaxed);
    Shared<Impl>::writer.join();
  }
  delete Shared<Impl>::atlas;
  Shared<Impl>::atlas = nullptr;
  Shared<Impl>::ready = false;
}

// ---------------------------------------------------------------------------------------
// lookup (BM_Map), and the readers of read-mostly (BM_ReadMostly): map random in-use MIDs.

template <typename Impl>
void LookupWorkload(benchmark::State& state) {
  [[maybe_unused]] typename Impl::ThreadScope rcu_reader;
  if (!Shared<Impl>::ready) return SkipRun(state, "could not reach the requested occupancy");
  const Impl& atlas = *Shared<Impl>::atlas;
  const std::array<Mid, kProbes>& probes = Shared<Impl>::probes;
  std::uint32_t next = static_cast<std::uint32_t>(state.thread_index()) * kProbeStride;
  const std::uint64_t writes_before = Shared<Impl>::writer_ops.load(std::memory_order_relaxed);
  for (auto _ : state) {
    benchmark::DoNotOptimize(atlas.Map(probes[next++ & (kProbes - 1)]));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  if (Shared<Impl>::writer.joinable() && state.thread_index() == 0) {
    if (Shared<Impl>::writer_failed.load(std::memory_order_relaxed)) {
      state.SkipWithError("the writer's associate failed");
    }
    const std::uint64_t writes =
        Shared<Impl>::writer_ops.load(std::memory_order_relaxed) - writes_before;
    state.counters["writer_ops"] =
        benchmark::Counter(static_cast<double>(writes), benchmark::Counter::kIsRate);
  }
}

// ---------------------------------------------------------------------------------------
// late duplicate (BM_LateDuplicate): responses that arrive after their request completed.
// Every probe is a MID that is not in use: MIDs 50 in use at the bottom of the atlas, the
// probes drawn from the same range after those 50 were freed again, so each call takes the
// not-in-use path. Counts the heap allocations the calls made (the C++ API builds a status).

template <typename Impl>
void LateDuplicateSetup(const benchmark::State&) {
  CreateShared<Impl>(kStartMids);
  std::vector<Mid> mids;
  if (!Shared<Impl>::ready || !Fill(*Shared<Impl>::atlas, kInFlight, &mids)) {
    Shared<Impl>::ready = false;
    return;
  }
  for (std::size_t i = 0; i < kProbes; ++i) Shared<Impl>::probes[i] = mids[i % mids.size()];
  for (Mid mid : mids) {
    if (Shared<Impl>::atlas->MapAndDissociate(mid) == nullptr) Shared<Impl>::ready = false;
  }
}

template <typename Impl>
void LateDuplicateWorkload(benchmark::State& state) {
  [[maybe_unused]] typename Impl::ThreadScope rcu_reader;
  if (!Shared<Impl>::ready) return SkipRun(state, "could not set up the freed MIDs");
  Impl& atlas = *Shared<Impl>::atlas;
  const std::array<Mid, kProbes>& probes = Shared<Impl>::probes;
  std::uint32_t next = 0;
  StartHeapCount();
  for (auto _ : state) {
    benchmark::DoNotOptimize(atlas.MapAndDissociate(probes[next++ & (kProbes - 1)]));
  }
  StopHeapCount();
  state.counters["allocs_per_call"] = benchmark::Counter(
      static_cast<double>(CountedAllocations()) / static_cast<double>(state.iterations()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---------------------------------------------------------------------------------------
// dependent lookups (BM_MapChain): the latency of one Map, as a receive path that must look a
// request up before it knows the next one sees it. The contexts form one random cycle through
// the MIDs in use: each context's object holds the next MID, so each Map waits for the last.

template <typename Impl>
void MapChainSetup(const benchmark::State& state) {
  CreateShared<Impl>(kStartMids);
  const auto in_use = static_cast<std::size_t>(state.range(0));
  std::vector<Mid> mids;
  if (!Shared<Impl>::ready || !Fill(*Shared<Impl>::atlas, in_use, &mids)) {
    Shared<Impl>::ready = false;
    return;
  }
  Shared<Impl>::atlas->Settle();
  std::vector<std::size_t> order(in_use);
  for (std::size_t i = 0; i < in_use; ++i) order[i] = i;
  std::mt19937 rng(kProbeSeed);
  std::shuffle(order.begin(), order.end(), rng);
  // Context i (object i, see Fill) holds the MID of the next context in the cycle.
  for (std::size_t j = 0; j < in_use; ++j) {
    g_objects[order[j] & 0xFFFF] = mids[order[(j + 1) % in_use]];
  }
  Shared<Impl>::probes[0] = mids[order[0]];
}

template <typename Impl>
void MapChainWorkload(benchmark::State& state) {
  [[maybe_unused]] typename Impl::ThreadScope rcu_reader;
  if (!Shared<Impl>::ready) return SkipRun(state, "could not reach the requested occupancy");
  const Impl& atlas = *Shared<Impl>::atlas;
  Mid mid = Shared<Impl>::probes[0];
  for (auto _ : state) {
    const auto* object = static_cast<const std::uint64_t*>(atlas.Map(mid));
    if (object == nullptr) [[unlikely]] {
      state.SkipWithError("a MID of the chain was not in use");
      break;
    }
    mid = static_cast<Mid>(*object);
  }
  benchmark::DoNotOptimize(mid);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---------------------------------------------------------------------------------------
// associate until refused (BM_Refusal): a connection that sends until its atlas of 50 MIDs
// is full, is told so, and then completes everything. Every iteration fills the atlas until
// an associate is refused and drains it again; the refused call is the one the workload is
// about (midatlas confirms "all in use" with a double collect over its leaves).

constexpr std::uint32_t kRefusalMax = 50;

template <typename Impl>
void RefusalSetup(const benchmark::State& state) {
  Shared<Impl>::atlas = new Impl(static_cast<std::uint32_t>(state.range(0)), kRefusalMax);
  Shared<Impl>::ready = Shared<Impl>::atlas->ok();
}

template <typename Impl>
void RefusalWorkload(benchmark::State& state) {
  if (!Shared<Impl>::ready) return SkipRun(state, "could not create the atlas");
  Impl& atlas = *Shared<Impl>::atlas;
  std::array<Mid, kRefusalMax> held{};
  std::int64_t calls = 0;
  for (auto _ : state) {
    std::uint32_t count = 0;
    Mid mid = 0;
    while (count < kRefusalMax && atlas.Associate(ContextFor(count), &mid)) held[count++] = mid;
    // The refused call: all kRefusalMax are held now.
    if (count != kRefusalMax || atlas.Associate(ContextFor(count), &mid)) [[unlikely]] {
      state.SkipWithError("refused before max, or not refused at max");
      break;
    }
    calls += count + 1;
    for (std::uint32_t i = 0; i < count; ++i) benchmark::DoNotOptimize(atlas.MapAndDissociate(held[i]));
  }
  state.SetItemsProcessed(calls);
}

// ---------------------------------------------------------------------------------------
// in-use count (BM_MidsInUse): what a caller pays that checks the count per request (flow
// control, SMB credits), at several occupancies and first-map sizes.

template <typename Impl>
void MidsInUseSetup(const benchmark::State& state) {
  CreateShared<Impl>(static_cast<std::uint32_t>(state.range(1)));
  std::vector<Mid> mids;
  if (!Shared<Impl>::ready ||
      !Fill(*Shared<Impl>::atlas, static_cast<std::size_t>(state.range(0)), &mids)) {
    Shared<Impl>::ready = false;
  }
}

template <typename Impl>
void MidsInUseWorkload(benchmark::State& state) {
  if (!Shared<Impl>::ready) return SkipRun(state, "could not reach the requested occupancy");
  const Impl& atlas = *Shared<Impl>::atlas;
  const auto expected = static_cast<std::uint32_t>(state.range(0));
  std::uint32_t count = 0;
  for (auto _ : state) {
    count = atlas.MidsInUse();
    benchmark::DoNotOptimize(count);
  }
  if (count != expected) state.SkipWithError("mids_in_use disagrees with the occupancy");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---------------------------------------------------------------------------------------
// churn (BM_Pair): the request lifecycle with a steady window of 50 in flight, split over
// the threads. Each thread dissociates its oldest MID and associates a new one in its place.

template <typename Impl>
void ChurnWorkload(benchmark::State& state) {
  [[maybe_unused]] typename Impl::ThreadScope rcu_reader;
  const auto threads = static_cast<std::size_t>(state.threads());
  const auto me = static_cast<std::size_t>(state.thread_index());
  const std::size_t window = kInFlight / threads + (me < kInFlight % threads ? 1 : 0);
  std::vector<Mid> ring;
  if (!Shared<Impl>::ready || !Fill(*Shared<Impl>::atlas, window, &ring, me * kInFlight)) {
    return SkipRun(state, "could not fill the window");
  }
  Impl& atlas = *Shared<Impl>::atlas;
  std::size_t oldest = 0;
  for (auto _ : state) {
    void* context = atlas.MapAndDissociate(ring[oldest]);
    // A null context (the dissociate failed) makes the associate fail too.
    if (!atlas.Associate(context, &ring[oldest])) [[unlikely]] {
      state.SkipWithError("dissociate or associate failed");
      break;
    }
    if (++oldest == window) oldest = 0;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// ---------------------------------------------------------------------------------------
// rpc (BM_Rpc): each thread runs whole requests: associate, three maps (one per response
// packet), dissociate.

template <typename Impl>
void RpcWorkload(benchmark::State& state) {
  [[maybe_unused]] typename Impl::ThreadScope rcu_reader;
  if (!Shared<Impl>::ready) return SkipRun(state, "could not create the atlas");
  Impl& atlas = *Shared<Impl>::atlas;
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
// growth (BM_Growth): an atlas created with start 1 goes to all 65,535 MIDs in use and back
// to none, in every iteration. The threads split the MIDs; one item is one associate or one
// dissociate, so the rate prices growing and shrinking together.

template <typename Impl>
void GrowthWorkload(benchmark::State& state) {
  [[maybe_unused]] typename Impl::ThreadScope rcu_reader;
  if (!Shared<Impl>::ready) return SkipRun(state, "could not create the atlas");
  Impl& atlas = *Shared<Impl>::atlas;
  const auto threads = static_cast<std::size_t>(state.threads());
  const auto me = static_cast<std::size_t>(state.thread_index());
  const std::size_t share = kMaxMids / threads + (me < kMaxMids % threads ? 1 : 0);
  std::vector<Mid> mine;
  mine.reserve(share);
  bool failed = false;
  for (auto _ : state) {
    for (std::size_t i = 0; i < share && !failed; ++i) {
      Mid mid = 0;
      failed = !atlas.Associate(ContextFor(me * share + i), &mid);
      mine.push_back(mid);
    }
    for (Mid mid : mine) failed |= atlas.MapAndDissociate(mid) == nullptr;
    mine.clear();
    if (failed) [[unlikely]] {
      state.SkipWithError("associate or dissociate failed below the maximum");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * 2 * static_cast<std::int64_t>(share));
}

// ---------------------------------------------------------------------------------------
// memory (BM_Memory): heap bytes an atlas holds fresh, at 50 and 60,000 in use, and after
// 60,000 were taken and all released again. Measured once; the time reported is meaningless.
//
// Bytes are what malloc handed out and did not get back while the atlas was created, filled
// and drained (heap_count.h), the atlas object included. Peers that free after a grace period
// are settled first. TBB's scalable allocator bypasses malloc, so for tbb-map the bytes its
// allocators handed out are added (tbb_peer.h).

enum class MemoryPhase { kFresh, kInUse50, kInUse60000, kDrained };

std::int64_t AllocatorBytesOutsideMalloc() {
#if MIDATLAS_BENCH_HAVE_TBB
  if (TbbUsesScalableAllocator()) return tbb_thread_bytes;
#endif
  return 0;
}

struct MemoryReading {
  std::int64_t bytes = 0;
  std::int64_t attached = -1;  // midatlas's own statistics; -1 for the other peers
  const char* error = nullptr;
};

template <typename Impl>
MemoryReading MeasureMemory(MemoryPhase phase) {
  MemoryReading reading;
  std::vector<Mid> mids;
  mids.reserve(static_cast<std::size_t>(kMemoryPeak));  // outside the measurement
  const std::size_t fill = phase == MemoryPhase::kFresh     ? 0
                           : phase == MemoryPhase::kInUse50 ? 50
                                                            : kMemoryPeak;
  const std::int64_t outside_before = AllocatorBytesOutsideMalloc();
  StartHeapCount();
  auto atlas = std::make_unique<Impl>(kStartMids);
  if (!atlas->ok() || !Fill(*atlas, fill, &mids)) {
    reading.error = "could not reach the requested occupancy";
  } else if (phase == MemoryPhase::kDrained) {
    for (Mid mid : mids) {
      if (atlas->MapAndDissociate(mid) == nullptr) reading.error = "dissociate failed";
    }
  }
  atlas->Settle();
  reading.bytes = StopHeapCount() + AllocatorBytesOutsideMalloc() - outside_before;
  // midatlas keeps its contexts in reserved address space (mmap), which the heap count does
  // not see: its own count of the context pages its attached maps cover is added.
  if constexpr (requires { atlas->context_bytes_outside_heap(); }) {
    reading.bytes += static_cast<std::int64_t>(atlas->context_bytes_outside_heap());
  }
  if constexpr (requires { atlas->attached_bytes(); }) {
    reading.attached = static_cast<std::int64_t>(atlas->attached_bytes());
  }
  return reading;
}

template <typename Impl>
void MemoryWorkload(benchmark::State& state, MemoryPhase phase) {
  [[maybe_unused]] typename Impl::ThreadScope rcu_reader;
  if constexpr (std::is_same_v<Impl, MidatlasC>) {
    // The same core as midatlas, whose row counts it; the C API has no statistics call to
    // count the mmap'd context pages that the heap count cannot see.
    return SkipRun(state, "same core as midatlas (see its row)");
  }
  MemoryReading reading;
  for (auto _ : state) {
    // Twice, keeping the second: the first pays for one-time allocations of the process
    // (thread-local records, lazily built tables) that are no part of the atlas.
    reading = MeasureMemory<Impl>(phase);
    if (reading.error == nullptr) reading = MeasureMemory<Impl>(phase);
  }
  if (reading.error != nullptr) return state.SkipWithError(reading.error);
  state.counters["bytes"] = benchmark::Counter(static_cast<double>(reading.bytes),
                                               benchmark::Counter::kDefaults,
                                               benchmark::Counter::kIs1024);
  if (reading.attached >= 0) {
    state.counters["bytes_attached"] =
        benchmark::Counter(static_cast<double>(reading.attached), benchmark::Counter::kDefaults,
                           benchmark::Counter::kIs1024);
  }
}

// ---------------------------------------------------------------------------------------

template <typename Impl>
std::string NameFor(const char* workload) {
  return std::string("BM_") + workload + "/" + Impl::kName;
}

template <typename Impl>
benchmark::internal::Benchmark* WithThreads(benchmark::internal::Benchmark* bench) {
  for (int threads : kThreads) bench->Threads(threads);
  return bench->UseRealTime()->Teardown(TeardownShared<Impl>);
}

template <typename... Impls>
void RegisterAll() {
  for (const std::int64_t in_use : {std::int64_t{50}, std::int64_t{2000}, kMemoryPeak}) {
    (WithThreads<Impls>(benchmark::RegisterBenchmark(NameFor<Impls>("Map").c_str(),
                                                     LookupWorkload<Impls>)
                            ->ArgName("in_use")
                            ->Arg(in_use)
                            ->Setup(LookupSetup<Impls>)),
     ...);
  }
  (WithThreads<Impls>(
       benchmark::RegisterBenchmark(NameFor<Impls>("Pair").c_str(), ChurnWorkload<Impls>)
           ->ArgName("in_flight")
           ->Arg(static_cast<std::int64_t>(kInFlight))
           ->Setup(StartSetup<Impls>)),
   ...);
  (WithThreads<Impls>(
       benchmark::RegisterBenchmark(NameFor<Impls>("Rpc").c_str(), RpcWorkload<Impls>)
           ->Setup(StartSetup<Impls>)),
   ...);
  // threads:R counts the readers; the writer is one more thread, so R + 1 = 2, 4, 8, 16.
  (benchmark::RegisterBenchmark(NameFor<Impls>("ReadMostly").c_str(), LookupWorkload<Impls>)
       ->ArgName("in_use")
       ->Arg(kReadMostlyInUse)
       ->Setup(ReadMostlySetup<Impls>)
       ->Teardown(TeardownShared<Impls>)
       ->Threads(1)
       ->Threads(3)
       ->Threads(7)
       ->Threads(15)
       ->UseRealTime(),
   ...);
  (benchmark::RegisterBenchmark(NameFor<Impls>("LateDuplicate").c_str(),
                                LateDuplicateWorkload<Impls>)
       ->Setup(LateDuplicateSetup<Impls>)
       ->Teardown(TeardownShared<Impls>)
       ->UseRealTime(),
   ...);
  (WithThreads<Impls>(
       benchmark::RegisterBenchmark(NameFor<Impls>("Growth").c_str(), GrowthWorkload<Impls>)
           ->ArgName("start")
           ->Arg(1)
           ->Setup(GrowthSetup<Impls>)),
   ...);
  const std::pair<MemoryPhase, const char*> phases[] = {
      {MemoryPhase::kFresh, "fresh"},
      {MemoryPhase::kInUse50, "in_use:50"},
      {MemoryPhase::kInUse60000, "in_use:60000"},
      {MemoryPhase::kDrained, "drained"},
  };
  for (const std::pair<MemoryPhase, const char*>& entry : phases) {
    const MemoryPhase phase = entry.first;
    (benchmark::RegisterBenchmark(
         (NameFor<Impls>("Memory") + "/" + entry.second).c_str(),
         [phase](benchmark::State& state) { MemoryWorkload<Impls>(state, phase); })
         ->Iterations(1),
     ...);
  }
}

// Growth from larger first maps, to compare with start 1 (midatlas only: the peers have no
// first-map size), and dependent lookups for every peer.
template <typename Impl>
void RegisterGrowthStarts() {
  benchmark::RegisterBenchmark(NameFor<Impl>("Growth").c_str(), GrowthWorkload<Impl>)
      ->ArgName("start")
      ->Arg(50)
      ->Arg(static_cast<std::int64_t>(kMaxMids))
      ->Setup(GrowthSetup<Impl>)
      ->Teardown(TeardownShared<Impl>)
      ->UseRealTime()
      ->Threads(1);
}

template <typename... Impls>
void RegisterMapChains() {
  (benchmark::RegisterBenchmark(NameFor<Impls>("MapChain").c_str(), MapChainWorkload<Impls>)
       ->ArgName("in_use")
       ->Arg(50)
       ->Arg(2000)
       ->Arg(kMemoryPeak)
       ->Setup(MapChainSetup<Impls>)
       ->Teardown(TeardownShared<Impls>)
       ->UseRealTime()
       ->Threads(1),
   ...);
}

template <typename... Impls>
void RegisterRefusals() {
  (benchmark::RegisterBenchmark(NameFor<Impls>("Refusal").c_str(), RefusalWorkload<Impls>)
       ->Setup(RefusalSetup<Impls>)
       ->Teardown(TeardownShared<Impls>)
       ->ArgName("start")
       ->Arg(1)
       ->Arg(50)
       ->UseRealTime()
       ->Threads(1),
   ...);
}

template <typename Impl>
void RegisterMidsInUse() {
  benchmark::RegisterBenchmark(NameFor<Impl>("MidsInUse").c_str(), MidsInUseWorkload<Impl>)
      ->ArgNames({"in_use", "start"})
      ->ArgsProduct({{10, 2000, 65535}, {1, 50}})
      ->Setup(MidsInUseSetup<Impl>)
      ->Teardown(TeardownShared<Impl>)
      ->UseRealTime();
}

// The extensions' options against the default (midatlas-c, registered above): Map with
// generation bits (the bound: at most 1.2x the default), and the associate and
// dissociate cost of each reuse policy, one and two threads.
template <typename... Impls>
void RegisterExtensions() {
  for (const std::int64_t in_use : {std::int64_t{50}, std::int64_t{2000}}) {
    (benchmark::RegisterBenchmark(NameFor<Impls>("Map").c_str(), LookupWorkload<Impls>)
         ->ArgName("in_use")
         ->Arg(in_use)
         ->Setup(LookupSetup<Impls>)
         ->Teardown(TeardownShared<Impls>)
         ->UseRealTime()
         ->Threads(1)
         ->Threads(2),
     ...);
  }
  (benchmark::RegisterBenchmark(NameFor<Impls>("Pair").c_str(), ChurnWorkload<Impls>)
       ->ArgName("in_flight")
       ->Arg(static_cast<std::int64_t>(kInFlight))
       ->Setup(StartSetup<Impls>)
       ->Teardown(TeardownShared<Impls>)
       ->UseRealTime()
       ->Threads(1)
       ->Threads(2),
   ...);
  (benchmark::RegisterBenchmark(NameFor<Impls>("Rpc").c_str(), RpcWorkload<Impls>)
       ->Setup(StartSetup<Impls>)
       ->Teardown(TeardownShared<Impls>)
       ->UseRealTime()
       ->Threads(1)
       ->Threads(2),
   ...);
}

template <typename... Impls>
void RegisterPeers() {
  RegisterAll<MidatlasCpp, MidatlasC, Impls..., AbslMap, ClassicMutex, FlatAtomic>();
  RegisterMapChains<MidatlasCpp, MidatlasC, Impls..., AbslMap, ClassicMutex, FlatAtomic>();
  RegisterRefusals<MidatlasCpp, MidatlasC, FlatAtomic>();
  RegisterGrowthStarts<MidatlasCpp>();
  RegisterGrowthStarts<MidatlasC>();
  RegisterMidsInUse<MidatlasCpp>();
  RegisterMidsInUse<MidatlasC>();
  RegisterExtensions<MidatlasCGen4, MidatlasCCyclic, MidatlasCRandom>();
}

}  // namespace
}  // namespace midatlas::bench

int main(int argc, char** argv) {
  using namespace midatlas::bench;  // NOLINT(google-build-using-namespace): main only
  DisableAbslDeadlockDetection();
  benchmark::AddCustomContext("atlas", "max_mids=65535 initial_mids=50");
  benchmark::AddCustomContext("probe_seed", std::to_string(kProbeSeed));
  benchmark::AddCustomContext("absl_mutex_deadlock_detection", "off (kIgnore)");
  std::string skipped;
#if MIDATLAS_BENCH_HAVE_TBB
  benchmark::AddCustomContext("tbb_allocator",
                              TbbUsesScalableAllocator() ? "tbbmalloc" : "malloc");
#else
  skipped += "tbb-map (package libtbb-dev not installed) ";
#endif
#if MIDATLAS_BENCH_HAVE_URCU
  // Thread 0 of every run is the main thread; Setup and Teardown run on it too.
  UrcuMap::ThreadScope main_thread_rcu_reader;
  {
    // liburcu starts its call_rcu thread on first use; start it here, so that no memory row
    // pays for it.
    UrcuMap warm_up(kStartMids);
    Mid mid = 0;
    if (warm_up.Associate(ContextFor(0), &mid)) warm_up.MapAndDissociate(mid);
    warm_up.Settle();
  }
  benchmark::AddCustomContext("urcu_flavor", UrcuMap::UsesSysMembarrier()
                                                 ? "memb (sys_membarrier: fence-free readers)"
                                                 : "memb (no sys_membarrier: fenced readers)");
#else
  skipped += "urcu-lfht (package liburcu-dev not installed) ";
#endif
  if (!skipped.empty()) {
    std::fprintf(stderr, "skipped: %s\n", skipped.c_str());
    benchmark::AddCustomContext("skipped", skipped);
  }

#if MIDATLAS_BENCH_HAVE_TBB && MIDATLAS_BENCH_HAVE_URCU
  RegisterPeers<TbbMap, UrcuMap>();
#elif MIDATLAS_BENCH_HAVE_TBB
  RegisterPeers<TbbMap>();
#elif MIDATLAS_BENCH_HAVE_URCU
  RegisterPeers<UrcuMap>();
#else
  RegisterPeers<>();
#endif
  RegisterWaitBenchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
