// Out-of-memory sweeps of the NetName table (support/allocation_failure_sweep.h), through its
// C++ API (midatlas/net_name_table.h) and its C API (midatlas/netname.h): a workload runs with
// allocation 1, 2, 3, ... failing until a run completes without reaching the failing
// allocation. What can fail: the table, its bucket arrays (at creation and at every doubling),
// entry nodes and their names, each server call's atlas and the maps it grows, the C table
// handle, and the messages of error statuses. Each run must
//   - answer every call with a documented result, and let no exception out: FindOrCreate ok,
//     or kResourceExhausted / STATUS_INSUFFICIENT_RESOURCES with the table unchanged (no
//     entry, no handle), kFailedPrecondition / STATUS_OBJECT_NAME_COLLISION for a kind clash,
//     kInvalidArgument / STATUS_OBJECT_NAME_INVALID or STATUS_INVALID_PARAMETER for a bad
//     name or kind, the provider's error unchanged; Lookup the longest-prefix entry, or
//     kNotFound / STATUS_NOT_FOUND, or kInvalidArgument / STATUS_OBJECT_NAME_INVALID;
//   - hand every context still associated in a server call's atlas to the outstanding-context
//     handler exactly once, when the server call's last reference goes;
//   - leave a table that, with memory back, takes every entry, finds each, fills an atlas to
//     exactly max_mids and empties again;
//   - leak nothing (operator new's live blocks; LeakSanitizer in the asan build).
// Each workload is swept twice: with only allocation N failing, and with N and every later
// one failing.
#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"
#include "midatlas/net_name_table.h"
#include "midatlas/netname.h"
#include "support/allocation_failure_sweep.h"
#include "support/failing_allocation.h"

namespace midatlas {
namespace {

using namespace std::string_view_literals;
using testing_support::AfterFailure;
using testing_support::FailingAllocations;
using testing_support::FailurePlan;
using testing_support::InjectionReport;
using testing_support::LeakCheck;
using testing_support::SweepAllocationFailures;
using testing_support::SweepSummary;
using testing_support::Violations;

// Every server call's atlas: four 16-slot leaves, so filling it grows three.
constexpr std::uint32_t kAtlasMaxMids = 64;
constexpr std::uint32_t kAtlasInitialMids = 16;
// Contexts each entry's workload associates in its connection's atlas: more than the first
// leaf holds, so the atlas grows.
constexpr std::uint32_t kContextsPerEntry = 6;

// The entries a workload creates, in order. Net roots bring their server call with them (the
// same session); the long names do not fit a string's own buffer, so their nodes allocate
// twice. With the four server calls they bring the table holds 17 entries: its bucket array,
// one bucket at creation, doubles five times.
struct EntrySpec {
  std::string_view name;
  NetNameKind kind;
  std::uint32_t session;
};
constexpr std::array<EntrySpec, 13> kEntries{{
    {"\\\\alpha"sv, NetNameKind::kServerCall, 1},
    {"\\\\alpha\\share0"sv, NetNameKind::kNetRoot, 1},
    {"\\\\alpha\\share1"sv, NetNameKind::kNetRoot, 1},
    {"\\\\alpha\\a-share-whose-name-is-too-long-for-a-small-string"sv, NetNameKind::kNetRoot, 1},
    {"\\\\alpha\\share0"sv, NetNameKind::kNetRoot, 2},  // another session: another connection
    {"\\\\alpha\\share0\\sub\\dir"sv, NetNameKind::kVNetRoot, 1},
    {"\\\\a-server-whose-name-is-long\\share"sv, NetNameKind::kNetRoot, 1},
    {"\\\\gamma\\s1"sv, NetNameKind::kNetRoot, 3},
    {"\\\\gamma\\s2"sv, NetNameKind::kVNetRoot, 3},
    {"\\\\gamma\\s3\\x"sv, NetNameKind::kVNetRoot, 3},
    {"\\\\delta"sv, NetNameKind::kServerCall, 4},
    {"\\\\delta\\d"sv, NetNameKind::kNetRoot, 4},
    {"\\\\epsilon\\e"sv, NetNameKind::kNetRoot, 5},
}};
constexpr std::size_t kEntryCount = kEntries.size();
constexpr std::size_t kShare0 = 1;  // the entry the kind clash names
constexpr std::size_t kShare1 = 2;  // the entry the workload removes
constexpr std::size_t kEntriesWithServerCalls = 17;
constexpr std::size_t kServerCalls = 6;
// Allocations a workload makes at least: a node per entry, and the first three maps of each
// server call's atlas (the atlas object, its hints, leaf 0).
constexpr long kLeastAllocationPoints = kEntriesWithServerCalls + 3 * kServerCalls;
// The path every lookup appends to an entry's name, and the request a provider refuses.
constexpr std::string_view kLookupTail = "\\dir\\file.txt:stream"sv;
constexpr std::uint32_t kRefusedSession = 99;
constexpr std::uint32_t kContexts = 2 * (kEntryCount * kContextsPerEntry + kAtlasMaxMids);

std::string_view ServerOf(std::string_view name) noexcept {
  return name.substr(0, name.find('\\', 2));
}

// What the table must hold: which entries the workload holds a reference to, and which of
// them it removed. A server call stays in the table while a reference to it or to one of its
// net roots is held, unless it was removed (the workload removes only net roots).
class TableModel {
 public:
  TableModel() : handed_out_(kContexts, 0) {}

