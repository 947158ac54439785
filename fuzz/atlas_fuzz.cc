// Model-based fuzz target for the atlas: the input decodes into an atlas shape and a sequence
// of API calls (C++ and C), with arguments that are often bad on purpose - free MIDs, MIDs at
// and beyond max, stale generations, excluded values, null contexts and out-pointers, odd
// shapes - and every result is compared with a plain sequential model. Single-threaded:
// concurrency is the job of the stress, chaos and linearizability tests; this target explores
// argument space and shapes, under ASan and UBSan.
//
//   RunC    the original C API (midatlax.h)
//   RunCpp  the original MidAtlas calls; the model is a map from MID to context
//   RunEx   the extensions through either API (midatlax_ex.h, or MidAtlas): generation
//           bits, reserve, excluded values, discards and late responses, releases, async
//           waits (wait blocks or handles) and cancels, one-try waits, iterate-and-remove and
//           destruction with waiters queued; the model (ExModel) knows which MID values may be
//           handed out, which waiter each freed MID reaches and what every routine, callback,
//           iterator and destructor receives, in order
//
//   input = selector, shape bytes, then one call per step (FuzzedDataProvider)
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "midatlas/mid_atlas.h"
#include "absl/time/time.h"
#include "midatlas/midatlax.h"
#include "midatlas/midatlax_ex.h"

namespace {

using midatlas::Mid;
using midatlas::MidAtlas;

[[noreturn]] void Violation(const char* what) {
  std::fprintf(stderr, "atlas_fuzz: model mismatch: %s\n", what);
  std::abort();
}

void Expect(bool condition, const char* what) {
  if (!condition) Violation(what);
}

void* AsContext(std::uint64_t value) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(value));
}

std::uint32_t PickMax(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return 1;
    case 1: return 2;
    case 2: return 16;
    case 3: return 17;
    case 4: return 50;
    case 5: return 65535;
    case 6: return in.ConsumeIntegralInRange<std::uint32_t>(0, 70000);  // bad ones included
    default: return in.ConsumeIntegralInRange<std::uint32_t>(1, 300);
  }
}

// A MID argument: held ones, free ones, the edges of the range and beyond it.
Mid PickMid(FuzzedDataProvider& in, const std::map<Mid, void*>& held, std::uint32_t max) {
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0:
    case 1:
      if (!held.empty()) {
        auto it = held.begin();
        std::advance(it, in.ConsumeIntegralInRange<std::size_t>(0, held.size() - 1));
        return it->first;
      }
      return 0;
    case 2: return static_cast<Mid>(max - 1);
    case 3: return static_cast<Mid>(max);  // max == 65536 is impossible: max <= 65535
    default: return in.ConsumeIntegral<Mid>();
  }
}

void RunCpp(FuzzedDataProvider& in) {
  const std::uint32_t max = PickMax(in);
  // initial_mids: mostly small (cheap inputs, many subordinate maps), sometimes max (one
  // big first map) or anything, bad values included.
  std::uint32_t initial = 1;
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: initial = in.ConsumeIntegralInRange<std::uint32_t>(0, 70000); break;
    case 1: initial = max; break;
    default: initial = in.ConsumeIntegralInRange<std::uint32_t>(1, std::clamp<std::uint32_t>(max, 1, 300));
  }
  std::multiset<std::uint64_t> destroyed;
  absl::StatusOr<MidAtlas> created = MidAtlas::Create(
      {.max_mids = max, .initial_mids = initial,
       .context_destructor = [&destroyed](void* p) {
         destroyed.insert(reinterpret_cast<std::uintptr_t>(p));
       }});
  const bool valid_shape = max >= 1 && max <= 65535 && initial >= 1 && initial <= max;
  Expect(created.ok() == valid_shape, "Create accepted or refused the wrong shape");
  if (!created.ok()) {
    Expect(absl::IsInvalidArgument(created.status()), "bad shape is not InvalidArgument");
    return;
  }
  std::optional<MidAtlas> atlas = *std::move(created);
  std::map<Mid, void*> held;  // the model
  std::uint64_t next_context = 1;
  auto fresh = [&next_context]() { return AsContext(next_context++ * 2 + 1); };

  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange<int>(0, 9)) {
      case 0:
      case 1: {  // Associate, sometimes with a null context
        void* context = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : fresh();
        absl::StatusOr<Mid> mid = atlas->Associate(context);
        if (context == nullptr) {
          Expect(absl::IsInvalidArgument(mid.status()), "Associate(null) not InvalidArgument");
        } else if (held.size() == max) {
          Expect(midatlas::IsAllMidsInUse(mid.status()), "full atlas did not refuse");
        } else {
          Expect(mid.ok(), "Associate failed with free MIDs");
          Expect(*mid < max, "Associate returned a MID >= max");
          Expect(held.count(*mid) == 0, "Associate returned a held MID");
          held[*mid] = context;
        }
        break;
      }
      case 2:
      case 3: {  // Map
        const Mid mid = PickMid(in, held, max);
        auto it = held.find(mid);
        Expect(atlas->Map(mid) == (it == held.end() ? nullptr : it->second), "Map mismatch");
        break;
      }
      case 4:
      case 5: {  // MapAndDissociate, of held and free MIDs alike
        const Mid mid = PickMid(in, held, max);
        absl::StatusOr<void*> got = atlas->MapAndDissociate(mid);
        auto it = held.find(mid);
        if (it == held.end()) {
          Expect(absl::IsInvalidArgument(got.status()), "dissociating a free MID succeeded");
        } else {
          Expect(got.ok() && *got == it->second, "MapAndDissociate mismatch");
          held.erase(it);
        }
        break;
      }
      case 6: {  // Reassociate, sometimes with a null context
        const Mid mid = PickMid(in, held, max);
        void* context = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? nullptr : fresh();
        const absl::Status status = atlas->Reassociate(mid, context);
        auto it = held.find(mid);
        if (it == held.end() || context == nullptr) {
          Expect(absl::IsInvalidArgument(status), "bad Reassociate not InvalidArgument");
        } else {
          Expect(status.ok(), "Reassociate of a held MID failed");
          it->second = context;
        }
        break;
      }
      case 7: {  // counts and statistics
        Expect(atlas->mids_in_use() == held.size(), "mids_in_use mismatch");
        const midatlas::AtlasStats stats = atlas->stats();
        Expect(stats.mids_in_use == held.size(), "stats().mids_in_use mismatch");
        Expect(stats.leaf_maps >= 1 && stats.directory_maps >= 1, "first maps missing");
        break;
      }
      case 8: {  // a burst: many associations at once, to grow subordinate maps
        const int count = in.ConsumeIntegralInRange<int>(1, 600);
        for (int i = 0; i < count && held.size() < max; ++i) {
          void* context = fresh();
          absl::StatusOr<Mid> mid = atlas->Associate(context);
          Expect(mid.ok() && *mid < max && held.count(*mid) == 0, "burst Associate mismatch");
          held[*mid] = context;
        }
        break;
      }
      default: {  // IterateAndRemove, or leave the rest to destruction
        if (in.ConsumeBool()) {
          std::map<Mid, void*> expected = held;
          std::multiset<void*> seen;
          const std::size_t removed =
              atlas->IterateAndRemove([&seen](void* p) { seen.insert(p); });
          Expect(removed == expected.size() && seen.size() == expected.size(),
                 "IterateAndRemove count mismatch");
          for (const auto& [mid, context] : expected) {
            Expect(seen.count(context) == 1, "IterateAndRemove missed or repeated a context");
          }
          held.clear();
        } else {
          // Drain: back to a small atlas.
          for (const auto& [mid, context] : held) {
            absl::StatusOr<void*> got = atlas->MapAndDissociate(mid);
            Expect(got.ok() && *got == context, "drain mismatch");
          }
          held.clear();
          const midatlas::AtlasStats stats = atlas->stats();
          Expect(stats.leaf_maps <= 2 && stats.directory_maps <= 2, "drained atlas kept maps");
        }
        break;
      }
    }
  }
  std::multiset<std::uint64_t> expected;
  for (const auto& [mid, context] : held) expected.insert(reinterpret_cast<std::uintptr_t>(context));
  atlas.reset();
  Expect(destroyed == expected, "destruction did not hand each remaining context out once");
}

