// netname_stress: racing find-or-create, lookup, remove and last releases on one NetName table
// while every connection's atlas holds contexts, so that entries are created, found, removed,
// torn down (their atlases drained) and freed under concurrent lock-free readers.
//
//   netname_stress [--threads=N] [--seconds=S] [--ops=N] [--seed=N] [--round=N] [--hold=N]
//                  [--generation=N]
//
// Seeded (the seed is printed at the start and with every failure; without --seed one is
// drawn at random), bounded both by time and by total operations; threads start on a latch
// and meet at a barrier every --round operations, never sleeping. Exit status: 0 pass,
// 1 violation, 2 usage.
//
// Each thread repeatedly, at random:
//   create   FindOrCreate of a name from a small universe (4 servers x 4 shares, 3-component
//            virtual net roots, any letter case) for a random session; session 0's provider
//            answers STATUS_NOT_IMPLEMENTED (the zero ID), session 3's fails (the error must
//            come back unchanged). It keeps up to --hold references and associates a fresh
//            request with the connection's atlas for each.
//   lookup   a random path (longer, shorter, other servers, streams) with a random ID; a hit
//            must be a boundary prefix of the path with the same ID, and its atlas is mapped.
//   remove   Remove of a held entry.
//   release  drops a held reference, first taking back its requests with MapAndDissociate
//            (each must come back exactly) or leaving them outstanding in the atlas.
// Every --generation phases all threads release everything and the barrier's completion
// replaces the (now empty) table by a fresh two-bucket one, so bucket-array resizes - old
// arrays retired under readers, dead nodes deferred until they are freed - happen all run
// long, and table destruction runs too.
//
// HOW VIOLATIONS ARE DETECTED
//   requests     every request is handed back exactly once: to its owner by
//                MapAndDissociate, or to the outstanding-context handler when its server
//                call's last reference goes; a flag exchanged on hand-back catches a second
//                delivery, the counters catch a lost one, the handler checks that the request
//                belongs to the server call being torn down. Requests are freed by whoever
//                receives them, so ASan reports a double delivery as a double free.
//   one entry    at every barrier (no call running) all held references whose entries are
//   per key      still in the table and share a key must be the same entry.
//   no freed     a lookup only reads entries it holds a reference to; TSan and ASan report any
//   entry read   read of a freed entry (the debug, TSan and ASan builds reclaim on every retire).
//   the end      once every reference is gone the table is empty and every request was
//                delivered.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/net_name_table.h"

namespace midatlas::stress {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  int threads = 8;
  double seconds = 3;
  std::uint64_t ops = 2'000'000;
  std::uint64_t seed = 0;
  bool seed_given = false;
  std::uint64_t round = 500;
  std::size_t hold = 6;
  std::uint64_t generation = 5;  // phases per table; then all is released, a new table made
};

std::uint64_t g_seed = 0;
std::atomic<int> g_violations{0};

void Fail(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::fprintf(stderr, "VIOLATION (seed %" PRIu64 "): ", g_seed);
  std::vfprintf(stderr, format, args);
  std::fprintf(stderr, "\n");
  va_end(args);
  g_violations.fetch_add(1, std::memory_order_relaxed);
}

bool ParseFlag(std::string_view arg, std::string_view name, std::uint64_t* out) {
  if (!arg.starts_with(name)) return false;
  arg.remove_prefix(name.size());
  return std::from_chars(arg.data(), arg.data() + arg.size(), *out).ec == std::errc();
}

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    std::uint64_t value = 0;
    if (ParseFlag(arg, "--threads=", &value) && value > 0 && value <= 256) {
      flags->threads = static_cast<int>(value);
    } else if (ParseFlag(arg, "--seconds=", &value)) {
      flags->seconds = static_cast<double>(value);
    } else if (ParseFlag(arg, "--ops=", &value)) {
      flags->ops = value;
    } else if (ParseFlag(arg, "--seed=", &value)) {
      flags->seed = value;
      flags->seed_given = true;
    } else if (ParseFlag(arg, "--round=", &value) && value > 0) {
      flags->round = value;
    } else if (ParseFlag(arg, "--generation=", &value) && value > 0) {
      flags->generation = value;
    } else if (ParseFlag(arg, "--hold=", &value) && value > 0) {
      flags->hold = static_cast<std::size_t>(value);
    } else {
      std::fprintf(stderr, "unknown or bad flag: %s\n", argv[i]);
      return false;
    }
  }
  return true;
}