  void Created(std::size_t i) noexcept { held_[i] = true; }
  void Removed(std::size_t i) noexcept { removed_[i] = true; }
  [[nodiscard]] bool held(std::size_t i) const noexcept { return held_[i]; }
  [[nodiscard]] bool in_table(std::size_t i) const noexcept { return held_[i] && !removed_[i]; }

  // The entry a lookup of `path` (no stream part past `limit`) must find: prefixes shortest
  // first, a server call remembered, a (virtual) net root ending the search (LOOKUP in
  // net_name_table.h). An empty name: none.
  struct Expected {
    std::string_view name;
    NetNameKind kind = NetNameKind::kServerCall;
  };
  [[nodiscard]] Expected Match(std::string_view path, std::uint32_t session) const noexcept {
    const std::size_t limit = path.find(':');
    const std::string_view names = path.substr(0, limit);
    Expected server;
    for (std::size_t end = names.find('\\', 2);; end = names.find('\\', end + 1)) {
      const std::string_view prefix = names.substr(0, end);
      for (std::size_t i = 0; i < kEntryCount; ++i) {
        if (kEntries[i].name != prefix || kEntries[i].session != session || !in_table(i)) continue;
        if (kEntries[i].kind != NetNameKind::kServerCall) return {prefix, kEntries[i].kind};
        server = {prefix, NetNameKind::kServerCall};
      }
      if (server.name.empty() && ServerInTable(prefix, session)) {
        server = {prefix, NetNameKind::kServerCall};
      }
      if (end == std::string_view::npos) break;
    }
    return server;
  }

  // Whether the server call (name, session) is in the table: held itself, or held by one of
  // its net roots.
  [[nodiscard]] bool ServerInTable(std::string_view name, std::uint32_t session) const noexcept {
    for (std::size_t i = 0; i < kEntryCount; ++i) {
      if (held_[i] && kEntries[i].session == session && ServerOf(kEntries[i].name) == name) {
        return true;
      }
    }
    return false;
  }

  // Contexts associated in some atlas, and handed to the outstanding-context handler.
  std::uint32_t NewContext() noexcept { return next_context_++; }
  [[nodiscard]] bool contexts_left() const noexcept { return next_context_ < kContexts; }
  void Associated() noexcept { ++associated; }
  void HandedOut(void* context) noexcept {
    const auto k = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(context) / 8 - 1);
    violations.Expect(k < next_context_ && handed_out_[k] == 0,
                      "a context was handed out twice, or was never associated", k);
    if (k < kContexts) ++handed_out_[k];
    ++handed;
  }
  void ResetEntries() noexcept {
    held_.fill(false);
    removed_.fill(false);
  }

  Violations violations;
  long associated = 0;
  long handed = 0;

 private:
  std::array<bool, kEntryCount> held_{};
  std::array<bool, kEntryCount> removed_{};
  std::vector<int> handed_out_;
  std::uint32_t next_context_ = 0;
};

void* ContextFor(std::uint32_t k) noexcept {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(k + 1) * 8);
}

