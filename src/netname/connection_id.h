// The provider rules of net_name_table.h (RDBSS MRxGetConnectionId), for the table's
// FindOrCreate and for tests; the C API applies the same rules to its NTSTATUS callback.
#ifndef MIDATLAS_SRC_NETNAME_CONNECTION_ID_H_
#define MIDATLAS_SRC_NETNAME_CONNECTION_ID_H_

#include "absl/status/statusor.h"
#include "midatlas/net_name_table.h"

namespace midatlas::internal {

// The ID `provider` gives for `request_context`: a null provider or kUnimplemented give the
// all-zero ID; any other error is returned unchanged.
absl::StatusOr<ConnectionId> ResolveConnectionId(ConnectionIdProvider* provider,
                                                 void* request_context);

}  // namespace midatlas::internal

#endif  // MIDATLAS_SRC_NETNAME_CONNECTION_ID_H_