// The C API: NULL atlases and out-pointers, USHORT shapes, STATUS codes.
int g_c_destroyed = 0;
void CountDestroyed(PVOID) { ++g_c_destroyed; }

void RunC(FuzzedDataProvider& in) {
  const auto max = in.ConsumeIntegral<USHORT>();
  const auto initial = in.ConsumeIntegral<USHORT>();
  PRX_MID_ATLAS atlas = RxCreateMidAtlas(max, initial);
  Expect((atlas != nullptr) == (max >= 1 && initial >= 1 && initial <= max),
         "RxCreateMidAtlas shape rule");
  Expect(RxMapMidToContext(nullptr, 0) == nullptr, "NULL atlas maps");
  USHORT mid = 0;
  Expect(RxAssociateContextWithMid(nullptr, AsContext(1), &mid) == STATUS_INVALID_PARAMETER,
         "NULL atlas associate");
  Expect(RxGetNumberOfMidsInUse(nullptr) == 0 && RxGetMaximumNumberOfMids(nullptr) == 0,
         "NULL atlas counts");
  if (atlas == nullptr) return;
  std::map<USHORT, PVOID> held;
  std::uint64_t next = 1;
  int steps = in.ConsumeIntegralInRange<int>(0, 64);
  while (steps-- > 0 && in.remaining_bytes() > 0) {
    const USHORT target = held.empty() || in.ConsumeBool() ? in.ConsumeIntegral<USHORT>()
                                                           : held.begin()->first;
    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
      case 0: {
        PVOID context = AsContext(next++ * 2 + 1);
        const NTSTATUS status = RxAssociateContextWithMid(atlas, context, &mid);
        if (held.size() == max) {
          Expect(status == STATUS_UNSUCCESSFUL, "C full atlas");
        } else {
          Expect(status == STATUS_SUCCESS && mid < max && held.count(mid) == 0, "C associate");
          held[mid] = context;
        }
        Expect(RxAssociateContextWithMid(atlas, nullptr, &mid) == STATUS_INVALID_PARAMETER,
               "C associate NULL context");
        Expect(RxAssociateContextWithMid(atlas, context, nullptr) == STATUS_INVALID_PARAMETER,
               "C associate NULL out-pointer");
        break;
      }
      case 1: {
        auto it = held.find(target);
        Expect(RxMapMidToContext(atlas, target) == (it == held.end() ? nullptr : it->second),
               "C map");
        break;
      }
      case 2: {
        PVOID got = AsContext(7);
        const NTSTATUS status = RxMapAndDissociateMidFromContext(atlas, target, &got);
        auto it = held.find(target);
        if (it == held.end()) {
          Expect(status == STATUS_INVALID_PARAMETER && got == nullptr, "C dissociate free");
        } else {
          Expect(status == STATUS_SUCCESS && got == it->second, "C dissociate");
          held.erase(it);
        }
        break;
      }
      case 3: {
        PVOID context = in.ConsumeBool() ? nullptr : AsContext(next++ * 2 + 1);
        const NTSTATUS status = RxReassociateMid(atlas, target, context);
        auto it = held.find(target);
        if (it == held.end() || context == nullptr) {
          Expect(status == STATUS_INVALID_PARAMETER, "C reassociate bad");
        } else {
          Expect(status == STATUS_SUCCESS, "C reassociate");
          it->second = context;
        }
        break;
      }
      default:
        Expect(RxGetNumberOfMidsInUse(atlas) == held.size(), "C in-use count");
        Expect(RxGetMaximumNumberOfMids(atlas) == max, "C max");
        break;
    }
  }
  g_c_destroyed = 0;
  RxDestroyMidAtlas(atlas, CountDestroyed);
  Expect(g_c_destroyed == static_cast<int>(held.size()), "C destroy count");
}


// ---- The extensions (midatlax_ex.h and their MidAtlas counterparts) -------------------
//
// One model, two front ends (the C API and MidAtlas), the same calls through either:
// creation with generation bits, a reserve and excluded values; associations with and
// without the reserve; discards, late responses (map-and-dissociate of a discarded MID:
// Cancelled, the late context once), releases; asynchronous waits with wait blocks or
// handles, cancels, one-try blocking waits (timeout 0); iterate-and-remove and destruction.
// Single-threaded, so every answer is exact: which waiter a freed MID reaches (the oldest
// eligible one, on the freeing call, the same index under its next generation), which MID
// values a call may hand out (a usable index nobody holds, carrying the next generation not
// excluded), what each routine, callback, iterator and destructor receives, in order.

// What a routine, a callback, an iterator or a destructor saw, in the order they ran.
struct Event {
  enum class Kind { kRoutine, kHanded };
  Kind kind = Kind::kHanded;
  int id = -1;              // routine: the wait's id
  bool ok = false;          // routine: got a MID (else cancelled)
  Mid mid = 0;              // routine: the MID
  void* context = nullptr;  // routine: its context argument (C); handed: the context
  void* mapped = nullptr;   // routine: Map(mid) inside the routine
};
std::vector<Event> g_events;

enum class Code { kOk, kInvalid, kAllInUse, kCancelled, kTimeout, kPending, kOther };

Code CodeOf(NTSTATUS status) {
  switch (status) {
    case STATUS_SUCCESS: return Code::kOk;
    case STATUS_UNSUCCESSFUL: return Code::kAllInUse;
    case STATUS_INVALID_PARAMETER: return Code::kInvalid;
    case STATUS_CANCELLED: return Code::kCancelled;
    case STATUS_TIMEOUT: return Code::kTimeout;
    case STATUS_PENDING: return Code::kPending;
    default: return Code::kOther;
  }
}

Code CodeOf(const absl::Status& status) {
  if (status.ok()) return Code::kOk;
  if (midatlas::IsAllMidsInUse(status)) return Code::kAllInUse;
  if (absl::IsInvalidArgument(status)) return Code::kInvalid;
  if (absl::IsCancelled(status)) return Code::kCancelled;
  if (absl::IsDeadlineExceeded(status)) return Code::kTimeout;
  return Code::kOther;
}

constexpr int kSlots = 6;  // wait blocks (C) or handles (C++) per run

// The shape asked for; the C front passes the fields narrowed to their C types, so the
// picker keeps them in range there.
struct ShapeIn {
  std::uint32_t max = 1;
  std::uint32_t start = 1;
  std::uint32_t genbits = 0;
  std::uint32_t reserved = 0;
  std::vector<Mid> excluded;
  bool null_excluded = false;  // C: NumberOfExcludedMids > 0 with ExcludedMids NULL
};

