// Waiting for a free MID (docs/DESIGN.md 10.8) in a saturated atlas: max 64 MIDs, 256
// requesters, midatlas's FIFO hand-off against the mutex-protected tables users write today
// (peers/wait_peers.h), side by side in one run.
//
//   BM_WaitAsync/<peer>/drivers:K/round:R
//       K driver threads run 256 requests. A request asks for a MID without blocking; when
//       none is free it is queued, and its routine runs on the thread that later frees a MID,
//       with that MID already associated, and "sends" the request: it joins that thread's
//       requests in flight. A driver takes its oldest request in flight, maps its MID (the
//       response arrives), dissociates it (which hands the MID to the oldest queued request)
//       and asks again for the request it just completed. The first 64 requests get their
//       MIDs at set-up and are spread evenly over the drivers; as every hand-off lands on the
//       freeing driver, each driver keeps 64 / K in flight and 192 stay queued throughout.
//       200,000 requests complete per run. Driver d runs on CPU d (modulo the CPUs allowed),
//       so every run places the drivers alike. Besides the tables, the row ring-ceiling: the
//       bare lock-free FIFO ring of peers/wait_peers.h, no table a user could ship, whose
//       rate is the most any FIFO hand-off reaches in this workload on the machine it runs on.
//   BM_WaitBlocking/<peer>/requesters:N/round:R
//       N threads (256) each loop: associate, waiting as long as it takes; map the MID and
//       about 0.1 us of work; dissociate. The run starts saturated: at set-up 64 threads take
//       every MID and hold it until the clock starts, and the other 192 queue behind them.
//       With a FIFO hand-off it stays so: a thread that frees its MID wakes the oldest
//       sleeper with it and queues again, so 192 threads sleep and the 64 holders wait for a
//       core (2 cores). Every free then wakes a sleeping thread. 50,176 requests per run (196
//       per thread; the requests queued at set-up count their wait from the clock's start).
//
// Every row runs in 5 rounds (R), the implementations in turn within a round; the report
// takes the median over the rounds. Measured per run (counters; times in microseconds):
//   items_per_second   completed requests per second (the run's wall time, set-up excluded)
//   wait_p50/p99_us    wait: the acquire call starts (or the clock, for requests queued at
//                      set-up) -> the request holds its MID and runs
//   handoff_p50/p99_us hand-off: the freer's call starts -> the waiter runs with the MID
//                      (async: the routine on the freeing thread; blocking: the woken thread,
//                      which first waits for a core)
//   overtakes          requests that got a MID while a request certainly queued before they
//                      asked had not even had its MID freed (0 for a FIFO)
//   overtake_candidates  requests whose queueing moment is known, so that they can be seen
//                      overtaken: every queued async request; the blocking ones queued at
//                      set-up, and those the observer (below) vouches for
//   waited_pct         requests that waited (rather than finding a MID free)
//
// Overtakes come from time stamps alone, with no help from the peers. An async call that
// returns "queued" is queued. A blocking call does not say when it queued (asking first does
// not mean queueing first: a thread may be preempted, or sleep on a lock, in between), so an
// observer thread samples the table's waiter count every 0.5 ms: when it reads 192 (all 256
// threads but 64), the 64 MIDs are all held - a FIFO table never keeps a MID free while
// someone waits - so the 192 threads that hold none are all queued, and every request that
// had asked before the reading and was handed its MID after it was certainly queued then.
// The 192 threads queued at set-up were all queued when the clock started. (The textbook
// mutex+cv may keep a MID free while threads wait, so for it only the set-up ones count.)
#include "wait_bench.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>

#include "benchmark/benchmark.h"
#include "peers/wait_peers.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define MIDATLAS_BENCH_HAVE_TSC 1
#endif