// The model that outstanding-context handlers report to (a plain function, for the C API).
TableModel* g_sink = nullptr;

// The path a workload looks up for entry i, built before the run (it may not allocate).
std::vector<std::string> LookupPaths() {
  std::vector<std::string> paths;
  for (const EntrySpec& entry : kEntries) {
    paths.push_back(std::string(entry.name) + std::string(kLookupTail));
  }
  return paths;
}

// ------------------------------------------------------------------------------------------
// (d) The C++ API.

// The request context is a session number; kRefusedSession is refused with PermissionDenied.
class SessionProvider : public ConnectionIdProvider {
 public:
  absl::StatusOr<ConnectionId> GetConnectionId(void* request_context) override {
    const std::uint32_t session = *static_cast<const std::uint32_t*>(request_context);
    // The code alone: a message would allocate, and the provider's status comes back as is.
    if (session == kRefusedSession) return absl::Status(absl::StatusCode::kPermissionDenied, {});
    return ConnectionIdFromSession(session);
  }
};

// Everything a C++ run holds. The references live in arrays sized up front.
struct CppRun {
  std::unique_ptr<NetNameTable> table;
  std::array<NetNameRef, kEntryCount> refs;
  std::vector<std::string> paths = LookupPaths();
  TableModel model;
};

// Associates kContextsPerEntry contexts in the atlas `ref` reaches.
void UseAtlas(const NetNameRef& ref, TableModel& model) noexcept {
  MidAtlas* atlas = ref.atlas();
  model.violations.Expect(atlas != nullptr, "a held entry has no atlas");
  if (atlas == nullptr) return;
  for (std::uint32_t i = 0; i < kContextsPerEntry && model.contexts_left(); ++i) {
    const absl::StatusOr<Mid> mid = atlas->Associate(ContextFor(model.NewContext()));
    model.violations.Expect(mid.ok() || IsOutOfMemory(mid.status()),
                            "Associate in an entry's atlas gave an undocumented answer",
                            mid.status().raw_code());
    if (mid.ok()) model.Associated();
  }
}

// One FindOrCreate of entry i, through the provider or with the ID, checked against the model.
void CreateEntry(CppRun& run, std::size_t i) noexcept {
  Violations& v = run.model.violations;
  const EntrySpec& spec = kEntries[i];
  const std::size_t size_before = run.table->size();
  try {
    std::uint32_t session = spec.session;
    absl::StatusOr<NetNameRef> ref =
        i % 2 == 0 ? run.table->FindOrCreate(spec.name, spec.kind, &session)
                   : run.table->FindOrCreateWithId(spec.name, spec.kind,
                                                   ConnectionIdFromSession(spec.session));
    if (ref.ok()) {
      v.Expect(ref->name() == spec.name && ref->kind() == spec.kind &&
                   ref->connection_id() == ConnectionIdFromSession(spec.session),
               "FindOrCreate gave another entry", static_cast<long>(i));
      v.Expect(run.table->size() >= size_before && run.table->size() <= size_before + 2,
               "FindOrCreate added a wrong number of entries", static_cast<long>(i));
      run.refs[i] = *std::move(ref);
      run.model.Created(i);
      UseAtlas(run.refs[i], run.model);
      return;
    }
    v.Expect(IsOutOfMemory(ref.status()), "FindOrCreate gave an undocumented answer",
             ref.status().raw_code());
    v.Expect(run.table->size() == size_before, "a failed FindOrCreate changed the table",
             static_cast<long>(i));
  } catch (...) {
    v.Expect(false, "an exception escaped FindOrCreate", static_cast<long>(i));
  }
}