// Whether creation must succeed (midatlax_ex.h, MidAtlas::Create).
bool ValidShape(const ShapeIn& s) {
  if (s.max < 1 || s.max > 65535 || s.start < 1 || s.start > s.max) return false;
  if (s.reserved >= s.max || s.genbits > 15) return false;
  if (!s.excluded.empty() && s.null_excluded) return false;
  const std::uint32_t space = 1U << (16 - s.genbits);
  if (s.max > space) return false;
  // Indexes whose every generation is excluded are left out.
  std::map<std::uint32_t, std::set<Mid>> per_index;
  for (const Mid value : s.excluded) per_index[value & (space - 1)].insert(value);
  std::uint32_t wholly = 0;
  for (const auto& [index, values] : per_index) {
    if (values.size() == (1U << s.genbits)) ++wholly;
  }
  return s.max <= space - wholly;
}

// A front end: the calls of the model through one API.
class Front {
 public:
  virtual ~Front() = default;
  virtual bool c_api() const = 0;
  // True when created.
  virtual bool Create(const ShapeIn& shape) = 0;
  virtual void Destroy() = 0;
  // bad (C only): 1 an unknown flag, 2 NULL NewMid. how (C): 0 RxAssociateContextWithMid,
  // else Ex; (C++): 0 Associate(context), else Associate(context, options).
  virtual Code Associate(void* context, bool reserve, int how, int bad, Mid* mid) = 0;
  virtual Code WaitZero(void* context, bool reserve, int bad, Mid* mid) = 0;
  // bad (C): 1 flag, 2 NULL NewMid, 3 NULL routine, 4 NULL block; (C++) 3 no callback.
  virtual Code Async(int slot, void* context, bool reserve, int id, int bad, Mid* mid) = 0;
  virtual bool Cancel(int slot) = 0;
  virtual void* Map(Mid mid) = 0;
  // plain (C++): MapAndDissociate, else MapAndDissociateOrLate.
  virtual Code Dissociate(Mid mid, bool plain, void** context) = 0;
  virtual Code Reassociate(Mid mid, void* context) = 0;
  virtual Code Discard(Mid mid, void* late, bool null_out, void** context) = 0;
  virtual Code Release(Mid mid, bool null_out, void** late) = 0;
  // The count reported, where the API reports one.
  virtual std::optional<std::size_t> IterateAndRemove() = 0;
  virtual std::uint32_t in_use() = 0;
  virtual std::uint32_t discarded() = 0;
  virtual std::uint32_t waiters() = 0;
  virtual std::uint32_t max_mids() = 0;
};

// ---- The C front ----

RX_MID_WAIT_BLOCK g_blocks[kSlots];
int g_block_ids[kSlots];
PRX_MID_ATLAS g_c_atlas = nullptr;

VOID CRoutine(PRX_MID_WAIT_BLOCK block, PVOID context, NTSTATUS status, USHORT mid) {
  const std::ptrdiff_t slot = block - g_blocks;
  Expect(slot >= 0 && slot < kSlots, "a routine got a wait block that was never queued");
  Expect(status == STATUS_SUCCESS || status == STATUS_CANCELLED, "a routine got another status");
  Event event{.kind = Event::Kind::kRoutine,
              .id = g_block_ids[slot],
              .ok = status == STATUS_SUCCESS,
              .mid = mid,
              .context = context};
  if (event.ok) event.mapped = RxMapMidToContext(g_c_atlas, mid);
  g_events.push_back(event);
}

VOID CHanded(PVOID context) {
  g_events.push_back({.kind = Event::Kind::kHanded, .context = context});
}

class CFront final : public Front {
 public:
  CFront() {
    std::memset(g_blocks, 0, sizeof(g_blocks));
    std::fill(std::begin(g_block_ids), std::end(g_block_ids), -1);
  }
  ~CFront() override { Destroy(); }
  bool c_api() const override { return true; }
  bool Create(const ShapeIn& shape) override {
    RX_MID_ATLAS_PARAMETERS p{};
    p.MaximumNumberOfMids = static_cast<USHORT>(shape.max);
    p.MidsAllocatedAtStart = static_cast<USHORT>(shape.start);
    p.GenerationBits = static_cast<UCHAR>(shape.genbits);
    p.ReusePolicy = RX_MID_REUSE_COMPACT;
    p.MidsReserved = static_cast<USHORT>(shape.reserved);
    p.NumberOfExcludedMids = static_cast<USHORT>(shape.excluded.size());
    p.ExcludedMids = shape.null_excluded ? nullptr : shape.excluded.data();
    g_c_atlas = RxCreateMidAtlasEx(&p);
    return g_c_atlas != nullptr;
  }
  void Destroy() override {
    if (g_c_atlas != nullptr) RxDestroyMidAtlas(g_c_atlas, &CHanded);
    g_c_atlas = nullptr;
  }
  Code Associate(void* context, bool reserve, int how, int bad, Mid* mid) override {
    USHORT out = 0;
    NTSTATUS status = 0;
    if (how == 0 && !reserve && bad == 0) {
      status = RxAssociateContextWithMid(g_c_atlas, context, &out);
    } else {
      ULONG flags = reserve ? RX_MID_USE_RESERVE : 0;
      if (bad == 1) flags |= 0x10;
      status = RxAssociateContextWithMidEx(g_c_atlas, context, flags, bad == 2 ? nullptr : &out);
    }
    *mid = out;
    return CodeOf(status);
  }
  Code WaitZero(void* context, bool reserve, int bad, Mid* mid) override {
    USHORT out = 0;
    ULONG flags = reserve ? RX_MID_USE_RESERVE : 0;
    if (bad == 1) flags |= 0x4;
    const NTSTATUS status =
        RxAssociateContextWithMidWait(g_c_atlas, context, flags, 0, bad == 2 ? nullptr : &out);
    *mid = out;
    return CodeOf(status);
  }
  Code Async(int slot, void* context, bool reserve, int id, int bad, Mid* mid) override {
    USHORT out = 0;
    ULONG flags = reserve ? RX_MID_USE_RESERVE : 0;
    if (bad == 1) flags |= 0x8;
    const NTSTATUS status = RxAssociateContextWithMidAsync(
        g_c_atlas, context, flags, bad == 4 ? nullptr : &g_blocks[slot],
        bad == 3 ? nullptr : &CRoutine, bad == 2 ? nullptr : &out);
    // A block queued now reports this id; one that was queued already kept its own.
    if (status == STATUS_PENDING) g_block_ids[slot] = id;
    *mid = out;
    return CodeOf(status);
  }
  bool Cancel(int slot) override { return RxCancelMidWait(g_c_atlas, &g_blocks[slot]) != FALSE; }
  void* Map(Mid mid) override { return RxMapMidToContext(g_c_atlas, mid); }
  Code Dissociate(Mid mid, bool /*plain*/, void** context) override {
    PVOID out = AsContext(5);  // the call must overwrite it
    const NTSTATUS status = RxMapAndDissociateMidFromContext(g_c_atlas, mid, &out);
    *context = out;
    return CodeOf(status);
  }
  Code Reassociate(Mid mid, void* context) override {
    return CodeOf(RxReassociateMid(g_c_atlas, mid, context));
  }
  Code Discard(Mid mid, void* late, bool null_out, void** context) override {
    PVOID out = AsContext(5);
    const NTSTATUS status = RxDiscardMid(g_c_atlas, mid, late, null_out ? nullptr : &out);
    *context = null_out ? nullptr : out;
    return CodeOf(status);
  }
  Code Release(Mid mid, bool null_out, void** late) override {
    PVOID out = AsContext(5);
    const NTSTATUS status = RxReleaseDiscardedMid(g_c_atlas, mid, null_out ? nullptr : &out);
    *late = null_out ? nullptr : out;
    return CodeOf(status);
  }
  std::optional<std::size_t> IterateAndRemove() override {
    RxIterateMidAtlasAndRemove(g_c_atlas, &CHanded);
    return std::nullopt;
  }
  std::uint32_t in_use() override { return RxGetNumberOfMidsInUse(g_c_atlas); }
  std::uint32_t discarded() override { return RxGetNumberOfDiscardedMids(g_c_atlas); }
  std::uint32_t waiters() override { return RxGetNumberOfWaiters(g_c_atlas); }
  std::uint32_t max_mids() override { return RxGetMaximumNumberOfMids(g_c_atlas); }
};

