// The 9P2000.L client on the midatlas tag table against the same client on a mutex-protected
// tag table (how Linux's 9p client keeps its requests: an IDR under a spinlock), side by side
// in one run against the same diod: requests per second and p50/p99 latency at 1 to 4,096
// requests in flight.
//
// Each point: a fresh connection per table, up to 8 application threads that together keep
// `depth` Tgetattr requests in flight (each thread a window of depth/threads, refilled as
// replies arrive), for --seconds. Latency is from Start to the reply's callback.
//
//   scripts/bench-ninep [--seconds=S] [--depths=1,4,16,...]   (starts diod itself)
//   NINEP_ADDR=127.0.0.1:5640 NINEP_EXPORT=/srv/x ninep_bench ...   (an existing server)
#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "ninep/client.h"

namespace {

using Clock = std::chrono::steady_clock;

// One run's raw results; runs of one table are merged before the percentiles are taken.
struct Samples {
  std::vector<double> latencies_us;
  double seconds = 0;
  std::uint64_t failed = 0;
  std::uint64_t unknown_tags = 0;

  void Merge(Samples&& other) {
    latencies_us.insert(latencies_us.end(), other.latencies_us.begin(), other.latencies_us.end());
    seconds += other.seconds;
    failed += other.failed;
    unknown_tags += other.unknown_tags;
  }
};

struct Point {
  double requests_per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
  std::uint64_t failed = 0;
  std::uint64_t unknown_tags = 0;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto at = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(at), v.end());
  return v[at];
}