// Calls that must fail, and say why, whatever memory is left.
void RefusedCalls(CppRun& run) noexcept {
  Violations& v = run.model.violations;
  const std::size_t size_before = run.table->size();
  try {
    const ConnectionId id = ConnectionIdFromSession(1);
    absl::StatusOr<NetNameRef> clash = run.table->FindOrCreateWithId(
        kEntries[kShare0].name, NetNameKind::kVNetRoot, id);
    if (run.model.in_table(kShare0)) {
      v.Expect(clash.status().code() == absl::StatusCode::kFailedPrecondition,
               "a kind clash is FailedPrecondition", clash.status().raw_code());
    } else {
      // No net root of that name: the virtual net root is created (and released at once).
      v.Expect(clash.ok() || IsOutOfMemory(clash.status()), "FindOrCreate of a new kind",
               clash.status().raw_code());
    }
    const absl::StatusOr<NetNameRef> bad_name =
        run.table->FindOrCreateWithId("\\\\alpha\\\\x", NetNameKind::kNetRoot, id);
    v.Expect(bad_name.status().code() == absl::StatusCode::kInvalidArgument,
             "a bad name is InvalidArgument", bad_name.status().raw_code());
    const absl::StatusOr<NetNameRef> bad_kind =
        run.table->FindOrCreateWithId(kEntries[kShare0].name, NetNameKind::kServerCall, id);
    v.Expect(bad_kind.status().code() == absl::StatusCode::kInvalidArgument,
             "a kind that does not fit the name is InvalidArgument", bad_kind.status().raw_code());
    std::uint32_t refused = kRefusedSession;
    const absl::StatusOr<NetNameRef> no_id =
        run.table->FindOrCreate(kEntries[kShare0].name, NetNameKind::kNetRoot, &refused);
    v.Expect(no_id.status().code() == absl::StatusCode::kPermissionDenied,
             "the provider's error comes back unchanged", no_id.status().raw_code());
  } catch (...) {
    v.Expect(false, "an exception escaped a refused FindOrCreate");
  }
  v.Expect(run.table->size() == size_before, "a refused FindOrCreate changed the table",
           static_cast<long>(run.table->size()));
}

// Every entry's lookup path finds what the model says, or NotFound.
void Lookups(CppRun& run) noexcept {
  Violations& v = run.model.violations;
  try {
    for (std::size_t i = 0; i < kEntryCount; ++i) {
      const std::string_view path = run.paths[i];
      const ConnectionId id = ConnectionIdFromSession(kEntries[i].session);
      const TableModel::Expected expected = run.model.Match(path, kEntries[i].session);
      const absl::StatusOr<NetNameMatch> match = run.table->Lookup(path, id);
      if (expected.name.empty()) {
        v.Expect(absl::IsNotFound(match.status()), "Lookup of a path no entry prefixes",
                 static_cast<long>(i));
        continue;
      }
      v.Expect(match.ok() && match->entry.name() == expected.name &&
                   match->entry.kind() == expected.kind && match->entry.connection_id() == id &&
                   match->remaining == path.substr(expected.name.size()),
               "Lookup found another entry", static_cast<long>(i));
    }
    const absl::StatusOr<NetNameMatch> nobody =
        run.table->Lookup("\\\\nobody\\share", ConnectionIdFromSession(1));
    v.Expect(absl::IsNotFound(nobody.status()), "Lookup of an unknown server is NotFound",
             nobody.status().raw_code());
    const absl::StatusOr<NetNameMatch> bad = run.table->Lookup("\\alpha", ConnectionId{});
    v.Expect(bad.status().code() == absl::StatusCode::kInvalidArgument,
             "Lookup of a bad path is InvalidArgument", bad.status().raw_code());
  } catch (...) {
    v.Expect(false, "an exception escaped Lookup");
  }
}