namespace midatlas::bench {
namespace {

constexpr std::uint32_t kWaitMids = 64;
constexpr std::uint32_t kAsyncRequestsInPlay = 256;
constexpr std::uint64_t kAsyncCompletions = 200000;
constexpr std::uint64_t kBlockingRequests = 50000;  // rounded up to a multiple of the threads
constexpr int kBriefWorkSteps = 64;                  // about 0.1 us
constexpr std::int64_t kBlockingRequesters = 256;
constexpr std::int64_t kRounds = 5;

// ---------------------------------------------------------------------------------------
// Time stamps: the TSC where there is one (a few ns, constant rate, one clock for every core
// on the machines this runs on), fenced so that a stamp is not taken early or late around
// the calls it brackets; steady_clock elsewhere. Ticks become nanoseconds by the run's own
// calibration against steady_clock.

std::uint64_t Ticks() noexcept {
#if MIDATLAS_BENCH_HAVE_TSC
  _mm_lfence();
  const std::uint64_t ticks = __rdtsc();
  _mm_lfence();
  return ticks;
#else
  return static_cast<std::uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
#endif
}

std::int64_t SteadyNs() noexcept {
  return std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1);
}

struct Calibration {
  std::uint64_t ticks = Ticks();
  std::int64_t ns = SteadyNs();
  [[nodiscard]] double NsPerTick(const Calibration& end) const {
    return end.ticks == ticks ? 1.0
                              : static_cast<double>(end.ns - ns) /
                                    static_cast<double>(end.ticks - ticks);
  }
};

// One request's life, in ticks.
struct Stamp {
  std::uint64_t asked = 0;    // its acquire call started
  std::uint64_t queued = 0;   // it was certainly queued by then (async: its call returned
                              // "queued"; blocking: see MarkQueued); 0: not known
  std::uint64_t freed = 0;    // waited: the call that freed its MID started (a lower bound of
                              // the hand-off); else = asked
  std::uint64_t running = 0;  // it held its MID and ran; 0: still waiting when the run ended
  bool waited = false;
};

constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();

struct WaitFigures {
  double wait_p50_us = 0;
  double wait_p99_us = 0;
  double handoff_p50_us = 0;
  double handoff_p99_us = 0;
  double waited_pct = 0;
  std::uint64_t overtakes = 0;
  std::uint64_t overtake_candidates = 0;  // requests whose queueing moment is known
};

double Percentile(std::vector<std::uint64_t>& values, double fraction) {
  if (values.empty()) return 0;
  const auto rank = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank),
                   values.end());
  return static_cast<double>(values[rank]);
}

// Requests B that ran while some A, certainly queued before B asked, had not even had its MID
// freed yet (or never got one). Sets *candidates to the number of requests A whose queueing
// moment is known.
std::uint64_t CountOvertakes(const std::vector<Stamp>& stamps, std::uint64_t* candidates) {
  struct Entry {
    std::uint64_t queued;
    std::uint64_t served_from;
  };
  std::vector<Entry> entries;
  entries.reserve(stamps.size());
  for (const Stamp& s : stamps) {
    if (s.queued == 0) continue;
    entries.push_back({s.queued, s.running == 0 ? kNever : s.freed});
  }
  *candidates = entries.size();
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.queued < b.queued; });
  std::vector<std::uint64_t> latest_service(entries.size());  // prefix maximum
  std::uint64_t latest = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    latest = std::max(latest, entries[i].served_from);
    latest_service[i] = latest;
  }
  std::uint64_t overtakes = 0;
  for (const Stamp& b : stamps) {
    if (b.running == 0) continue;
    // Every A queued strictly before B asked (B itself queued after it asked).
    const auto before = static_cast<std::size_t>(
        std::lower_bound(entries.begin(), entries.end(), b.asked,
                         [](const Entry& e, std::uint64_t t) { return e.queued < t; }) -
        entries.begin());
    if (before != 0 && latest_service[before - 1] > b.running) ++overtakes;
  }
  return overtakes;
}

// Waits are counted for every request that got its MID inside the run, from when it asked or
// the clock started, whichever is later: requests queued at set-up waited from the start.
WaitFigures Analyse(const std::vector<Stamp>& stamps, std::uint64_t start, double ns_per_tick) {
  WaitFigures figures;
  std::vector<std::uint64_t> waits;
  std::vector<std::uint64_t> handoffs;
  waits.reserve(stamps.size());
  std::size_t served = 0;
  std::size_t waited = 0;
  for (const Stamp& s : stamps) {
    if (s.running <= start) continue;  // never served, or served at set-up
    ++served;
    waits.push_back(s.running - std::max(s.asked, start));
    if (s.waited) {
      ++waited;
      handoffs.push_back(s.running - s.freed);
    }
  }
  const double us_per_tick = ns_per_tick / 1000.0;
  figures.wait_p50_us = Percentile(waits, 0.50) * us_per_tick;
  figures.wait_p99_us = Percentile(waits, 0.99) * us_per_tick;
  figures.handoff_p50_us = Percentile(handoffs, 0.50) * us_per_tick;
  figures.handoff_p99_us = Percentile(handoffs, 0.99) * us_per_tick;
  figures.waited_pct =
      served == 0 ? 0 : 100.0 * static_cast<double>(waited) / static_cast<double>(served);
  figures.overtakes = CountOvertakes(stamps, &figures.overtake_candidates);
  return figures;
}

