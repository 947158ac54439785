// Every conversion between a C handle and the C++ object behind it, in one place, under one
// naming scheme: XxxOf(handle) gives the object, HandleOf(object) the handle.
//
//   PRX_MID_ATLAS       the AtlasCore itself (no wrapper: RxMapMidToContext is one call)
//   PRX_NET_NAME        a NetNameNode carrying one reference
//   PRX_NET_NAME_TABLE  a _RX_NET_NAME_TABLE (capi/netname_c.cc), which owns the C++ table and
//                       is the one C struct that exists: a pointer to it needs no cast
//
// _RX_MID_ATLAS and _RX_NET_NAME are only tags that give C distinct pointer types; no object
// of those types ever exists.
#ifndef MIDATLAS_SRC_CAPI_HANDLES_H_
#define MIDATLAS_SRC_CAPI_HANDLES_H_

#include <utility>

#include "atlas/atlas_core.h"
#include "midatlas/mid_atlas.h"
#include "midatlas/midatlax.h"
#include "midatlas/midatlax_ex.h"
#include "midatlas/net_name_table.h"
#include "midatlas/netname.h"
#include "netname/net_name_core.h"

namespace midatlas::internal {

// The C++ front end's core, for the C shims that hand it out as a PRX_MID_ATLAS.
struct FrontEndAccess {
  static AtlasCore* Core(MidAtlas& atlas) noexcept { return atlas.core_; }
};

inline AtlasCore* CoreOf(PRX_MID_ATLAS atlas) noexcept {
  return reinterpret_cast<AtlasCore*>(atlas);
}
inline PRX_MID_ATLAS HandleOf(AtlasCore* core) noexcept {
  return reinterpret_cast<PRX_MID_ATLAS>(core);
}

inline NetNameNode* NodeOf(PRX_NET_NAME name) noexcept {
  return reinterpret_cast<NetNameNode*>(name);
}
// Hands `ref`'s reference to the caller as a handle.
inline PRX_NET_NAME HandleOf(NetNameRef ref) noexcept {
  return reinterpret_cast<PRX_NET_NAME>(NetNameRefAccess::ReleaseToRaw(std::move(ref)));
}

// The one translation of the core's answers into NTSTATUS, for every atlas function of both
// C headers (midatlax.h, midatlax_ex.h).
inline NTSTATUS ToNtStatus(AtlasResult result) noexcept {
  switch (result) {
    case AtlasResult::kOk:
      return STATUS_SUCCESS;
    case AtlasResult::kAllInUse:
      return STATUS_UNSUCCESSFUL;
    case AtlasResult::kOutOfMemory:
      return STATUS_INSUFFICIENT_RESOURCES;
    case AtlasResult::kInvalidArgument:
      return STATUS_INVALID_PARAMETER;
    case AtlasResult::kCancelled:
      return STATUS_CANCELLED;
    case AtlasResult::kTimeout:
      return STATUS_TIMEOUT;
    case AtlasResult::kPending:
      return STATUS_PENDING;
  }
  return STATUS_UNSUCCESSFUL;
}

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_CAPI_HANDLES_H_