// The workload (d): create the table, create every entry (the buckets double on the way),
// refused calls, lookups, a removal, then every reference goes (each server call's atlas is
// drained into the handler).
void CppWorkload(CppRun& run, NetNameTable::Options& options) noexcept {
  Violations& v = run.model.violations;
  try {
    absl::StatusOr<std::unique_ptr<NetNameTable>> table =
        NetNameTable::Create(std::move(options));
    if (!table.ok()) {
      v.Expect(IsOutOfMemory(table.status()), "NetNameTable::Create gave an undocumented answer",
               table.status().raw_code());
      return;
    }
    run.table = *std::move(table);
  } catch (...) {
    v.Expect(false, "an exception escaped NetNameTable::Create");
    return;
  }
  for (std::size_t i = 0; i < kEntryCount; ++i) CreateEntry(run, i);
  RefusedCalls(run);
  Lookups(run);
  try {
    if (run.model.held(kShare1)) {
      v.Expect(run.table->Remove(run.refs[kShare1]), "Remove of an entry in the table");
      v.Expect(!run.table->Remove(run.refs[kShare1]), "a second Remove");
      v.Expect(!run.refs[kShare1].in_table(), "in_table after Remove");
      run.model.Removed(kShare1);
    }
  } catch (...) {
    v.Expect(false, "an exception escaped Remove or in_table");
  }
  Lookups(run);
  // Net roots first, so that their server calls go last, with their atlases.
  for (std::size_t i = kEntryCount; i-- > 0;) run.refs[i] = NetNameRef();
  run.model.ResetEntries();
  v.Expect(run.table->size() == 0, "entries left after every reference went",
           static_cast<long>(run.table->size()));
  v.Expect(run.model.handed == run.model.associated,
           "the handler did not receive every outstanding context once", run.model.handed);
}

// With memory back: the table takes every entry, finds each, one atlas fills to exactly
// max_mids, and everything goes again.
void ExpectCppTableFullyUsable(CppRun& run) {
  ASSERT_EQ(run.table->size(), 0U);
  for (std::size_t i = 0; i < kEntryCount; ++i) {
    CreateEntry(run, i);
    ASSERT_TRUE(run.model.held(i)) << kEntries[i].name << ": " << run.model.violations.Describe();
  }
  EXPECT_EQ(run.table->size(), kEntriesWithServerCalls);
  EXPECT_GE(run.table->bucket_count(), kEntriesWithServerCalls);
  Lookups(run);
  MidAtlas* atlas = run.refs[0].atlas();
  std::uint32_t filled = atlas->mids_in_use();
  while (true) {
    const absl::StatusOr<Mid> mid = atlas->Associate(ContextFor(run.model.NewContext()));
    if (IsAllMidsInUse(mid.status())) break;
    ASSERT_TRUE(mid.ok()) << mid.status();
    run.model.Associated();
    ++filled;
  }
  EXPECT_EQ(filled, kAtlasMaxMids);
  for (std::size_t i = kEntryCount; i-- > 0;) run.refs[i] = NetNameRef();
  run.model.ResetEntries();
  EXPECT_EQ(run.table->size(), 0U);
  EXPECT_EQ(run.model.handed, run.model.associated);
  EXPECT_EQ(run.model.violations.count(), 0) << run.model.violations.Describe();
}

InjectionReport CppRunUnder(const FailurePlan& plan) {
  const LeakCheck leak_check;
  InjectionReport report;
  {
    CppRun run;
    g_sink = &run.model;
    NetNameTable::Options options;
    options.atlas = {.max_mids = kAtlasMaxMids, .initial_mids = kAtlasInitialMids};
    options.initial_buckets = 1;
    options.provider = std::make_shared<SessionProvider>();
    options.outstanding_context = [](std::string_view, const ConnectionId&, void* context) {
      g_sink->HandedOut(context);
    };
    {
      FailingAllocations injection(plan);
      CppWorkload(run, options);
      injection.Disarm();
      report = injection.report();
    }
    EXPECT_EQ(run.model.violations.count(), 0) << run.model.violations.Describe();
    if (run.table != nullptr) ExpectCppTableFullyUsable(run);
    for (NetNameRef& ref : run.refs) ref = NetNameRef();  // an assertion may have stopped early
    run.table.reset();
    g_sink = nullptr;
  }
  leak_check.ExpectNothingLeaked();
  return report;
}

TEST(NetNameTableAllocationFailureSweep,
     EveryCallAnswersAndTheTableRecoversWhicheverAllocationFails) {
  const SweepSummary summary = SweepAllocationFailures(
      "NetName C++, one allocation fails", {.after = AfterFailure::kSucceed}, 1000, CppRunUnder);
  EXPECT_GE(summary.runs, kLeastAllocationPoints);
}

TEST(NetNameTableAllocationFailureSweep, EveryCallAnswersAndTheTableRecoversWhenMemoryRunsOut) {
  const SweepSummary summary = SweepAllocationFailures(
      "NetName C++, memory runs out", {.after = AfterFailure::kFail}, 1000, CppRunUnder);
  EXPECT_GE(summary.runs, kLeastAllocationPoints);
}

