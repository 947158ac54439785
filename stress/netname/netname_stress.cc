// netname_stress: racing find-or-create, lookup, remove and last releases on one NetName table
// while every connection's atlas holds contexts, so that entries are created, found, removed,
// torn down (their atlases drained) and freed under concurrent lock-free readers.
//
//   netname_stress [--threads=N] [--seconds=S] [--ops=N] [--seed=N] [--round=N] [--hold=N]
//                  [--generation=N]
//
// Run by the stress harness (stress/harness/harness.h): seeded (the seed is printed at the
// start and with every failure; without --seed one is drawn at random), bounded both by time
// and by total operations; threads start on a latch and meet at a barrier every --round
// operations, never sleeping. Exit status: 0 pass, 1 violation, 2 usage.
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
#include <atomic>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "harness/harness.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/net_name_table.h"

namespace midatlas::stress {
namespace {

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
  std::mt19937_64 rng;
  std::vector<Held> held;
  Local local;
};

void TakeBack(Held& held, Local& local) {
  for (const auto& [mid, request] : held.requests) {
    absl::StatusOr<void*> back = held.ref.atlas()->MapAndDissociate(mid);
    ++local.checks;
    if (!back.ok() || *back != request) {
      Fail("MapAndDissociate of our own MID %u did not return our request", unsigned{mid});
      continue;
    }
    g_taken_back.fetch_add(1, std::memory_order_relaxed);
    Deliver(request, "owner");
  }
  held.requests.clear();
}

void Create(NetNameTable& table, ThreadState& state, const Flags& flags) {
  std::mt19937_64& rng = state.rng;
  if (state.held.size() >= flags.hold) return;
  const EntryName entry = RandomEntryName(rng);
  std::uint32_t session = static_cast<std::uint32_t>(rng() % 4);
  absl::StatusOr<NetNameRef> ref = table.FindOrCreate(entry.name, entry.kind, &session);
  ++state.local.checks;
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
    ++state.local.refused;
    if (!IsAllMidsInUse(mid.status())) Fail("Associate: %s", mid.status().ToString().c_str());
  }
  state.held.push_back(std::move(held));
}

void Lookup(const NetNameTable& table, ThreadState& state) {
  std::mt19937_64& rng = state.rng;
  const std::string path = RandomPath(rng);
  const ConnectionId id = IdOf(static_cast<std::uint32_t>(rng() % 3));
  absl::StatusOr<NetNameMatch> match = table.Lookup(path, id);
  ++state.local.checks;
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

void Release(ThreadState& state) {
  std::mt19937_64& rng = state.rng;
  if (state.held.empty()) return;
  const std::size_t at = static_cast<std::size_t>(rng() % state.held.size());
  Held& held = state.held[at];
  if (rng() % 2 == 0) TakeBack(held, state.local);  // else they stay outstanding for the teardown
  held.requests.clear();
  state.held.erase(state.held.begin() + static_cast<std::ptrdiff_t>(at));
}

void Remove(NetNameTable& table, ThreadState& state) {
  std::mt19937_64& rng = state.rng;
  if (state.held.empty()) return;
  static_cast<void>(
      table.Remove(state.held[static_cast<std::size_t>(rng() % state.held.size())].ref));
}

// With no call running: references to entries still in the table agree per key.
void CheckOneEntryPerKey(std::vector<ThreadState>& states, Local& local) {
  std::map<std::tuple<std::string, std::string>, NetNameRef> seen;
  for (ThreadState& state : states) {
    for (Held& held : state.held) {
      if (!held.ref.in_table()) continue;
      ++local.checks;
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

// A fresh table starts with 2 buckets, so every table generation grows through several
// resizes while the threads race (old bucket arrays retired under readers, NN5/NN6).
std::unique_ptr<NetNameTable> MakeTable() {
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
  absl::StatusOr<std::unique_ptr<NetNameTable>> created = NetNameTable::Create(std::move(options));
  if (!created.ok()) {
    Fail("Create: %s", created.status().ToString().c_str());
    return nullptr;
  }
  return *std::move(created);
}

void RunNetName(const Flags& flags, Tally& tally) {
  Local main_local;
  std::uint64_t generations = 1;
  {
    std::unique_ptr<NetNameTable> table = MakeTable();
    if (table == nullptr) return;

    std::vector<ThreadState> states;
    for (int t = 0; t < flags.threads; ++t) states.push_back({RngFor(flags.seed, t), {}, {}});
    const Bounds bounds(flags);
    // Every thread leaves the loop in the same phase: the stop decision is made only in the
    // barrier's completion, so no completion ever runs while a thread releases its entries.
    const std::uint64_t ops_per_phase =
        std::uint64_t{flags.round} * static_cast<std::uint64_t>(flags.threads);
    std::uint64_t phases = 0;  // written only in the checkpoint, which the barrier orders
    RunPhases(
        flags.threads, 1,
        [&](int t, int) {
          ThreadState& state = states[static_cast<std::size_t>(t)];
          for (std::uint32_t i = 0; i < flags.round; ++i) {
            ++state.local.ops;
            const auto dice = state.rng() % 16;
            if (dice < 4) {
              Create(*table, state, flags);
            } else if (dice < 12) {
              Lookup(*table, state);
            } else if (dice < 13) {
              Remove(*table, state);
            } else {
              Release(state);
            }
          }
          // The last phase of a generation ends with every reference released.
          if ((phases + 1) % flags.generation == 0) {
            while (!state.held.empty()) Release(state);
          }
        },
        [&](int) {
          CheckOneEntryPerKey(states, main_local);
          ++phases;
          if (phases % flags.generation == 0) {
            // Every thread released everything before arriving: the table must be empty, and
            // is replaced by a fresh one (destruction waits for its retired bucket array).
            ++main_local.checks;
            if (table->size() != 0) Fail("%zu entries left in a drained table", table->size());
            table = MakeTable();
            ++generations;
            if (table == nullptr) std::abort();
          }
          return bounds.Done(phases * ops_per_phase);
        },
        [&](int t) {
          ThreadState& state = states[static_cast<std::size_t>(t)];
          while (!state.held.empty()) Release(state);
        });
    for (const ThreadState& state : states) state.local.FlushTo(tally);
    tally.rounds.fetch_add(phases, std::memory_order_relaxed);
    main_local.checks += 1;
    if (table->size() != 0) Fail("%zu entries left after every reference went", table->size());
  }
  const std::uint64_t associated = g_associated.load(std::memory_order_relaxed);
  const std::uint64_t delivered = g_taken_back.load(std::memory_order_relaxed) +
                                  g_handed_over.load(std::memory_order_relaxed);
  main_local.checks += 1;
  if (associated != delivered) {
    Fail("%" PRIu64 " requests associated, %" PRIu64 " delivered", associated, delivered);
  }
  main_local.FlushTo(tally);
  tally.Note("generations", generations);
  tally.Note("requests", associated);
  tally.Note("taken_back", g_taken_back.load(std::memory_order_relaxed));
  tally.Note("handed_to_teardown", g_handed_over.load(std::memory_order_relaxed));
}

constexpr Scenario kScenarios[] = {{"netname", &RunNetName}};

}  // namespace
}  // namespace midatlas::stress

int main(int argc, char** argv) {
  using namespace midatlas::stress;
  return Main({.name = "netname_stress",
               .defaults = {.threads = 8, .seconds = 3.0, .ops = 2'000'000, .round = 500,
                            .hold = 6, .generation = 5},
               .sizes = "round hold generation",
               .scenarios = kScenarios},
              argc, argv);
}