// ---- The C++ front ----

MidAtlas* g_cpp_atlas = nullptr;

class CppFront final : public Front {
 public:
  ~CppFront() override {
    Destroy();
    for (auto& handle : handles_) handle = midatlas::MidWait();  // after the atlas: no callback
  }
  bool c_api() const override { return false; }
  bool Create(const ShapeIn& shape) override {
    absl::StatusOr<MidAtlas> created = MidAtlas::Create(
        {.max_mids = shape.max,
         .initial_mids = shape.start,
         .context_destructor =
             [](void* p) { g_events.push_back({.kind = Event::Kind::kHanded, .context = p}); },
         .reserved_mids = shape.reserved,
         .excluded_mids = shape.excluded,
         .generation_bits = shape.genbits});
    if (!created.ok()) {
      Expect(absl::IsInvalidArgument(created.status()), "a bad shape is not InvalidArgument");
      return false;
    }
    atlas_.emplace(*std::move(created));
    g_cpp_atlas = &*atlas_;
    return true;
  }
  void Destroy() override {
    atlas_.reset();
    g_cpp_atlas = nullptr;
  }
  Code Associate(void* context, bool reserve, int how, int /*bad*/, Mid* mid) override {
    absl::StatusOr<Mid> got = how == 0 && !reserve
                                  ? atlas_->Associate(context)
                                  : atlas_->Associate(context, {.use_reserve = reserve});
    if (got.ok()) *mid = *got;
    return CodeOf(got.status());
  }
  Code WaitZero(void* context, bool reserve, int bad, Mid* mid) override {
    // Zero or a negative timeout: one try.
    const absl::Duration timeout = bad == 1 ? absl::Seconds(-1) : absl::ZeroDuration();
    absl::StatusOr<Mid> got = atlas_->AssociateWait(context, timeout, {.use_reserve = reserve});
    if (got.ok()) *mid = *got;
    return CodeOf(got.status());
  }
  Code Async(int slot, void* context, bool reserve, int id, int bad, Mid* mid) override {
    midatlas::MidWaitCallback done;
    if (bad != 3) {
      done = [id](absl::StatusOr<Mid> got) {
        Event event{.kind = Event::Kind::kRoutine, .id = id, .ok = got.ok()};
        if (got.ok()) {
          event.mid = *got;
          event.mapped = g_cpp_atlas->Map(*got);
        } else {
          Expect(absl::IsCancelled(got.status()), "a callback got another error than Cancelled");
        }
        g_events.push_back(event);
      };
    }
    absl::StatusOr<midatlas::MidWait> wait =
        atlas_->AssociateAsync(context, std::move(done), {.use_reserve = reserve});
    if (!wait.ok()) return CodeOf(wait.status());
    const bool at_once = wait->mid().has_value();
    if (at_once) *mid = *wait->mid();
    handles_[static_cast<std::size_t>(slot)] = *std::move(wait);  // the slot was not queued
    return at_once ? Code::kOk : Code::kPending;
  }
  bool Cancel(int slot) override { return handles_[static_cast<std::size_t>(slot)].Cancel(); }
  // Drops a handle (a queued one is cancelled first).
  void Reset(int slot) { handles_[static_cast<std::size_t>(slot)] = midatlas::MidWait(); }
  void Move(int from, int to) {
    handles_[static_cast<std::size_t>(to)] = std::move(handles_[static_cast<std::size_t>(from)]);
  }
  void* Map(Mid mid) override { return atlas_->Map(mid); }
  Code Dissociate(Mid mid, bool plain, void** context) override {
    *context = nullptr;
    if (plain) {
      absl::StatusOr<void*> got = atlas_->MapAndDissociate(mid);
      if (got.ok()) *context = *got;
      return CodeOf(got.status());
    }
    absl::StatusOr<midatlas::Dissociated> got = atlas_->MapAndDissociateOrLate(mid);
    if (!got.ok()) return CodeOf(got.status());
    *context = got->context;
    return got->late ? Code::kCancelled : Code::kOk;
  }
  Code Reassociate(Mid mid, void* context) override {
    return CodeOf(atlas_->Reassociate(mid, context));
  }
  Code Discard(Mid mid, void* late, bool /*null_out*/, void** context) override {
    absl::StatusOr<void*> got = atlas_->Discard(mid, late);
    *context = got.ok() ? *got : nullptr;
    return CodeOf(got.status());
  }
  Code Release(Mid mid, bool /*null_out*/, void** late) override {
    absl::StatusOr<void*> got = atlas_->ReleaseDiscarded(mid);
    *late = got.ok() ? *got : nullptr;
    return CodeOf(got.status());
  }
  std::optional<std::size_t> IterateAndRemove() override {
    return atlas_->IterateAndRemove(
        [](void* p) { g_events.push_back({.kind = Event::Kind::kHanded, .context = p}); });
  }
  std::uint32_t in_use() override {
    Expect(atlas_->stats().mids_in_use == atlas_->mids_in_use(), "stats().mids_in_use mismatch");
    return atlas_->mids_in_use();
  }
  std::uint32_t discarded() override { return atlas_->discarded_mids(); }
  std::uint32_t waiters() override { return atlas_->waiters(); }
  std::uint32_t max_mids() override { return atlas_->max_mids(); }
  MidAtlas& atlas() { return *atlas_; }

 private:
  std::optional<MidAtlas> atlas_;
  std::array<midatlas::MidWait, kSlots> handles_{};
};

// ---- The model ----

class ExModel {
 public:
  ExModel(const ShapeIn& shape, Front& front)
      : front_(front),
        max_(shape.max),
        reserved_(shape.reserved),
        genbits_(shape.genbits),
        gen_mask_((1U << shape.genbits) - 1),
        index_mask_((1U << (16 - shape.genbits)) - 1),
        excluded_(shape.excluded),
        last_gen_(index_mask_ + 1, gen_mask_) {
    std::sort(excluded_.begin(), excluded_.end());
    excluded_.erase(std::unique(excluded_.begin(), excluded_.end()), excluded_.end());
    std::vector<std::uint32_t> per_index(index_mask_ + 1, 0);
    for (const Mid value : excluded_) ++per_index[IndexOf(value)];
    usable_.assign(index_mask_ + 1, false);
    std::uint32_t taken = 0;
    for (std::uint32_t index = 0; index <= index_mask_ && taken < max_; ++index) {
      if (per_index[index] == gen_mask_ + 1) continue;
      usable_[index] = true;
      ++taken;
    }
    slot_id_.fill(-1);
  }