// ------------------------------------------------------------------------------------------
// (e) The C API, with its table handle.

constexpr NTSTATUS kAccessDenied = static_cast<NTSTATUS>(0xC0000022UL);

// The request context is a session number; kRefusedSession is refused.
NTSTATUS GetConnectionId(PVOID rx_context, PRX_CONNECTION_ID unique_id) {
  const ULONG session = *static_cast<const ULONG*>(rx_context);
  if (session == kRefusedSession) return kAccessDenied;
  unique_id->SessionID = session;
  return STATUS_SUCCESS;
}

VOID HandOut(PVOID context) { g_sink->HandedOut(context); }

RX_NET_NAME_TYPE TypeOf(NetNameKind kind) {
  switch (kind) {
    case NetNameKind::kServerCall:
      return RxNetNameServerCall;
    case NetNameKind::kNetRoot:
      return RxNetNameNetRoot;
    case NetNameKind::kVNetRoot:
      return RxNetNameVNetRoot;
  }
  return RxNetNameInvalid;
}

struct CRun {
  PRX_NET_NAME_TABLE table = nullptr;
  std::array<PRX_NET_NAME, kEntryCount> handles{};
  std::vector<std::string> paths = LookupPaths();
  TableModel model;
};

std::string_view NameOf(PRX_NET_NAME handle) {
  size_t length = 0;
  const char* name = RxGetNetNameName(handle, &length);
  return {name, length};
}

void UseAtlas(PRX_NET_NAME handle, TableModel& model) noexcept {
  PRX_MID_ATLAS atlas = RxGetNetNameMidAtlas(handle);
  model.violations.Expect(atlas != nullptr, "a held entry has no atlas");
  if (atlas == nullptr) return;
  for (std::uint32_t i = 0; i < kContextsPerEntry && model.contexts_left(); ++i) {
    USHORT mid = 0;
    const NTSTATUS status = RxAssociateContextWithMid(atlas, ContextFor(model.NewContext()), &mid);
    model.violations.Expect(status == STATUS_SUCCESS || status == STATUS_INSUFFICIENT_RESOURCES,
                            "RxAssociateContextWithMid gave an undocumented answer", status);
    if (status == STATUS_SUCCESS) model.Associated();
  }
}

void CreateEntry(CRun& run, std::size_t i) noexcept {
  Violations& v = run.model.violations;
  const EntrySpec& spec = kEntries[i];
  try {
    ULONG session = spec.session;
    PRX_NET_NAME handle = nullptr;
    const NTSTATUS status = RxFindOrCreateNetName(run.table, &session, spec.name.data(),
                                                  spec.name.size(), TypeOf(spec.kind), &handle);
    if (status == STATUS_SUCCESS) {
      v.Expect(handle != nullptr && NameOf(handle) == spec.name &&
                   RxGetNetNameType(handle) == TypeOf(spec.kind),
               "RxFindOrCreateNetName gave another entry", static_cast<long>(i));
      run.handles[i] = handle;
      run.model.Created(i);
      UseAtlas(handle, run.model);
      return;
    }
    v.Expect(status == STATUS_INSUFFICIENT_RESOURCES && handle == nullptr,
             "RxFindOrCreateNetName gave an undocumented answer", status);
    // Nothing was created: a lookup of the name finds at most a shorter prefix.
    PRX_NET_NAME found = nullptr;
    size_t prefix = 0;
    RX_CONNECTION_ID id;
    std::memset(&id, 0, sizeof(id));
    id.SessionID = spec.session;
    const NTSTATUS looked = RxLookupNetName(run.table, spec.name.data(), spec.name.size(), &id,
                                            &found, &prefix);
    v.Expect(looked == STATUS_NOT_FOUND || (looked == STATUS_SUCCESS && prefix < spec.name.size()),
             "a failed RxFindOrCreateNetName left an entry", static_cast<long>(i));
    RxDereferenceNetName(found);
  } catch (...) {
    v.Expect(false, "an exception escaped RxFindOrCreateNetName", static_cast<long>(i));
  }
}