// ----------------------------------------------------------------------------------------
// Requests and the provider.

constexpr std::uint32_t kMagic = 0x4e65744eU;
constexpr std::uint32_t kFailingSession = 3;

struct Request {
  std::uint32_t magic = kMagic;
  std::string server;  // the server call's name, for the handler's check
  ConnectionId id;
  std::atomic<int> delivered{0};
};

std::atomic<std::uint64_t> g_associated{0};
std::atomic<std::uint64_t> g_taken_back{0};
std::atomic<std::uint64_t> g_handed_over{0};

// Delivery of a request to exactly one receiver, which frees it.
void Deliver(Request* request, const char* how) {
  if (request->magic != kMagic) {
    Fail("%s: not a request (magic %08x)", how, request->magic);
    return;
  }
  if (request->delivered.exchange(1, std::memory_order_relaxed) != 0) {
    Fail("%s: request delivered twice", how);
    return;
  }
  delete request;
}

class StressProvider : public ConnectionIdProvider {
 public:
  absl::StatusOr<ConnectionId> GetConnectionId(void* request_context) override {
    const auto session = *static_cast<const std::uint32_t*>(request_context);
    if (session == 0) return absl::UnimplementedError("no connection IDs");
    if (session == kFailingSession) return absl::PermissionDeniedError("session gone");
    return ConnectionIdFromSession(session);
  }
};

ConnectionId IdOf(std::uint32_t session) {
  return session == 0 ? ConnectionId{} : ConnectionIdFromSession(session);
}

// ----------------------------------------------------------------------------------------
// Names.

std::string RandomCase(std::string name, std::mt19937_64& rng) {
  for (char& c : name) {
    if (c >= 'a' && c <= 'z' && (rng() & 1) != 0) c = static_cast<char>(c - 'a' + 'A');
  }
  return name;
}