  // --- what the input picks ---

  void* Fresh() { return AsContext(next_context_++ * 2 + 1); }

  Mid PickMid(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 9)) {
      case 0:
      case 1:
      case 2:
        if (!held_.empty()) return Nth(held_, in)->first;
        return 0;
      case 3:
        for (const auto& [mid, entry] : held_) {
          if (entry.discarded) return mid;
        }
        return 0;
      case 4:  // a held MID's index under another generation, or its neighbour
        if (!held_.empty()) {
          const Mid mid = Nth(held_, in)->first;
          if (genbits_ == 0) return static_cast<Mid>(mid + 1);
          return ValueOf(in.ConsumeIntegralInRange<std::uint32_t>(0, gen_mask_), IndexOf(mid));
        }
        return 1;
      case 5:
        if (!freed_.empty()) {
          return freed_[in.ConsumeIntegralInRange<std::size_t>(0, freed_.size() - 1)];
        }
        return 2;
      case 6:
        if (!excluded_.empty()) {
          return excluded_[in.ConsumeIntegralInRange<std::size_t>(0, excluded_.size() - 1)];
        }
        return static_cast<Mid>(max_);
      case 7:
        return static_cast<Mid>(max_ - 1);
      default:
        return in.ConsumeIntegral<Mid>();
    }
  }

  // --- the calls ---

  void Associate(FuzzedDataProvider& in) {
    const bool null_context = in.ConsumeIntegralInRange<int>(0, 15) == 0;
    void* context = null_context ? nullptr : Fresh();
    const bool reserve = in.ConsumeBool();
    const int how = in.ConsumeIntegralInRange<int>(0, 1);
    const int bad = front_.c_api() && in.ConsumeIntegralInRange<int>(0, 7) == 0
                        ? in.ConsumeIntegralInRange<int>(1, 2)
                        : 0;
    Begin();
    Mid mid = 0;
    const Code code = front_.Associate(context, reserve, how, bad, &mid);
    if (null_context || bad != 0) {
      Expect(code == Code::kInvalid, "a bad associate was not refused as invalid");
    } else if (CanAssociate(reserve)) {
      Expect(code == Code::kOk, "an associate that had room failed");
      TakeNew(mid, context, std::nullopt, "associate");
    } else {
      Expect(code == Code::kAllInUse, "an associate without room was not refused as all-in-use");
    }
    End("associate");
  }

  void WaitZero(FuzzedDataProvider& in) {
    const bool null_context = in.ConsumeIntegralInRange<int>(0, 15) == 0;
    void* context = null_context ? nullptr : Fresh();
    const bool reserve = in.ConsumeBool();
    const int bad =
        in.ConsumeIntegralInRange<int>(0, 7) == 0 ? in.ConsumeIntegralInRange<int>(1, 2) : 0;
    Begin();
    Mid mid = 0;
    const Code code = front_.WaitZero(context, reserve, bad, &mid);
    if (null_context || (front_.c_api() && bad != 0)) {
      Expect(code == Code::kInvalid, "a bad wait was not refused as invalid");
    } else if (CanAssociate(reserve)) {
      Expect(code == Code::kOk, "a one-try wait that had room failed");
      TakeNew(mid, context, std::nullopt, "wait");
    } else {
      Expect(code == Code::kTimeout, "a one-try wait without room did not time out");
    }
    End("wait with timeout 0");
  }

  void Async(FuzzedDataProvider& in) {
    const int slot = in.ConsumeIntegralInRange<int>(0, kSlots - 1);
    const bool null_context = in.ConsumeIntegralInRange<int>(0, 15) == 0;
    void* context = null_context ? nullptr : Fresh();
    const bool reserve = in.ConsumeBool();
    int bad = 0;
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0) {
      bad = front_.c_api() ? in.ConsumeIntegralInRange<int>(1, 4) : 3;
    }
    // The C++ front keeps one handle per slot: replacing a queued one would cancel it.
    if (!front_.c_api() && slot_id_[static_cast<std::size_t>(slot)] != -1) return;
    const int id = next_id_++;
    Begin();
    Mid mid = 0;
    const Code code = front_.Async(slot, context, reserve, id, bad, &mid);
    if (null_context || bad != 0 || slot_id_[static_cast<std::size_t>(slot)] != -1) {
      Expect(code == Code::kInvalid, "a bad async wait (or a queued block) was not refused");
      End("bad async wait");
      return;
    }
    if (CanAssociate(reserve)) {
      Expect(code == Code::kOk, "an async wait that had room did not associate at once");
      TakeNew(mid, context, std::nullopt, "async at once");
      End("async at once");
      return;
    }
    // Queued behind the others; the serve that follows may reach it too.
    queue_.push_back({id, slot, context, reserve});
    slot_id_[static_cast<std::size_t>(slot)] = id;
    bool self = false;
    for (const Waiting& w : ServeQueue()) {
      if (w.id == id) {
        self = true;
        Expect(code == Code::kOk, "an async wait served at its enqueue did not say so");
        TakeNew(mid, context, std::nullopt, "async served at enqueue");
      } else {
        ExpectServed(w, std::nullopt);
      }
    }
    if (!self) Expect(code == Code::kPending, "a queued async wait did not answer pending");
    End("async wait");
  }

  void Cancel(FuzzedDataProvider& in) {
    const int slot = in.ConsumeIntegralInRange<int>(0, kSlots - 1);
    Begin();
    const bool cancelled = front_.Cancel(slot);
    ExpectCancelOf(slot, cancelled, "cancel");
    End("cancel");
  }

  // C++ only: drop or move a handle; a queued handle replaced or dropped is cancelled.
  void ResetOrMove(FuzzedDataProvider& in, CppFront& cpp) {
    const int from = in.ConsumeIntegralInRange<int>(0, kSlots - 1);
    const int to = in.ConsumeIntegralInRange<int>(0, kSlots - 1);
    Begin();
    if (in.ConsumeBool() || from == to) {
      cpp.Reset(to);
      ExpectCancelOf(to, std::nullopt, "a dropped handle");
    } else {
      cpp.Move(from, to);
      ExpectCancelOf(to, std::nullopt, "a handle moved onto");
      const int moved = slot_id_[static_cast<std::size_t>(from)];
      slot_id_[static_cast<std::size_t>(from)] = -1;
      slot_id_[static_cast<std::size_t>(to)] = moved;
      for (Waiting& w : queue_) {
        if (w.id == moved) w.slot = to;
      }
    }
    End("handle reset or move");
  }

  void Map(FuzzedDataProvider& in) {
    const Mid mid = PickMid(in);
    auto it = held_.find(mid);
    void* want = it == held_.end() || it->second.discarded ? nullptr : it->second.context;
    Expect(front_.Map(mid) == want, "Map mismatch");
  }

  void Dissociate(FuzzedDataProvider& in) {
    const Mid mid = PickMid(in);
    // C++: MapAndDissociate (a discarded MID keeps its late context) or MapAndDissociateOrLate.
    const bool plain = !front_.c_api() && in.ConsumeBool();
    auto it = held_.find(mid);
    Begin();
    void* context = nullptr;
    const Code code = front_.Dissociate(mid, plain, &context);
    if (it == held_.end()) {
      Expect(code == Code::kInvalid && context == nullptr,
             "map-and-dissociate of a MID not in use did not answer invalid with no context");
    } else if (it->second.discarded) {
      Entry& entry = it->second;
      void* want = plain || entry.late_taken ? nullptr : entry.late;
      Expect(code == Code::kCancelled,
             "a late response to a discarded MID did not answer Cancelled");
      Expect(context == want, "a late response did not get the late context exactly once");
      if (!plain) entry.late_taken = true;
    } else {
      Expect(code == Code::kOk && context == it->second.context, "MapAndDissociate mismatch");
      Free(mid);
    }
    End("map-and-dissociate");
  }

  void Reassociate(FuzzedDataProvider& in) {
    const Mid mid = PickMid(in);
    void* context = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? nullptr : Fresh();
    auto it = held_.find(mid);
    const Code code = front_.Reassociate(mid, context);
    if (it == held_.end() || it->second.discarded || context == nullptr) {
      Expect(code == Code::kInvalid, "a bad reassociate (or of a discarded MID) was not invalid");
    } else {
      Expect(code == Code::kOk, "reassociate of a held MID failed");
      it->second.context = context;
    }
  }

  void Discard(FuzzedDataProvider& in) {
    const Mid mid = PickMid(in);
    void* late = in.ConsumeIntegralInRange<int>(0, 3) == 0 ? nullptr : Fresh();
    const bool null_out = front_.c_api() && in.ConsumeIntegralInRange<int>(0, 15) == 0;
    auto it = held_.find(mid);
    Begin();
    void* context = nullptr;
    const Code code = front_.Discard(mid, late, null_out, &context);
    if (null_out) {
      Expect(code == Code::kInvalid, "a discard with no ContextPointer was not invalid");
    } else if (it == held_.end() || it->second.discarded) {
      Expect(code == Code::kInvalid && context == nullptr,
             "a discard of a MID not in use did not answer invalid with no context");
    } else {
      Expect(code == Code::kOk && context == it->second.context,
             "a discard did not take the MID's context");
      it->second = {.context = nullptr, .discarded = true, .late = late, .late_taken = false};
      ++discarded_;
    }
    End("discard");
  }

  void Release(FuzzedDataProvider& in) {
    const Mid mid = PickMid(in);
    const bool null_out = front_.c_api() && in.ConsumeIntegralInRange<int>(0, 7) == 0;
    auto it = held_.find(mid);
    Begin();
    void* late = nullptr;
    const Code code = front_.Release(mid, null_out, &late);
    if (it == held_.end() || !it->second.discarded) {
      Expect(code == Code::kInvalid && late == nullptr,
             "a release of a MID not discarded did not answer invalid with nothing");
    } else {
      void* want = null_out || it->second.late_taken ? nullptr : it->second.late;
      Expect(code == Code::kOk && late == want,
             "a release did not hand out the late context nobody took");
      --discarded_;
      Free(mid);
    }
    End("release");
  }

  void Counts() {
    Expect(front_.in_use() == held_.size(), "MIDs in use mismatch (discarded MIDs count)");
    Expect(front_.discarded() == discarded_, "discarded count mismatch");
    Expect(front_.waiters() == queue_.size(), "waiter count mismatch");
    Expect(front_.max_mids() == max_, "maximum mismatch");
  }

  void Burst(FuzzedDataProvider& in) {
    const int count = in.ConsumeIntegralInRange<int>(1, 300);
    const bool reserve = in.ConsumeBool();
    for (int i = 0; i < count && held_.size() < max_; ++i) {
      void* context = Fresh();
      Begin();
      Mid mid = 0;
      const Code code = front_.Associate(context, reserve, 1, 0, &mid);
      if (CanAssociate(reserve)) {
        Expect(code == Code::kOk, "burst associate failed with room");
        TakeNew(mid, context, std::nullopt, "burst");
      } else {
        Expect(code == Code::kAllInUse, "burst associate without room not refused");
      }
      End("burst");
      if (code != Code::kOk) break;
    }
  }

  // Frees everything, the MIDs handed to waiters meanwhile too: nobody waits afterwards.
  void Drain(CppFront* cpp) {
    // Each step frees one MID; each waiter served takes one: the steps are bounded.
    const std::size_t bound = held_.size() + queue_.size() + 1;
    for (std::size_t step = 0; !held_.empty() && step < bound; ++step) {
      const auto [mid, entry] = *held_.begin();
      Begin();
      void* out = nullptr;
      if (entry.discarded) {
        const Code code = front_.Release(mid, false, &out);
        Expect(code == Code::kOk && out == (entry.late_taken ? nullptr : entry.late),
               "drain release");
        --discarded_;
      } else {
        const Code code = front_.Dissociate(mid, false, &out);
        Expect(code == Code::kOk && out == entry.context, "drain dissociate");
      }
      Free(mid);
      End("drain");
    }
    Expect(held_.empty() && queue_.empty(), "a drained atlas still holds MIDs or waiters");
    if (cpp != nullptr) {
      const midatlas::AtlasStats stats = cpp->atlas().stats();
      Expect(stats.leaf_maps <= 2 && stats.directory_maps <= 2, "a drained atlas kept maps");
    }
  }

  void IterateAndRemove() {
    Begin();
    const std::optional<std::size_t> reported = front_.IterateAndRemove();
    std::size_t handed = 0;
    // Ascending index order: each MID is freed (its index may go to a waiter at once), then
    // its context - or a discarded MID's late context not taken - goes to the iterator.
    const std::map<std::uint32_t, Mid> snapshot = index_held_;
    for (const auto& [index, mid] : snapshot) {
      const Entry entry = held_.at(mid);
      if (entry.discarded) --discarded_;
      Free(mid);
      void* out = entry.discarded ? (entry.late_taken ? nullptr : entry.late) : entry.context;
      if (out != nullptr) {
        const Event& event = Next("iterate-and-remove did not hand out a context");
        Expect(event.kind == Event::Kind::kHanded && event.context == out,
               "iterate-and-remove handed out the wrong context, or out of order");
        ++handed;
      }
    }
    if (reported) Expect(*reported == handed, "iterate-and-remove reported another count");
    End("iterate-and-remove");
  }

  // Destruction: every queued waiter cancelled (in arrival order), then each late context
  // not taken and each context still associated to the destructor, once.
  void Destroy() {
    Begin();
    front_.Destroy();
    while (!queue_.empty()) {
      const Waiting w = queue_.front();
      queue_.pop_front();
      const Event& event = Next("destruction did not cancel a queued waiter");
      Expect(event.kind == Event::Kind::kRoutine && event.id == w.id && !event.ok && event.mid == 0,
             "destruction cancelled the wrong waiter, or not with Cancelled");
      slot_id_[static_cast<std::size_t>(w.slot)] = -1;
    }
    std::multiset<void*> want;
    for (const auto& [mid, entry] : held_) {
      if (!entry.discarded) {
        want.insert(entry.context);
      } else if (entry.late != nullptr && !entry.late_taken) {
        want.insert(entry.late);
      }
    }
    std::multiset<void*> got;
    while (pos_ < g_events.size()) {
      const Event& event = g_events[pos_++];
      Expect(event.kind == Event::Kind::kHanded, "destruction ran a routine after the cancels");
      got.insert(event.context);
    }
    Expect(got == want, "destruction did not hand each context and late context out once");
    held_.clear();
    index_held_.clear();
  }

  // C++: drop every handle before the atlas goes (queued ones are cancelled, slot by slot).
  void DropHandles(CppFront& cpp) {
    for (int slot = 0; slot < kSlots; ++slot) {
      Begin();
      cpp.Reset(slot);
      ExpectCancelOf(slot, std::nullopt, "a handle dropped before the atlas");
      End("dropping handles");
    }
  }

  [[nodiscard]] std::size_t held() const { return held_.size(); }

 private:
  struct Entry {
    void* context = nullptr;  // null while discarded
    bool discarded = false;
    void* late = nullptr;
    bool late_taken = false;
  };
  struct Waiting {
    int id;
    int slot;
    void* context;
    bool reserve;
  };

  template <typename Map>
  static typename Map::const_iterator Nth(const Map& map, FuzzedDataProvider& in) {
    auto it = map.begin();
    std::advance(it, in.ConsumeIntegralInRange<std::size_t>(0, map.size() - 1));
    return it;
  }

  std::uint32_t IndexOf(Mid mid) const { return mid & index_mask_; }
  std::uint32_t GenOf(Mid mid) const {
    return genbits_ == 0 ? 0 : std::uint32_t{mid} >> (16 - genbits_);
  }
  Mid ValueOf(std::uint32_t gen, std::uint32_t index) const {
    return static_cast<Mid>(genbits_ == 0 ? index : (gen << (16 - genbits_)) | index);
  }
  bool Excluded(Mid mid) const {
    return std::binary_search(excluded_.begin(), excluded_.end(), mid);
  }
  std::uint32_t NextGen(std::uint32_t index) const {
    const std::uint32_t last = last_gen_[index];
    for (std::uint32_t step = 1; step <= gen_mask_ + 1; ++step) {
      const std::uint32_t gen = (last + step) & gen_mask_;
      if (!Excluded(ValueOf(gen, index))) return gen;
    }
    return last;
  }
  std::size_t Limit(bool reserve) const { return reserve ? max_ : max_ - reserved_; }

  // Events of the call under way.
  void Begin() {
    g_events.clear();
    pos_ = 0;
  }
  const Event& Next(const char* what) {
    Expect(pos_ < g_events.size(), what);
    return g_events[pos_++];
  }
  void End(const char* what) {
    if (pos_ != g_events.size()) {
      std::fprintf(stderr, "atlas_fuzz: after %s\n", what);
      Violation("a routine, callback or iterator ran that should not have");
    }
  }

  // An associate of a new caller (no barging): the queue is served first (which, with one
  // thread, finds nobody to serve: whoever could take a MID would have had it at its free),
  // then the caller may take a MID only if no waiter still queued could have used it.
  bool CanAssociate(bool reserve) {
    for (const Waiting& w : ServeQueue()) ExpectServed(w, std::nullopt);
    for (const Waiting& w : queue_) {
      if (w.reserve || !reserve) return false;
    }
    return held_.size() < Limit(reserve);
  }

  // Serves the queue from what is free, oldest first; an unreserved waiter that finds the
  // unreserved capacity taken is passed over only for waiters that may use the reserve.
  std::vector<Waiting> ServeQueue() {
    std::vector<Waiting> served;
    bool unreserved_full = false;
    std::size_t would_hold = held_.size();
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (unreserved_full && !it->reserve) {
        ++it;
        continue;
      }
      if (would_hold < Limit(it->reserve)) {
        served.push_back(*it);
        ++would_hold;
        it = queue_.erase(it);
      } else if (reserved_ != 0 && !it->reserve) {
        unreserved_full = true;
        ++it;
      } else {
        break;
      }
    }
    return served;
  }

  // A waiter's routine (or callback) ran with a MID: of `index` when given.
  void ExpectServed(const Waiting& w, std::optional<std::uint32_t> index) {
    const Event& event = Next("a served waiter's routine did not run on the freeing call");
    Expect(event.kind == Event::Kind::kRoutine && event.id == w.id && event.ok,
           "a MID went to another waiter than the oldest eligible one");
    if (front_.c_api()) Expect(event.context == w.context, "a routine got another context");
    Expect(event.mapped == w.context, "a served waiter's MID did not map to its context yet");
    TakeNew(event.mid, w.context, index, "hand-off");
    slot_id_[static_cast<std::size_t>(w.slot)] = -1;
  }

  // A cancel of the wait in `slot`: its routine ran with Cancelled, before the cancel
  // returned, exactly when it was queued. `answer`: what the cancel said, where it says.
  void ExpectCancelOf(int slot, std::optional<bool> answer, const char* what) {
    const int id = slot_id_[static_cast<std::size_t>(slot)];
    if (answer) Expect(*answer == (id != -1), "a cancel answered wrong (queued or not)");
    if (id == -1) return;
    const Event& event = Next(what);
    Expect(event.kind == Event::Kind::kRoutine && event.id == id && !event.ok && event.mid == 0,
           "a cancelled wait's routine did not run with Cancelled");
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->id == id) {
        queue_.erase(it);
        break;
      }
    }
    slot_id_[static_cast<std::size_t>(slot)] = -1;
  }

  // A MID the atlas just handed out: a usable index nobody holds (the freed one for a
  // hand-off), carrying that index's next generation.
  void TakeNew(Mid mid, void* context, std::optional<std::uint32_t> index, const char* what) {
    const std::uint32_t at = IndexOf(mid);
    if (!usable_[at] || Excluded(mid) || index_held_.count(at) != 0 || (index && at != *index) ||
        GenOf(mid) != NextGen(at)) {
      std::fprintf(stderr,
                   "atlas_fuzz: %s handed out MID %u (index %u, generation %u; next %u%s)\n", what,
                   mid, at, GenOf(mid), NextGen(at), index ? ", a hand-off" : "");
      Violation("a MID was handed out that the atlas may not hand out now");
    }
    last_gen_[at] = GenOf(mid);
    held_[mid] = {.context = context};
    index_held_[at] = mid;
  }

  // `mid` leaves: its index goes to the oldest eligible waiter, or back to the free MIDs
  // (after which the queue is served).
  void Free(Mid mid) {
    const std::size_t held_before = held_.size();
    held_.erase(mid);
    const std::uint32_t index = IndexOf(mid);
    index_held_.erase(index);
    freed_.push_back(mid);
    if (freed_.size() > 16) freed_.erase(freed_.begin());
    if (!queue_.empty()) {
      // The MID stays admitted; an unreserved waiter may have it only within the unreserved
      // capacity.
      const bool unreserved_ok = reserved_ == 0 || held_before <= max_ - reserved_;
      for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (!it->reserve && !unreserved_ok) continue;
        const Waiting w = *it;
        queue_.erase(it);
        ExpectServed(w, index);
        return;
      }
      for (const Waiting& w : ServeQueue()) ExpectServed(w, std::nullopt);
    }
  }

  Front& front_;
  const std::uint32_t max_;
  const std::uint32_t reserved_;
  const std::uint32_t genbits_;
  const std::uint32_t gen_mask_;
  const std::uint32_t index_mask_;
  std::vector<Mid> excluded_;  // sorted, distinct
  std::vector<bool> usable_;
  std::vector<std::uint32_t> last_gen_;
  std::map<Mid, Entry> held_;               // by exact value, discarded ones included
  std::map<std::uint32_t, Mid> index_held_;  // by index
  std::deque<Waiting> queue_;
  std::array<int, kSlots> slot_id_{};        // the queued wait of each slot, -1 for none
  std::vector<Mid> freed_;                   // recently freed values (stale ones)
  std::uint32_t discarded_ = 0;
  std::uint64_t next_context_ = 1;
  int next_id_ = 0;
  std::size_t pos_ = 0;
};