void RefusedCalls(CRun& run) noexcept {
  Violations& v = run.model.violations;
  try {
    ULONG session = 1;
    const std::string_view share0 = kEntries[kShare0].name;
    PRX_NET_NAME handle = nullptr;
    const NTSTATUS clash = RxFindOrCreateNetName(run.table, &session, share0.data(),
                                                 share0.size(), RxNetNameVNetRoot, &handle);
    if (run.model.in_table(kShare0)) {
      v.Expect(clash == STATUS_OBJECT_NAME_COLLISION && handle == nullptr,
               "a type clash is STATUS_OBJECT_NAME_COLLISION", clash);
    } else {
      v.Expect(clash == STATUS_SUCCESS || clash == STATUS_INSUFFICIENT_RESOURCES,
               "RxFindOrCreateNetName of a new type", clash);
      RxDereferenceNetName(handle);
    }
    const std::string_view bad = "\\\\alpha\\\\x"sv;
    v.Expect(RxFindOrCreateNetName(run.table, &session, bad.data(), bad.size(), RxNetNameNetRoot,
                                   &handle) == STATUS_OBJECT_NAME_INVALID,
             "a bad name is STATUS_OBJECT_NAME_INVALID");
    v.Expect(RxFindOrCreateNetName(run.table, &session, share0.data(), share0.size(),
                                   RxNetNameServerCall, &handle) == STATUS_INVALID_PARAMETER,
             "a type that does not fit the name is STATUS_INVALID_PARAMETER");
    ULONG refused = kRefusedSession;
    v.Expect(RxFindOrCreateNetName(run.table, &refused, share0.data(), share0.size(),
                                   RxNetNameNetRoot, &handle) == kAccessDenied,
             "the provider's status comes back unchanged");
  } catch (...) {
    v.Expect(false, "an exception escaped a refused RxFindOrCreateNetName");
  }
}

void Lookups(CRun& run) noexcept {
  Violations& v = run.model.violations;
  try {
    for (std::size_t i = 0; i < kEntryCount; ++i) {
      const std::string_view path = run.paths[i];
      RX_CONNECTION_ID id;
      std::memset(&id, 0, sizeof(id));
      id.SessionID = kEntries[i].session;
      const TableModel::Expected expected = run.model.Match(path, kEntries[i].session);
      PRX_NET_NAME found = nullptr;
      size_t prefix = 0;
      const NTSTATUS status =
          RxLookupNetName(run.table, path.data(), path.size(), &id, &found, &prefix);
      if (expected.name.empty()) {
        v.Expect(status == STATUS_NOT_FOUND && found == nullptr,
                 "RxLookupNetName of a path no entry prefixes", static_cast<long>(i));
      } else {
        v.Expect(status == STATUS_SUCCESS && NameOf(found) == expected.name &&
                     RxGetNetNameType(found) == TypeOf(expected.kind) &&
                     prefix == expected.name.size(),
                 "RxLookupNetName found another entry", static_cast<long>(i));
      }
      RxDereferenceNetName(found);
    }
    PRX_NET_NAME found = nullptr;
    size_t prefix = 0;
    const std::string_view nobody = "\\\\nobody\\share"sv;
    v.Expect(RxLookupNetName(run.table, nobody.data(), nobody.size(), nullptr, &found, &prefix) ==
                 STATUS_NOT_FOUND,
             "RxLookupNetName of an unknown server is STATUS_NOT_FOUND");
    const std::string_view bad = "\\alpha"sv;
    v.Expect(RxLookupNetName(run.table, bad.data(), bad.size(), nullptr, &found, &prefix) ==
                 STATUS_OBJECT_NAME_INVALID,
             "RxLookupNetName of a bad path is STATUS_OBJECT_NAME_INVALID");
  } catch (...) {
    v.Expect(false, "an exception escaped RxLookupNetName");
  }
}

void ReleaseAll(CRun& run) noexcept {
  for (std::size_t i = kEntryCount; i-- > 0;) {
    RxDereferenceNetName(run.handles[i]);
    run.handles[i] = nullptr;
  }
  run.model.ResetEntries();
}

