// The C rendering of the NetName table (midatlas/netname.h): a thin shim over NetNameTable.
// A PRX_NET_NAME is a NetNameNode carrying one reference; the table handle owns the C++ table.
#include "midatlas/netname.h"

#include <array>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "atlas/atlas_core.h"
#include "capi/handles.h"
#include "midatlas/net_name_table.h"
#include "netname/net_name_core.h"
#include "netname/net_name_key.h"

using midatlas::ConnectionId;
using midatlas::NetNameKind;
using midatlas::NetNameRef;
using midatlas::NetNameTable;
using midatlas::internal::NetNameNode;
using midatlas::internal::HandleOf;
using midatlas::internal::NetNameRefAccess;
using midatlas::internal::NodeOf;

static_assert(sizeof(RX_CONNECTION_ID) == midatlas::kConnectionIdBytes,
              "RX_CONNECTION_ID is the 8-byte RDBSS blob");
static_assert(RX_NETNAME_MAX_BYTES == midatlas::kMaxNetNameBytes, "limits agree");
static_assert(RX_NETNAME_MAX_COMPONENT_BYTES == midatlas::kMaxNetNameComponentBytes,
              "limits agree");

// The table handle: a _RX_NET_NAME_TABLE owns the C++ table and keeps the C provider. It is
// defined here, where the shims use its fields; the conversions of both handles are in
// capi/handles.h.
struct _RX_NET_NAME_TABLE {
  std::unique_ptr<NetNameTable> table;
  PMRX_GET_CONNECTION_ID get_connection_id = nullptr;
};


namespace {

NTSTATUS ToNtStatus(const absl::Status& status) noexcept {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return STATUS_SUCCESS;
    case absl::StatusCode::kNotFound:
      return STATUS_NOT_FOUND;
    case absl::StatusCode::kFailedPrecondition:
      return STATUS_OBJECT_NAME_COLLISION;
    case absl::StatusCode::kResourceExhausted:
      return STATUS_INSUFFICIENT_RESOURCES;
    default:
      return STATUS_INVALID_PARAMETER;
  }
}

// Names are checked before the table sees them so that a bad name gets its own status.
bool NameValid(std::string_view name, bool allow_stream) {
  midatlas::internal::ParsedPath parsed;
  return midatlas::internal::ParseNetPath(name, allow_stream, &parsed).ok();
}

// The C types and the C++ kinds, one row each.
struct TypeAndKind {
  RX_NET_NAME_TYPE type;
  NetNameKind kind;
};
constexpr std::array<TypeAndKind, 3> kTypes{{
    {RxNetNameServerCall, NetNameKind::kServerCall},
    {RxNetNameNetRoot, NetNameKind::kNetRoot},
    {RxNetNameVNetRoot, NetNameKind::kVNetRoot},
}};

std::optional<NetNameKind> KindOf(RX_NET_NAME_TYPE type) noexcept {
  for (const TypeAndKind& row : kTypes) {
    if (row.type == type) return row.kind;
  }
  return std::nullopt;
}

RX_NET_NAME_TYPE TypeOf(NetNameKind kind) noexcept {
  for (const TypeAndKind& row : kTypes) {
    if (row.kind == kind) return row.type;
  }
  return RxNetNameInvalid;  // not reached: every kind has a row
}

ConnectionId FromC(const RX_CONNECTION_ID& id) noexcept {
  ConnectionId out;
  std::memcpy(out.bytes.data(), &id, sizeof(id));
  return out;
}

}  // namespace

