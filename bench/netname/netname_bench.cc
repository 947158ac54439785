// netname_bench: NetName lookups per second, midatlas against the table a user would
// otherwise write, in one binary and one run.
//
//   midatlas   midatlas::NetNameTable::Lookup: lock-free, one hazard pointer per lookup
//   absl-map   absl::flat_hash_map<(folded name, connection ID), std::shared_ptr<Entry>>
//              under absl::Mutex, held shared (ReaderMutexLock) for the whole prefix walk
//
// Both do the same work per lookup: the RDBSS prefix walk of "\\srvS\shareJ\dir\file.txt"
// (probe "\\srvS": a server call, keep going; probe "\\srvS\shareJ": a net root, stop), case
// folded, keyed with the connection ID, and hand back a counted reference to the entry (a
// NetNameRef; a shared_ptr copy) that is dropped again.
//
//   BM_Lookup/<impl>/<entries>/<ids>   entries: 10, 1,000, 100,000 net roots (plus one server
//                                      call per 10); ids: 0 = every entry has the zero ID,
//                                      1 = four sessions each see their own copy of every
//                                      share (entries/4 names x 4 connection IDs)
//   threads 1, 2, 4, 8; items/s = lookups per second over all threads.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "midatlas/net_name_table.h"

namespace midatlas::bench {
namespace {

constexpr std::size_t kProbes = 4096;  // lookups drawn ahead of time, indexed by a counter
constexpr std::size_t kProbeStride = 1031;
constexpr std::uint32_t kSessions = 4;

std::uint64_t IdWord(const ConnectionId& id) {
  std::uint64_t word = 0;
  for (std::size_t i = 0; i < kConnectionIdBytes; ++i) {
    word |= std::uint64_t{id.bytes[i]} << (8 * i);
  }
  return word;
}

struct Probe {
  std::string path;
  ConnectionId id;
};

// The entries (names and IDs) of one size, and the lookups to run against them.
struct Workload {
  std::vector<std::pair<std::string, ConnectionId>> roots;
  std::vector<Probe> probes;
};

Workload MakeWorkload(std::size_t entries, bool with_ids) {
  Workload w;
  const std::size_t sessions = with_ids ? kSessions : 1;
  const std::size_t names = entries / sessions;
  for (std::size_t n = 0; n < names; ++n) {
    const std::string name =
        "\\\\Srv" + std::to_string(n / 10) + "\\Share" + std::to_string(n % 10);
    for (std::size_t s = 0; s < sessions; ++s) {
      const ConnectionId id =
          with_ids ? ConnectionIdFromSession(static_cast<std::uint32_t>(s + 1)) : ConnectionId{};
      w.roots.emplace_back(name, id);
    }
  }
  std::uint64_t x = 0x5EED;
  for (std::size_t i = 0; i < kProbes; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const auto& [name, id] = w.roots[static_cast<std::size_t>(x >> 33) % w.roots.size()];
    w.probes.push_back({name + "\\dir\\file.txt", id});
  }
  return w;
}

// ----------------------------------------------------------------------------------------
// The absl peer.

class AbslNetNames {
 public:
  struct Entry {
    std::string name;
    ConnectionId id;
    bool server_call = false;
  };

  void Insert(std::string_view name, const ConnectionId& id, bool server_call) {
    absl::MutexLock lock(&mutex_);
    std::string folded = Fold(name);
    map_.try_emplace(Key{folded, IdWord(id)},
                     std::make_shared<Entry>(Entry{std::string(name), id, server_call}));
  }

  // The same walk as NetNameTable::Lookup: shortest prefix first, a server call keeps going.
  std::shared_ptr<Entry> Lookup(std::string_view path, const ConnectionId& id,
                                std::size_t* prefix_length) const {
    thread_local std::string folded;
    folded.assign(path);
    for (char& c : folded) c = FoldChar(c);
    const std::uint64_t id_word = IdWord(id);
    absl::ReaderMutexLock lock(&mutex_);
    const Entry* server = nullptr;
    std::size_t server_length = 0;
    for (std::size_t i = 2; i <= folded.size(); ++i) {
      if (i != folded.size() && folded[i] != '\\' && folded[i] != ':') continue;
      auto it = map_.find(KeyView{std::string_view(folded).substr(0, i), id_word});
      if (it != map_.end()) {
        if (!it->second->server_call) {
          *prefix_length = i;
          return it->second;
        }
        server = it->second.get();
        server_length = i;
      }
      if (i < folded.size() && folded[i] == ':') break;
    }
    if (server == nullptr) return nullptr;
    *prefix_length = server_length;
    return map_.find(KeyView{std::string_view(folded).substr(0, server_length), id_word})->second;
  }