// The workload (e): the same as (d), through the C API.
void CWorkload(CRun& run) noexcept {
  Violations& v = run.model.violations;
  try {
    const NTSTATUS created = RxCreateNetNameTable(GetConnectionId, kAtlasMaxMids,
                                                  kAtlasInitialMids, 0, HandOut, &run.table);
    v.Expect(created == STATUS_SUCCESS || (created == STATUS_INSUFFICIENT_RESOURCES &&
                                           run.table == nullptr),
             "RxCreateNetNameTable gave an undocumented answer", created);
  } catch (...) {
    v.Expect(false, "an exception escaped RxCreateNetNameTable");
  }
  if (run.table == nullptr) return;
  for (std::size_t i = 0; i < kEntryCount; ++i) CreateEntry(run, i);
  RefusedCalls(run);
  Lookups(run);
  try {
    if (run.model.held(kShare1)) {
      PRX_NET_NAME share1 = run.handles[kShare1];
      RxReferenceNetName(share1);
      v.Expect(RxRemoveNetName(run.table, share1) == STATUS_SUCCESS, "RxRemoveNetName");
      v.Expect(RxRemoveNetName(run.table, share1) == STATUS_NOT_FOUND, "a second RxRemoveNetName");
      RxDereferenceNetName(share1);
      run.model.Removed(kShare1);
    }
  } catch (...) {
    v.Expect(false, "an exception escaped RxRemoveNetName");
  }
  Lookups(run);
  ReleaseAll(run);
  v.Expect(run.model.handed == run.model.associated,
           "the handler did not receive every outstanding context once", run.model.handed);
}

void ExpectCTableFullyUsable(CRun& run) {
  for (std::size_t i = 0; i < kEntryCount; ++i) {
    CreateEntry(run, i);
    ASSERT_TRUE(run.model.held(i)) << kEntries[i].name << ": " << run.model.violations.Describe();
  }
  Lookups(run);
  PRX_MID_ATLAS atlas = RxGetNetNameMidAtlas(run.handles[0]);
  std::uint32_t filled = RxGetNumberOfMidsInUse(atlas);
  while (true) {
    USHORT mid = 0;
    const NTSTATUS status =
        RxAssociateContextWithMid(atlas, ContextFor(run.model.NewContext()), &mid);
    if (status == STATUS_UNSUCCESSFUL) break;
    ASSERT_EQ(status, STATUS_SUCCESS);
    run.model.Associated();
    ++filled;
  }
  EXPECT_EQ(filled, kAtlasMaxMids);
  ReleaseAll(run);
  EXPECT_EQ(run.model.handed, run.model.associated);
  // Nothing is left: every lookup misses.
  Lookups(run);
  EXPECT_EQ(run.model.violations.count(), 0) << run.model.violations.Describe();
}

InjectionReport CRunUnder(const FailurePlan& plan) {
  const LeakCheck leak_check;
  InjectionReport report;
  {
    CRun run;
    g_sink = &run.model;
    {
      FailingAllocations injection(plan);
      CWorkload(run);
      injection.Disarm();
      report = injection.report();
    }
    EXPECT_EQ(run.model.violations.count(), 0) << run.model.violations.Describe();
    if (run.table != nullptr) ExpectCTableFullyUsable(run);
    ReleaseAll(run);  // an assertion may have stopped early
    RxDestroyNetNameTable(run.table);
    g_sink = nullptr;
  }
  leak_check.ExpectNothingLeaked();
  return report;
}

TEST(NetNameCAllocationFailureSweep, EveryCallAnswersAndTheTableRecoversWhicheverAllocationFails) {
  const SweepSummary summary = SweepAllocationFailures(
      "NetName C, one allocation fails", {.after = AfterFailure::kSucceed}, 1000, CRunUnder);
  EXPECT_GE(summary.runs, kLeastAllocationPoints + 1) << "and the table handle";
}

TEST(NetNameCAllocationFailureSweep, EveryCallAnswersAndTheTableRecoversWhenMemoryRunsOut) {
  const SweepSummary summary = SweepAllocationFailures(
      "NetName C, memory runs out", {.after = AfterFailure::kFail}, 1000, CRunUnder);
  EXPECT_GE(summary.runs, kLeastAllocationPoints + 1) << "and the table handle";
}

}  // namespace
}  // namespace midatlas