extern "C" {

NTSTATUS RxCreateNetNameTable(PMRX_GET_CONNECTION_ID get_connection_id, USHORT max_mids,
                              USHORT initial_mids, ULONG flags,
                              PRX_OUTSTANDING_CONTEXT outstanding_context,
                              PRX_NET_NAME_TABLE* table) {
  if (table == nullptr) return STATUS_INVALID_PARAMETER;
  *table = nullptr;
  NetNameTable::Options options;
  options.atlas = {.max_mids = max_mids, .initial_mids = initial_mids};
  options.case_sensitive = (flags & RX_NETNAME_CASE_SENSITIVE) != 0;
  if (outstanding_context != nullptr) {
    options.outstanding_context = [outstanding_context](std::string_view, const ConnectionId&,
                                                        void* context) {
      outstanding_context(context);
    };
  }
  absl::StatusOr<std::unique_ptr<NetNameTable>> created = NetNameTable::Create(std::move(options));
  if (!created.ok()) return ToNtStatus(created.status());
  auto* handle = new (std::nothrow) _RX_NET_NAME_TABLE;
  if (handle == nullptr) return STATUS_INSUFFICIENT_RESOURCES;
  handle->table = *std::move(created);
  handle->get_connection_id = get_connection_id;
  *table = handle;
  return STATUS_SUCCESS;
}

VOID RxDestroyNetNameTable(PRX_NET_NAME_TABLE table) { delete table; }

NTSTATUS RxFindOrCreateNetName(PRX_NET_NAME_TABLE table, PVOID rx_context, const char* name,
                               size_t name_length, RX_NET_NAME_TYPE type,
                               PRX_NET_NAME* net_name) {
  if (net_name != nullptr) *net_name = nullptr;
  if (table == nullptr || name == nullptr || net_name == nullptr) return STATUS_INVALID_PARAMETER;
  const std::optional<NetNameKind> kind = KindOf(type);
  if (!kind.has_value()) return STATUS_INVALID_PARAMETER;
  RX_CONNECTION_ID id;
  std::memset(&id, 0, sizeof(id));
  if (table->get_connection_id != nullptr) {
    const NTSTATUS status = table->get_connection_id(rx_context, &id);
    // STATUS_NOT_IMPLEMENTED: no connection IDs, the same as the all-zero ID.
    if (status == STATUS_NOT_IMPLEMENTED) {
      std::memset(&id, 0, sizeof(id));
    } else if (status != STATUS_SUCCESS) {
      return status;  // unchanged, and nothing created
    }
  }
  const std::string_view view(name, name_length);
  if (!NameValid(view, /*allow_stream=*/false)) return STATUS_OBJECT_NAME_INVALID;
  absl::StatusOr<NetNameRef> ref = table->table->FindOrCreateWithId(view, *kind, FromC(id));
  if (!ref.ok()) return ToNtStatus(ref.status());
  *net_name = HandleOf(*std::move(ref));
  return STATUS_SUCCESS;
}

NTSTATUS RxLookupNetName(PRX_NET_NAME_TABLE table, const char* path, size_t path_length,
                         const RX_CONNECTION_ID* connection_id, PRX_NET_NAME* net_name,
                         size_t* prefix_length) {
  if (prefix_length != nullptr) *prefix_length = 0;
  if (net_name != nullptr) *net_name = nullptr;
  if (table == nullptr || path == nullptr || net_name == nullptr || prefix_length == nullptr) {
    return STATUS_INVALID_PARAMETER;
  }
  const std::string_view view(path, path_length);
  if (!NameValid(view, /*allow_stream=*/true)) return STATUS_OBJECT_NAME_INVALID;
  const ConnectionId id = connection_id == nullptr ? ConnectionId{} : FromC(*connection_id);
  absl::StatusOr<midatlas::NetNameMatch> match = table->table->Lookup(view, id);
  if (!match.ok()) return ToNtStatus(match.status());
  *prefix_length = path_length - match->remaining.size();
  *net_name = HandleOf(std::move(match->entry));
  return STATUS_SUCCESS;
}

NTSTATUS RxRemoveNetName(PRX_NET_NAME_TABLE table, PRX_NET_NAME net_name) {
  if (table == nullptr || net_name == nullptr) return STATUS_INVALID_PARAMETER;
  // Borrows the caller's reference for the call and gives it back: the caller keeps it.
  NetNameRef ref = NetNameRefAccess::AdoptRaw(NodeOf(net_name));
  const bool removed = table->table->Remove(ref);
  static_cast<void>(NetNameRefAccess::ReleaseToRaw(std::move(ref)));
  return removed ? STATUS_SUCCESS : STATUS_NOT_FOUND;
}

VOID RxReferenceNetName(PRX_NET_NAME net_name) {
  if (net_name != nullptr) midatlas::internal::NetNameCore::Acquire(NodeOf(net_name));
}

VOID RxDereferenceNetName(PRX_NET_NAME net_name) {
  if (net_name != nullptr) midatlas::internal::NetNameCore::Release(NodeOf(net_name));
}

PRX_MID_ATLAS RxGetNetNameMidAtlas(PRX_NET_NAME net_name) {
  if (net_name == nullptr) return nullptr;
  midatlas::MidAtlas* atlas = NodeOf(net_name)->ConnectionAtlas();
  if (atlas == nullptr) return nullptr;
  // The C atlas handle is the core object itself (see midatlax.cc).
  return midatlas::internal::HandleOf(midatlas::internal::FrontEndAccess::Core(*atlas));
}

RX_NET_NAME_TYPE RxGetNetNameType(PRX_NET_NAME net_name) {
  if (net_name == nullptr) return RxNetNameInvalid;
  return TypeOf(NodeOf(net_name)->kind);
}

const char* RxGetNetNameName(PRX_NET_NAME net_name, size_t* name_length) {
  if (net_name == nullptr) {
    if (name_length != nullptr) *name_length = 0;
    return nullptr;
  }
  const NetNameNode* node = NodeOf(net_name);
  if (name_length != nullptr) *name_length = node->name.size();
  return node->name.data();
}

VOID RxGetNetNameConnectionId(PRX_NET_NAME net_name, PRX_CONNECTION_ID connection_id) {
  if (connection_id == nullptr) return;
  const ConnectionId id = net_name == nullptr ? ConnectionId{} : NodeOf(net_name)->id;
  std::memcpy(connection_id, id.bytes.data(), sizeof(*connection_id));
}

}  // extern "C"