 private:
  struct Key {
    std::string name;
    std::uint64_t id;
  };
  struct KeyView {
    std::string_view name;
    std::uint64_t id;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(const Key& k) const { return (*this)(KeyView{k.name, k.id}); }
    std::size_t operator()(const KeyView& k) const {
      return absl::Hash<std::tuple<std::string_view, std::uint64_t>>{}(
          std::make_tuple(k.name, k.id));
    }
  };
  struct Eq {
    using is_transparent = void;
    static KeyView View(const Key& k) { return {k.name, k.id}; }
    static KeyView View(const KeyView& k) { return k; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return View(a).id == View(b).id && View(a).name == View(b).name;
    }
  };

  static char FoldChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
  static std::string Fold(std::string_view name) {
    std::string out(name);
    for (char& c : out) c = FoldChar(c);
    return out;
  }

  mutable absl::Mutex mutex_;
  absl::flat_hash_map<Key, std::shared_ptr<Entry>, Hash, Eq> map_;
};

// ----------------------------------------------------------------------------------------
// Fixtures, built once per (implementation, size, ids) before any timed loop.

struct MidatlasFixture {
  Workload workload;
  std::unique_ptr<NetNameTable> table;
  std::vector<NetNameRef> held;  // entries live as long as a reference does
};

struct AbslFixture {
  Workload workload;
  AbslNetNames table;
};

template <typename Fixture>
Fixture& GetFixture(std::size_t entries, bool with_ids) {
  static std::mutex mutex;
  static std::map<std::pair<std::size_t, bool>, std::unique_ptr<Fixture>> fixtures;
  const std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<Fixture>& slot = fixtures[{entries, with_ids}];
  if (slot == nullptr) {
    slot = std::make_unique<Fixture>();
    slot->workload = MakeWorkload(entries, with_ids);
    if constexpr (std::is_same_v<Fixture, MidatlasFixture>) {
      slot->table = *NetNameTable::Create({.atlas = {.max_mids = 50, .initial_mids = 50}});
      for (const auto& [name, id] : slot->workload.roots) {
        slot->held.push_back(*slot->table->FindOrCreateWithId(name, NetNameKind::kNetRoot, id));
      }
    } else {
      for (const auto& [name, id] : slot->workload.roots) {
        slot->table.Insert(name.substr(0, name.find('\\', 2)), id, /*server_call=*/true);
        slot->table.Insert(name, id, /*server_call=*/false);
      }
    }
  }
  return *slot;
}

void BM_LookupMidatlas(benchmark::State& state) {
  const auto entries = static_cast<std::size_t>(state.range(0));
  const bool with_ids = state.range(1) != 0;
  MidatlasFixture& f = GetFixture<MidatlasFixture>(entries, with_ids);
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * kProbeStride;
  std::size_t misses = 0;
  for (auto _ : state) {
    const Probe& probe = f.workload.probes[i++ & (kProbes - 1)];
    absl::StatusOr<NetNameMatch> match = f.table->Lookup(probe.path, probe.id);
    if (!match.ok()) ++misses;
    benchmark::DoNotOptimize(match);
  }
  if (misses != 0) state.SkipWithError("a lookup missed");
  state.SetItemsProcessed(state.iterations());
}

void BM_LookupAbsl(benchmark::State& state) {
  const auto entries = static_cast<std::size_t>(state.range(0));
  const bool with_ids = state.range(1) != 0;
  AbslFixture& f = GetFixture<AbslFixture>(entries, with_ids);
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * kProbeStride;
  std::size_t misses = 0;
  for (auto _ : state) {
    const Probe& probe = f.workload.probes[i++ & (kProbes - 1)];
    std::size_t prefix = 0;
    std::shared_ptr<AbslNetNames::Entry> entry = f.table.Lookup(probe.path, probe.id, &prefix);
    if (entry == nullptr) ++misses;
    benchmark::DoNotOptimize(entry);
    benchmark::DoNotOptimize(prefix);
  }
  if (misses != 0) state.SkipWithError("a lookup missed");
  state.SetItemsProcessed(state.iterations());
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t entries : {10, 1000, 100000}) {
    for (std::int64_t ids : {0, 1}) b->Args({entries, ids});
  }
  b->ArgNames({"entries", "ids"})->ThreadRange(1, 8)->UseRealTime();
}

BENCHMARK(BM_LookupMidatlas)->Name("BM_Lookup/midatlas")->Apply(Sizes);
BENCHMARK(BM_LookupAbsl)->Name("BM_Lookup/absl-map")->Apply(Sizes);

}  // namespace
}  // namespace midatlas::bench

BENCHMARK_MAIN();