void Report(benchmark::State& state, const WaitFigures& f, std::uint64_t requests,
            double seconds) {
  state.SetIterationTime(seconds);
  state.SetItemsProcessed(static_cast<std::int64_t>(requests));
  state.counters["wait_p50_us"] = f.wait_p50_us;
  state.counters["wait_p99_us"] = f.wait_p99_us;
  state.counters["handoff_p50_us"] = f.handoff_p50_us;
  state.counters["handoff_p99_us"] = f.handoff_p99_us;
  state.counters["overtakes"] = static_cast<double>(f.overtakes);
  state.counters["waited_pct"] = f.waited_pct;
  state.counters["overtake_candidates"] = static_cast<double>(f.overtake_candidates);
}

// Driver d runs on CPU d modulo the CPUs this process may use, so that every run places the
// drivers alike (two drivers on two cores always run in parallel) rather than as the
// scheduler happens to.
void PinToCpu(std::size_t d) noexcept {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return;
  const int cpus = CPU_COUNT(&allowed);
  if (cpus <= 1) return;
  int wanted = static_cast<int>(d % static_cast<std::size_t>(cpus));
  for (std::size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (wanted-- == 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
      return;
    }
  }
}

// The threads of a run wait here until the clock starts.
class StartGate {
 public:
  void Wait() noexcept {
    // acquire: pairs with Open's release, so the set-up is visible to every thread.
    open_.wait(false, std::memory_order_acquire);
  }
  void Open() noexcept {
    open_.store(true, std::memory_order_release);  // pairs with Wait's acquire
    open_.notify_all();
  }

 private:
  std::atomic<bool> open_{false};
};

// ---------------------------------------------------------------------------------------
// asynchronous waiters

template <typename Peer>
struct AsyncRequest {
  typename Peer::WaitNode node{};  // zeroed: never queued yet
  Stamp* stamp = nullptr;          // this round's; written before each acquire call
  Mid mid = 0;
};

template <typename Peer>
class AsyncDriver;

// The driver running on this thread: a queued request's routine runs on the freeing thread
// and sends the request from there.
template <typename Peer>
thread_local AsyncDriver<Peer>* t_driver = nullptr;

template <typename Peer>
class AsyncDriver {
 public:
  explicit AsyncDriver(std::uint64_t quota) : quota_(quota), log_(quota) {}

  // "Sends" a request that holds its MID: its response will come to this driver.
  void Send(AsyncRequest<Peer>* request) noexcept {
    in_flight_[tail_++ & (in_flight_.size() - 1)] = request;
  }

  // Runs on the driver's thread until it completed its quota of requests.
  void Run(Peer& peer) noexcept {
    t_driver<Peer> = this;
    for (std::uint64_t done = 0; done < quota_; ++done) {
      if (head_ == tail_) [[unlikely]] {
        failure_ = "a driver had no request in flight";
        break;
      }
      AsyncRequest<Peer>* request = in_flight_[head_++ & (in_flight_.size() - 1)];
      // The response: the receive path maps the MID, then completes the request.
      wrong_ += peer.Map(request->mid) != request;
      hand_off_from_ = Ticks();
      wrong_ += peer.MapAndDissociate(request->mid) != request;  // may run a routine here
      // The request goes again.
      Stamp* stamp = &log_[done];
      request->stamp = stamp;
      stamp->asked = Ticks();
      hand_off_from_ = stamp->asked;  // an acquire may serve others' routines too
      Mid mid = 0;
      const AsyncResult got =
          peer.template AssociateAsync<&Granted>(request, &request->node, &mid);
      const std::uint64_t returned = Ticks();
      stamp->queued = returned;
      if (got == AsyncResult::kNow) {
        request->mid = mid;
        stamp->freed = stamp->asked;
        stamp->running = returned;
        Send(request);
      } else if (got == AsyncResult::kQueued) {
        stamp->waited = true;  // the routine writes only `freed` and `running`
      } else {
        failure_ = "an asynchronous associate failed";
        break;
      }
    }
    finished_ = Ticks();
    t_driver<Peer> = nullptr;
  }