absl::StatusOr<Samples> Run(const std::string& addr, const std::string& export_path,
                          ninep::TagTableKind kind, std::uint32_t depth, double seconds) {
  const std::uint32_t threads = std::min<std::uint32_t>(depth, 8);
  // What callbacks touch outlives the client, whose destructor joins the receive thread (a
  // callback may still be returning from its release when its worker has moved on). The
  // callbacks all run on that one thread, so `latencies` needs no lock.
  std::vector<double> latencies;
  latencies.reserve(static_cast<std::size_t>(seconds * 2'000'000));
  std::vector<std::unique_ptr<std::counting_semaphore<4096>>> windows;
  for (std::uint32_t t = 0; t < threads; ++t) {
    const std::uint32_t window = depth / threads + (t < depth % threads ? 1 : 0);
    windows.push_back(std::make_unique<std::counting_semaphore<4096>>(window));
  }
  std::atomic<std::uint64_t> failed{0};

  absl::StatusOr<std::unique_ptr<ninep::Client>> client =
      ninep::Client::Connect(addr, {.max_in_flight = 4096, .tag_table = kind});
  if (!client.ok()) return client.status();
  absl::StatusOr<std::uint32_t> root = (*client)->Attach("root", export_path, 0);
  if (!root.ok()) return root.status();
  const std::vector<std::string> names = {"bench-file"};
  absl::StatusOr<std::uint32_t> fid = (*client)->Walk(*root, names);
  if (!fid.ok()) return fid.status();
  ninep::Connection& conn = (*client)->connection();

  const Clock::time_point start = Clock::now();
  const Clock::time_point stop = start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(seconds));
  std::vector<std::thread> workers;
  for (std::uint32_t t = 0; t < threads; ++t) {
    const std::uint32_t window = depth / threads + (t < depth % threads ? 1 : 0);
    workers.emplace_back([&, window, &slots = *windows[t]] {
      while (Clock::now() < stop) {
        slots.acquire();
        const Clock::time_point sent = Clock::now();
        conn.Start(ninep::BuildTgetattr(*fid, ninep::kGetattrBasic),
                   [&, sent](const absl::StatusOr<ninep::Reply>& reply) {
                     if (reply.ok()) {
                       latencies.push_back(
                           std::chrono::duration<double, std::micro>(Clock::now() - sent).count());
                     } else {
                       failed.fetch_add(1, std::memory_order_relaxed);  // (bench:B1) relaxed:
                     }                                                  // a counter
                     slots.release();
                   });
      }
      for (std::uint32_t i = 0; i < window; ++i) slots.acquire();  // drain the window
    });
  }
  for (std::thread& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  Samples p;
  p.seconds = elapsed;
  p.failed = failed.load(std::memory_order_relaxed);  // (bench:B2) relaxed: workers joined
  p.unknown_tags = conn.stats().unknown_tags;
  (void)(*client)->Clunk(*fid);
  client->reset();  // joins the receive thread: no callback touches `latencies` any more
  p.latencies_us = std::move(latencies);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.0;
  std::vector<std::uint32_t> depths = {1, 4, 16, 64, 256, 1024, 4096};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--seconds=", 0) == 0) {
      if (!absl::SimpleAtod(arg.substr(10), &seconds) || seconds <= 0) {
        std::fprintf(stderr, "bad %s\n", arg.c_str());
        return 2;
      }
    } else if (arg.rfind("--depths=", 0) == 0) {
      depths.clear();
      const std::vector<std::string> list = absl::StrSplit(arg.substr(9), ',');
      for (const std::string& d : list) {
        std::uint32_t v = 0;
        if (!absl::SimpleAtoi(d, &v) || v < 1 || v > 4096) {
          std::fprintf(stderr, "bad depth %s (1..4096)\n", d.c_str());
          return 2;
        }
        depths.push_back(v);
      }
    } else {
      std::fprintf(stderr, "usage: %s [--seconds=S] [--depths=1,4,...]\n", argv[0]);
      return 2;
    }
  }
  const char* addr = std::getenv("NINEP_ADDR");
  const char* export_path = std::getenv("NINEP_EXPORT");
  if (addr == nullptr || export_path == nullptr) {
    std::fprintf(stderr, "NINEP_ADDR and NINEP_EXPORT must name a diod (scripts/bench-ninep)\n");
    return 2;
  }
  std::ofstream(std::string(export_path) + "/bench-file") << "9P2000.L tag table benchmark\n";

  std::printf("9P2000.L client, Tgetattr against diod on %s, %.1f s per point and table\n",
              addr, seconds);
  std::printf("midatlas: tag table on the MID atlas; mutex: array + free list under one mutex "
              "(Linux 9p: IDR under a spinlock)\n\n");
  std::printf("%6s | %12s %9s %9s | %12s %9s %9s | %7s\n", "depth", "midatlas/s", "p50 us",
              "p99 us", "mutex/s", "p50 us", "p99 us", "ratio");
  std::printf("%s\n", std::string(88, '-').c_str());
  int status = 0;
  for (std::uint32_t depth : depths) {
    // Each table runs twice, in the order atlas, mutex, mutex, atlas (half the time each), so
    // that a drift of the machine or the server over the point weighs on both alike.
    Samples runs[2];
    const ninep::TagTableKind order[] = {ninep::TagTableKind::kAtlas, ninep::TagTableKind::kMutex,
                                         ninep::TagTableKind::kMutex, ninep::TagTableKind::kAtlas};
    for (ninep::TagTableKind kind : order) {
      absl::StatusOr<Samples> run = Run(addr, export_path, kind, depth, seconds / 2);
      if (!run.ok()) {
        std::fprintf(stderr, "depth %u: %s\n", depth, std::string(run.status().message()).c_str());
        return 1;
      }
      runs[kind == ninep::TagTableKind::kAtlas ? 0 : 1].Merge(*std::move(run));
    }
    auto summarize = [](Samples& r) {
      Point p;
      p.requests_per_second = static_cast<double>(r.latencies_us.size()) / r.seconds;
      p.p50_us = Percentile(r.latencies_us, 0.50);
      p.p99_us = Percentile(r.latencies_us, 0.99);
      p.failed = r.failed;
      p.unknown_tags = r.unknown_tags;
      return p;
    };
    const Point atlas_point = summarize(runs[0]);
    const Point mutex_point = summarize(runs[1]);
    const Point* atlas = &atlas_point;
    const Point* mutex = &mutex_point;
    std::printf("%6u | %12.0f %9.1f %9.1f | %12.0f %9.1f %9.1f | %6.2fx\n", depth,
                atlas->requests_per_second, atlas->p50_us, atlas->p99_us,
                mutex->requests_per_second, mutex->p50_us, mutex->p99_us,
                atlas->requests_per_second / mutex->requests_per_second);
    if (atlas->failed + mutex->failed + atlas->unknown_tags + mutex->unknown_tags > 0) {
      std::fprintf(stderr, "depth %u: %llu failed, %llu unknown tags\n", depth,
                   static_cast<unsigned long long>(atlas->failed + mutex->failed),
                   static_cast<unsigned long long>(atlas->unknown_tags + mutex->unknown_tags));
      status = 1;
    }
    std::fflush(stdout);
  }
  return status;
}