ShapeIn PickShape(FuzzedDataProvider& in, bool c_api) {
  ShapeIn shape;
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: shape.max = 1; break;
    case 1: shape.max = 2; break;
    case 2: shape.max = 8; break;
    case 3: shape.max = 50; break;
    case 4: shape.max = 65535; break;
    case 5: shape.max = in.ConsumeIntegralInRange<std::uint32_t>(0, c_api ? 65535 : 70000); break;
    default: shape.max = in.ConsumeIntegralInRange<std::uint32_t>(1, 300);
  }
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: shape.start = in.ConsumeIntegralInRange<std::uint32_t>(0, c_api ? 65535 : 70000); break;
    case 1: shape.start = shape.max; break;
    default:
      shape.start = in.ConsumeIntegralInRange<std::uint32_t>(
          1, std::clamp<std::uint32_t>(shape.max, 1, 64));
  }
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0:
    case 1:
    case 2: shape.genbits = 0; break;
    case 3: shape.genbits = in.ConsumeIntegralInRange<std::uint32_t>(0, c_api ? 255 : 40); break;
    default: shape.genbits = in.ConsumeIntegralInRange<std::uint32_t>(1, 15);
  }
  // Mostly a max the index space holds.
  if (shape.genbits <= 15 && in.ConsumeBool()) {
    shape.max = std::clamp<std::uint32_t>(
        shape.max, 1, std::min<std::uint32_t>(65535, 1U << (16 - shape.genbits)));
    shape.start = std::clamp<std::uint32_t>(shape.start, 1, shape.max);
  }
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
    case 1: shape.reserved = 0; break;
    case 2: shape.reserved = in.ConsumeIntegralInRange<std::uint32_t>(0, shape.max); break;
    default: shape.reserved = in.ConsumeIntegralInRange<std::uint32_t>(0, c_api ? 65535 : 70000);
  }
  const int excluded =
      in.ConsumeIntegralInRange<int>(0, 3) == 0 ? 0 : in.ConsumeIntegralInRange<int>(0, 8);
  const std::uint32_t index_bits = shape.genbits <= 15 ? 16 - shape.genbits : 16;
  for (int i = 0; i < excluded; ++i) {
    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
      case 0: shape.excluded.push_back(0); break;
      case 1: shape.excluded.push_back(0xFFFF); break;
      case 2:  // a low index under some generation (whole indexes get excluded this way)
        shape.excluded.push_back(static_cast<Mid>(
            (in.ConsumeIntegralInRange<std::uint32_t>(0, 15) << index_bits) |
            in.ConsumeIntegralInRange<std::uint32_t>(0, 3)));
        break;
      default: shape.excluded.push_back(in.ConsumeIntegral<Mid>());
    }
  }
  shape.null_excluded =
      c_api && !shape.excluded.empty() && in.ConsumeIntegralInRange<int>(0, 15) == 0;
  return shape;
}