  // A queued request's routine: it holds its MID now, on this (the freeing) thread.
  static void Granted(void* context, Mid mid) {
    auto* request = static_cast<AsyncRequest<Peer>*>(context);
    AsyncDriver* driver = t_driver<Peer>;
    request->mid = mid;
    if (driver == nullptr) [[unlikely]] return;  // set-up frees nothing; cannot happen
    request->stamp->freed = driver->hand_off_from_;
    request->stamp->running = Ticks();
    driver->Send(request);
  }

  [[nodiscard]] const std::vector<Stamp>& log() const noexcept { return log_; }
  [[nodiscard]] std::uint64_t finished() const noexcept { return finished_; }
  [[nodiscard]] std::uint64_t wrong() const noexcept { return wrong_; }
  [[nodiscard]] const char* failure() const noexcept { return failure_; }

 private:
  std::uint64_t quota_;
  std::vector<Stamp> log_;
  // Every request could be in flight here; a power of two.
  std::array<AsyncRequest<Peer>*, kAsyncRequestsInPlay> in_flight_{};
  std::uint64_t head_ = 0;
  std::uint64_t tail_ = 0;
  std::uint64_t hand_off_from_ = 0;  // when this thread's current atlas call started
  std::uint64_t finished_ = 0;
  std::uint64_t wrong_ = 0;
  const char* failure_ = nullptr;
};
static_assert((kAsyncRequestsInPlay & (kAsyncRequestsInPlay - 1)) == 0, "ring index masked");

template <typename Peer>
void AsyncWorkload(benchmark::State& state) {
  const auto drivers = static_cast<std::size_t>(state.range(0));
  const std::uint64_t quota = kAsyncCompletions / drivers;
  const char* failure = nullptr;
  WaitFigures figures;
  double seconds = 0;
  for (auto _ : state) {
    // The requests outlive the peer: destroying it cancels the requests still queued.
    std::vector<AsyncRequest<Peer>> requests(kAsyncRequestsInPlay);
    std::vector<Stamp> first_round(kAsyncRequestsInPlay);
    std::vector<std::unique_ptr<AsyncDriver<Peer>>> driver;
    for (std::size_t d = 0; d < drivers; ++d) {
      driver.push_back(std::make_unique<AsyncDriver<Peer>>(quota));
    }
    auto peer = std::make_unique<Peer>(kWaitMids);
    if (!peer->ok()) {
      failure = "could not create the table";
      break;
    }
    // Set-up: every request asks once; the 64 that get a MID are spread over the drivers in
    // turn, the other 192 queue in order.
    std::size_t sent = 0;
    for (std::size_t i = 0; i < requests.size() && failure == nullptr; ++i) {
      AsyncRequest<Peer>& request = requests[i];
      Stamp& stamp = first_round[i];
      request.stamp = &stamp;
      stamp.asked = Ticks();
      Mid mid = 0;
      const AsyncResult got =
          peer->template AssociateAsync<&AsyncDriver<Peer>::Granted>(&request, &request.node,
                                                                     &mid);
      stamp.queued = Ticks();
      if (got == AsyncResult::kNow) {
        request.mid = mid;
        stamp.freed = stamp.asked;
        stamp.running = stamp.queued;
        driver[sent++ % drivers]->Send(&request);
      } else if (got == AsyncResult::kQueued) {
        stamp.waited = true;
      } else {
        failure = "an asynchronous associate failed at set-up";
      }
    }
    if (failure == nullptr && sent != kWaitMids) failure = "set-up did not fill the table";
    if (failure != nullptr) break;

    StartGate gate;
    std::vector<std::thread> threads;
    threads.reserve(drivers);
    for (std::size_t d = 0; d < drivers; ++d) {
      threads.emplace_back([&gate, &peer, run = driver[d].get(), d] {
        PinToCpu(d);
        gate.Wait();
        run->Run(*peer);
      });
    }
    const Calibration start;
    gate.Open();
    for (std::thread& thread : threads) thread.join();
    const Calibration end;
    std::uint64_t last = start.ticks;
    std::vector<Stamp> stamps = first_round;
    std::uint64_t wrong = 0;
    for (const auto& d : driver) {
      last = std::max(last, d->finished());
      stamps.insert(stamps.end(), d->log().begin(), d->log().end());
      wrong += d->wrong();
      if (d->failure() != nullptr) failure = d->failure();
    }
    if (wrong != 0) failure = "a MID mapped to another request's context";
    if (failure != nullptr) break;
    const double ns_per_tick = start.NsPerTick(end);
    seconds = static_cast<double>(last - start.ticks) * ns_per_tick / 1e9;
    figures = Analyse(stamps, start.ticks, ns_per_tick);
    peer.reset();  // cancels the requests still queued
  }
  if (failure != nullptr) return state.SkipWithError(failure);
  Report(state, figures, quota * drivers, seconds);
}