std::string Lower(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

struct EntryName {
  std::string name;
  NetNameKind kind;
};

// Kinds are fixed per name so that no key exists as two kinds: even shares are net roots,
// odd shares virtual net roots, and three-component names virtual net roots.
EntryName RandomEntryName(std::mt19937_64& rng) {
  const auto server = rng() % 4;
  const auto share = rng() % 4;
  std::string name = "\\\\srv" + std::to_string(server) + "\\share" + std::to_string(share);
  if (rng() % 4 == 0) {
    return {RandomCase(name + "\\dir" + std::to_string(rng() % 2), rng), NetNameKind::kVNetRoot};
  }
  return {RandomCase(std::move(name), rng),
          share % 2 == 0 ? NetNameKind::kNetRoot : NetNameKind::kVNetRoot};
}

std::string RandomPath(std::mt19937_64& rng) {
  std::string path = "\\\\srv" + std::to_string(rng() % 5);
  const auto depth = rng() % 5;
  if (depth >= 1) path += "\\share" + std::to_string(rng() % 5);
  if (depth >= 2) path += "\\dir" + std::to_string(rng() % 3);
  if (depth >= 3) path += "\\file.txt";
  if (depth >= 2 && rng() % 4 == 0) path += ":stream:$DATA";
  return RandomCase(std::move(path), rng);
}

// ----------------------------------------------------------------------------------------
// Threads.

struct Held {
  NetNameRef ref;
  std::vector<std::pair<Mid, Request*>> requests;
};

struct ThreadState {
  std::vector<Held> held;
};

void TakeBack(Held& held) {
  for (const auto& [mid, request] : held.requests) {
    absl::StatusOr<void*> back = held.ref.atlas()->MapAndDissociate(mid);
    if (!back.ok() || *back != request) {
      Fail("MapAndDissociate of our own MID %u did not return our request", unsigned{mid});
      continue;
    }
    g_taken_back.fetch_add(1, std::memory_order_relaxed);
    Deliver(request, "owner");
  }
  held.requests.clear();
}

void Create(NetNameTable& table, ThreadState& state, const Flags& flags, std::mt19937_64& rng) {
  if (state.held.size() >= flags.hold) return;
  const EntryName entry = RandomEntryName(rng);
  std::uint32_t session = static_cast<std::uint32_t>(rng() % 4);
  absl::StatusOr<NetNameRef> ref = table.FindOrCreate(entry.name, entry.kind, &session);
  if (session == kFailingSession) {
    if (!absl::IsPermissionDenied(ref.status())) {
      Fail("a provider error came back as %s", ref.status().ToString().c_str());
    }
    return;
  }
  if (!ref.ok()) {
    Fail("FindOrCreate(%s): %s", entry.name.c_str(), ref.status().ToString().c_str());
    return;
  }
  if (Lower(ref->name()) != Lower(entry.name) || ref->kind() != entry.kind ||
      ref->connection_id() != IdOf(session)) {
    Fail("FindOrCreate(%s) returned %.*s", entry.name.c_str(), static_cast<int>(ref->name().size()),
         ref->name().data());
    return;
  }
  Held held{.ref = *std::move(ref), .requests = {}};
  auto* request = new Request;
  request->server = std::string(held.ref.server_call().name());
  request->id = held.ref.connection_id();
  absl::StatusOr<Mid> mid = held.ref.atlas()->Associate(request);
  if (mid.ok()) {
    g_associated.fetch_add(1, std::memory_order_relaxed);
    held.requests.emplace_back(*mid, request);
  } else {
    delete request;  // all MIDs in use: never associated
    if (!IsAllMidsInUse(mid.status())) Fail("Associate: %s", mid.status().ToString().c_str());
  }
  state.held.push_back(std::move(held));
}

void Lookup(const NetNameTable& table, std::mt19937_64& rng) {
  const std::string path = RandomPath(rng);
  const ConnectionId id = IdOf(static_cast<std::uint32_t>(rng() % 3));
  absl::StatusOr<NetNameMatch> match = table.Lookup(path, id);
  if (!match.ok()) {
    if (!absl::IsNotFound(match.status())) {
      Fail("Lookup(%s): %s", path.c_str(), match.status().ToString().c_str());
    }
    return;
  }
  const std::size_t length = path.size() - match->remaining.size();
  const std::string_view remaining = match->remaining;
  if (Lower(match->entry.name()) != Lower(std::string_view(path).substr(0, length)) ||
      match->entry.connection_id() != id ||
      (!remaining.empty() && remaining[0] != '\\' && remaining[0] != ':')) {
    Fail("Lookup(%s) matched %.*s leaving %.*s", path.c_str(),
         static_cast<int>(match->entry.name().size()), match->entry.name().data(),
         static_cast<int>(remaining.size()), remaining.data());
  }
  // Receive path on the connection: the atlas is alive while the reference is held.
  static_cast<void>(match->entry.atlas()->Map(static_cast<Mid>(rng() % 50)));
}

void Release(ThreadState& state, std::mt19937_64& rng) {
  if (state.held.empty()) return;
  const std::size_t at = static_cast<std::size_t>(rng() % state.held.size());
  Held& held = state.held[at];
  if (rng() % 2 == 0) TakeBack(held);  // else they stay outstanding for the teardown
  held.requests.clear();
  state.held.erase(state.held.begin() + static_cast<std::ptrdiff_t>(at));
}

void Remove(NetNameTable& table, ThreadState& state, std::mt19937_64& rng) {
  if (state.held.empty()) return;
  static_cast<void>(
      table.Remove(state.held[static_cast<std::size_t>(rng() % state.held.size())].ref));
}

// With no call running: references to entries still in the table agree per key.
void CheckOneEntryPerKey(std::vector<ThreadState>& states) {
  std::map<std::tuple<std::string, std::string>, NetNameRef> seen;
  for (ThreadState& state : states) {
    for (Held& held : state.held) {
      if (!held.ref.in_table()) continue;
      const auto& bytes = held.ref.connection_id().bytes;
      auto key = std::make_tuple(Lower(held.ref.name()), std::string(bytes.begin(), bytes.end()));
      auto [it, inserted] = seen.emplace(key, held.ref);
      if (!inserted && !(it->second == held.ref)) {
        Fail("two entries in the table for %.*s", static_cast<int>(held.ref.name().size()),
             held.ref.name().data());
      }
    }
  }
}

int Run(const Flags& flags) {
  std::printf("netname_stress: seed %" PRIu64 ", %d threads, %.1f s, %" PRIu64 " ops\n", g_seed,
              flags.threads, flags.seconds, flags.ops);
  std::fflush(stdout);
  {
    // A fresh table starts with 2 buckets, so every table generation grows through several
    // resizes while the threads race (old bucket arrays retired under readers, NN5/NN6).
    auto make_table = []() -> std::unique_ptr<NetNameTable> {
      NetNameTable::Options options;
      options.atlas = {.max_mids = 64, .initial_mids = 16};
      options.initial_buckets = 2;
      options.provider = std::make_shared<StressProvider>();
      options.outstanding_context = [](std::string_view server, const ConnectionId& id,
                                       void* context) {
        auto* request = static_cast<Request*>(context);
        if (request->magic == kMagic && (request->server != server || request->id != id)) {
          Fail("handler got a request of %s for %.*s", request->server.c_str(),
               static_cast<int>(server.size()), server.data());
        }
        g_handed_over.fetch_add(1, std::memory_order_relaxed);
        Deliver(request, "handler");
      };
      absl::StatusOr<std::unique_ptr<NetNameTable>> created =
          NetNameTable::Create(std::move(options));
      if (!created.ok()) {
        Fail("Create: %s", created.status().ToString().c_str());
        return nullptr;
      }
      return *std::move(created);
    };
    std::unique_ptr<NetNameTable> table = make_table();
    if (table == nullptr) return 1;
    std::uint64_t generations = 1;

    const auto threads = static_cast<std::size_t>(flags.threads);
    std::vector<ThreadState> states(threads);
    const Clock::time_point deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(flags.seconds));
    // Every thread leaves the loop in the same phase: the stop decision is made only in the
    // barrier's completion, so no completion ever runs while a thread releases its entries.
    const std::uint64_t ops_per_phase = flags.round * threads;
    std::uint64_t phases = 0;
    std::atomic<bool> stop{false};
    std::barrier checkpoint(flags.threads, [&]() noexcept {
      CheckOneEntryPerKey(states);
      ++phases;
      if (phases % flags.generation == 0) {
        // Every thread released everything before arriving: the table must be empty, and
        // is replaced by a fresh one (destruction waits for its retired bucket array).
        if (table->size() != 0) Fail("%zu entries left in a drained table", table->size());
        table = make_table();
        ++generations;
        if (table == nullptr) std::abort();
      }
      if (Clock::now() >= deadline || phases * ops_per_phase >= flags.ops) {
        stop.store(true, std::memory_order_relaxed);
      }
    });
    std::latch start(flags.threads);
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        std::mt19937_64 rng(g_seed * 0x9e3779b97f4a7c15ULL + t);
        ThreadState& state = states[t];
        start.arrive_and_wait();
        // relaxed: written only in the barrier's completion, which the barrier orders.
        while (!stop.load(std::memory_order_relaxed)) {
          for (std::uint64_t i = 0; i < flags.round; ++i) {
            const auto dice = rng() % 16;
            if (dice < 4) {
              Create(*table, state, flags, rng);
            } else if (dice < 12) {
              Lookup(*table, rng);
            } else if (dice < 13) {
              Remove(*table, state, rng);
            } else {
              Release(state, rng);
            }
          }
          // The last phase of a generation ends with every reference released.
          // `phases` is written only in the completion, which the barrier orders before this.
          if ((phases + 1) % flags.generation == 0) {
            while (!state.held.empty()) Release(state, rng);
          }
          checkpoint.arrive_and_wait();
        }
        while (!state.held.empty()) Release(state, rng);
      });
    }
    for (std::thread& worker : workers) worker.join();
    std::printf("netname_stress: %" PRIu64 " phases, %" PRIu64 " table generations\n", phases,
                generations);
    if (table->size() != 0) Fail("%zu entries left after every reference went", table->size());
  }
  const std::uint64_t associated = g_associated.load();
  const std::uint64_t delivered = g_taken_back.load() + g_handed_over.load();
  if (associated != delivered) {
    Fail("%" PRIu64 " requests associated, %" PRIu64 " delivered", associated, delivered);
  }
  std::printf("netname_stress: %" PRIu64 " requests: %" PRIu64 " taken back, %" PRIu64
              " handed to the teardown handler; %d violations\n",
              associated, g_taken_back.load(), g_handed_over.load(), g_violations.load());
  return g_violations.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace midatlas::stress

int main(int argc, char** argv) {
  using namespace midatlas::stress;
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  g_seed = flags.seed_given ? flags.seed : std::random_device{}();
  return Run(flags);
}
