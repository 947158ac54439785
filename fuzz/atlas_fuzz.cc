// Model-based fuzz target for the atlas: the input decodes into an atlas shape and a sequence
// of API calls (C++ and C), with arguments that are often bad on purpose - free MIDs, MIDs at
// and beyond max, null contexts, odd shapes - and every result is compared with a plain
// sequential model (a map from MID to context). Single-threaded: concurrency is the job of
// the stress, chaos and linearizability tests; this target explores argument space and
// shapes, under ASan and UBSan.
//
//   input = shape bytes, then one call per step (FuzzedDataProvider)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <fuzzer/FuzzedDataProvider.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  if (in.ConsumeIntegralInRange<int>(0, 7) == 0) {
    RunC(in);
  } else {
    RunCpp(in);
  }
  return 0;
}