// ---------------------------------------------------------------------------------------
// blocking waiters

void BriefWork() noexcept {
  std::uint64_t x = 1;
  for (int i = 0; i < kBriefWorkSteps; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    benchmark::DoNotOptimize(x);
  }
}

// When each MID was last freed, written by its holder just before it frees it and read by the
// next holder: the atlas orders the two (the free happens-before the next associate), so a
// plain field is enough. One line per MID: holders on different cores do not share lines.
struct alignas(64) FreedAt {
  std::uint64_t ticks = 0;
};

// The observer's readings of a full queue: every thread that held no MID was queued at some
// moment between `before` and `after`.
struct Reading {
  std::uint64_t before;
  std::uint64_t after;
};

// A request that asked before such a reading and was handed its MID after it (the call that
// freed its MID started later) held no MID then, so it was queued by `after`.
void MarkQueued(const std::vector<Reading>& readings, std::vector<Stamp>* stamps) {
  for (Stamp& s : *stamps) {
    if (s.queued != 0 || !s.waited) continue;
    const auto next = std::upper_bound(
        readings.begin(), readings.end(), s.asked,
        [](std::uint64_t t, const Reading& r) { return t < r.before; });
    if (next != readings.end() && next->after < s.freed) s.queued = next->after;
  }
}