// The extension calls, each answer checked against ExModel.
void RunEx(FuzzedDataProvider& in, bool c_api) {
  if (c_api) {
    // NULL handles and parameters: refused, nothing touched.
    Expect(RxCreateMidAtlasEx(nullptr) == nullptr, "RxCreateMidAtlasEx(NULL) made an atlas");
    PVOID out = AsContext(3);
    USHORT mid = 0;
    RX_MID_WAIT_BLOCK block{};
    Expect(RxAssociateContextWithMidEx(nullptr, AsContext(1), 0, &mid) == STATUS_INVALID_PARAMETER,
           "NULL atlas associate");
    Expect(RxDiscardMid(nullptr, 0, nullptr, &out) == STATUS_INVALID_PARAMETER && out == nullptr,
           "NULL atlas discard");
    out = AsContext(3);
    Expect(RxReleaseDiscardedMid(nullptr, 0, &out) == STATUS_INVALID_PARAMETER && out == nullptr,
           "NULL atlas release");
    Expect(RxGetNumberOfDiscardedMids(nullptr) == 0 && RxGetNumberOfWaiters(nullptr) == 0,
           "NULL atlas counts");
    Expect(RxCancelMidWait(nullptr, &block) == FALSE, "NULL atlas cancel");
    Expect(RxAssociateContextWithMidWait(nullptr, AsContext(1), 0, 0, &mid) ==
               STATUS_INVALID_PARAMETER,
           "NULL atlas wait");
    Expect(RxAssociateContextWithMidAsync(nullptr, AsContext(1), 0, &block, &CRoutine, &mid) ==
               STATUS_INVALID_PARAMETER,
           "NULL atlas async");
  }
  const ShapeIn shape = PickShape(in, c_api);
  std::unique_ptr<Front> front;
  CppFront* cpp = nullptr;
  if (c_api) {
    front = std::make_unique<CFront>();
  } else {
    auto made = std::make_unique<CppFront>();
    cpp = made.get();
    front = std::move(made);
  }
  const bool created = front->Create(shape);
  Expect(created == ValidShape(shape), "creation accepted or refused the wrong shape");
  if (!created) return;
  ExModel model(shape, *front);
  if (c_api) {
    Expect(RxCancelMidWait(g_c_atlas, nullptr) == FALSE, "cancel of a NULL block");
  } else {
    Expect(cpp->atlas().reserved_mids() == shape.reserved &&
               cpp->atlas().generation_bits() == shape.genbits,
           "reserved_mids() or generation_bits() mismatch");
  }
  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange<int>(0, 17)) {
      case 0:
      case 1: model.Associate(in); break;
      case 2: model.WaitZero(in); break;
      case 3:
      case 4: model.Async(in); break;
      case 5: model.Cancel(in); break;
      case 6:
        if (cpp != nullptr) {
          model.ResetOrMove(in, *cpp);
        } else {
          model.Cancel(in);
        }
        break;
      case 7: model.Map(in); break;
      case 8:
      case 9: model.Dissociate(in); break;
      case 10: model.Reassociate(in); break;
      case 11:
      case 12: model.Discard(in); break;
      case 13: model.Release(in); break;
      case 14: model.Counts(); break;
      case 15: model.Burst(in); break;
      case 16: model.IterateAndRemove(); break;
      default: model.Drain(cpp); break;
    }
  }
  model.Counts();
  if (cpp != nullptr && in.ConsumeBool()) model.DropHandles(*cpp);
  model.Destroy();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: RunC(in); break;
    case 1: RunCpp(in); break;
    case 2:
    case 3:
    case 4: RunEx(in, /*c_api=*/true); break;
    default: RunEx(in, /*c_api=*/false); break;
  }
  return 0;
}