template <typename Peer>
void BlockingWorkload(benchmark::State& state) {
  const auto requesters = static_cast<std::size_t>(state.range(0));
  const std::size_t per_thread = (kBlockingRequests + requesters - 1) / requesters;
  const char* failure = requesters > kWaitMids ? nullptr : "fewer requesters than MIDs";
  WaitFigures figures;
  double seconds = 0;
  for (auto _ : state) {
    if (failure != nullptr) break;
    auto peer = std::make_unique<Peer>(kWaitMids);
    if (!peer->ok()) {
      failure = "could not create the table";
      break;
    }
    std::vector<std::vector<Stamp>> logs(requesters, std::vector<Stamp>(per_thread));
    std::vector<std::uint64_t> finished(requesters);
    std::vector<std::uint64_t> wrong(requesters);
    std::vector<std::uint64_t> contexts(requesters);
    std::array<FreedAt, kWaitMids> freed_at{};
    StartGate gate;
    std::atomic<std::uint32_t> holding{0};
    auto requester = [&](std::size_t t, bool holds_at_start) {
      void* const me = &contexts[t];
      std::vector<Stamp>& log = logs[t];
      std::uint64_t mismatches = 0;
      for (std::size_t i = 0; i < log.size(); ++i) {
        Stamp& stamp = log[i];
        stamp.asked = Ticks();
        Mid mid = 0;
        if (!peer->AssociateWait(me, &mid) || mid >= kWaitMids) [[unlikely]] {
          ++mismatches;
          break;
        }
        stamp.running = Ticks();
        const std::uint64_t freed = freed_at[mid].ticks;
        stamp.waited = freed > stamp.asked;
        stamp.freed = stamp.waited ? freed : stamp.asked;
        if (i == 0 && holds_at_start) {
          // release: pairs with the set-up's acquire (nothing to publish but the count).
          holding.fetch_add(1, std::memory_order_release);
          holding.notify_one();
          gate.Wait();
        }
        mismatches += peer->Map(mid) != me;
        BriefWork();
        freed_at[mid].ticks = Ticks();
        mismatches += peer->MapAndDissociate(mid) != me;
      }
      finished[t] = Ticks();
      wrong[t] = mismatches;
    };
    // Set-up, saturated from the first request on: 64 threads take every MID and hold it
    // until the clock starts; the other threads then queue behind them.
    std::vector<std::thread> threads;
    threads.reserve(requesters);
    for (std::size_t t = 0; t < kWaitMids; ++t) threads.emplace_back(requester, t, true);
    for (std::uint32_t held = 0; (held = holding.load(std::memory_order_acquire)) < kWaitMids;) {
      holding.wait(held, std::memory_order_acquire);  // pairs with the holders' release
    }
    for (std::size_t t = kWaitMids; t < requesters; ++t) threads.emplace_back(requester, t, false);
    const auto queue_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (peer->Waiters() < requesters - kWaitMids) {
      if (std::chrono::steady_clock::now() > queue_deadline) {
        failure = "the requesters did not all queue";  // the run still completes
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    // The observer (see the top of the file).
    std::vector<Reading> all_queued;
    all_queued.reserve(16384);
    std::atomic<bool> stop{false};
    std::thread observer([&] {
      gate.Wait();
      // relaxed: only ends the loop; the join orders the readings.
      while (!stop.load(std::memory_order_relaxed)) {
        const std::uint64_t before = Ticks();
        const std::uint32_t waiters = peer->Waiters();
        const std::uint64_t after = Ticks();
        if (waiters == requesters - kWaitMids) all_queued.push_back({before, after});
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    });
    const Calibration start;
    gate.Open();
    for (std::thread& thread : threads) thread.join();
    const Calibration end;
    stop.store(true, std::memory_order_relaxed);
    observer.join();
    std::uint64_t last = start.ticks;
    std::vector<Stamp> stamps;
    stamps.reserve(requesters * per_thread);
    // The threads queued at set-up were all queued when the clock started.
    for (std::size_t t = kWaitMids; t < requesters; ++t) logs[t][0].queued = start.ticks;
    for (std::size_t t = 0; t < requesters; ++t) {
      last = std::max(last, finished[t]);
      stamps.insert(stamps.end(), logs[t].begin(), logs[t].end());
      if (wrong[t] != 0) failure = "an associate failed or a MID mapped to another context";
    }
    if (failure != nullptr) break;
    if constexpr (Peer::kFifoHandOff) MarkQueued(all_queued, &stamps);
    const double ns_per_tick = start.NsPerTick(end);
    seconds = static_cast<double>(last - start.ticks) * ns_per_tick / 1e9;
    figures = Analyse(stamps, start.ticks, ns_per_tick);
  }
  if (failure != nullptr) return state.SkipWithError(failure);
  Report(state, figures, per_thread * requesters, seconds);
}

template <typename Peer>
void RegisterAsync(std::int64_t drivers, std::int64_t round) {
  benchmark::RegisterBenchmark((std::string("BM_WaitAsync/") + Peer::kName).c_str(),
                               AsyncWorkload<Peer>)
      ->ArgNames({"drivers", "round"})
      ->Args({drivers, round})
      ->Iterations(1)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

template <typename Peer>
void RegisterBlocking(std::int64_t requesters, std::int64_t round) {
  benchmark::RegisterBenchmark((std::string("BM_WaitBlocking/") + Peer::kName).c_str(),
                               BlockingWorkload<Peer>)
      ->ArgNames({"requesters", "round"})
      ->Args({requesters, round})
      ->Iterations(1)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

}  // namespace

void RegisterWaitBenchmarks() {
  benchmark::AddCustomContext(
      "wait", "max_mids=64 (all allocated at start), 256 requests or requesting threads");
  // Each run is short (tens to hundreds of ms), so one run is at the mercy of whatever else
  // the machine does meanwhile: every row runs kRounds times, the implementations in turn
  // within each round, and the report takes medians over the rounds.
  for (std::int64_t round = 1; round <= kRounds; ++round) {
    for (const std::int64_t drivers : {2, 4}) {
      RegisterAsync<MidatlasCWait>(drivers, round);
      RegisterAsync<MutexFifoWait>(drivers, round);
      RegisterAsync<RingCeiling>(drivers, round);
    }
  }
  for (std::int64_t round = 1; round <= kRounds; ++round) {
    RegisterBlocking<MidatlasCWait>(kBlockingRequesters, round);
    RegisterBlocking<MutexFifoWait>(kBlockingRequesters, round);
    RegisterBlocking<MutexCvWait>(kBlockingRequesters, round);
  }
}

}  // namespace midatlas::bench
