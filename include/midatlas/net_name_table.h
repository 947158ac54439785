// midatlas NetName table: connections, each owning its MID atlas.
//
// WHAT IT IS
//   MIDs are unique per connection, so a client keeps one MID atlas per connection and must
//   find the right connection for every path it opens. This is the RDBSS NetName table,
//   concurrent: a table of named entries
//     server call       \\server             one connection; owns a MidAtlas
//     net root          \\server\share       a share on that connection
//     virtual net root  \\server\share[\...] a net root as seen by one session
//   keyed by the canonical name plus a connection ID. The connection ID is an opaque 8-byte
//   blob (RDBSS RX_CONNECTION_ID) that a ConnectionIdProvider (the mini-redirector's
//   MRxGetConnectionId) returns for a request; it is compared byte by byte, all of it, so that
//   several sessions to the same server and share get separate entries, connections and atlases.
//
// NAMES
//   Names compare case-insensitively (ASCII folding) unless Options::case_sensitive is set.
//   A name starts with two backslashes, then components separated by single backslashes; a
//   lookup path may end in a stream part that starts at the first ':' (\\s\sh\f:stream:$DATA).
//   Invalid (kInvalidArgument, nothing inserted): no leading "\\", an empty component or
//   stream segment, a '\' after the stream part, an embedded NUL, a path longer than
//   kMaxNetNameBytes, a component longer than kMaxNetNameComponentBytes. Entry names carry no
//   stream part; a server call name has one component, a (virtual) net root two or more.
//
// LOOKUP (longest prefix, as RDBSS walks it)
//   Lookup tries the prefixes of the path that end at a '\' or ':' boundary (and the whole
//   path), shortest first. A server call match keeps looking for a longer net root; a net root
//   or virtual net root match ends the search. It returns the entry and the rest of the path
//   ("\dir\file", ":stream", or "").
//
// LIFETIME
//   Entries are reference counted; a NetNameRef is one reference. An entry stays in the table
//   while a reference exists and until Remove; when its last reference goes it is taken out
//   of the table. A net root holds a reference to its server call (created on demand with the
//   same connection ID), so every entry reaches its connection's atlas. When a server call's
//   last reference goes, its atlas is drained (IterateAndRemove): each context still
//   associated is handed to Options::outstanding_context exactly once, then the atlas is freed.
//   Every NetNameRef must be released before the table is destroyed.
//
// PROGRESS AND CONCURRENCY
//   Lookup        lock-free: no lock, no allocation on a hit; one hash probe per prefix;
//                 readers are protected by one hazard pointer (on the bucket array).
//   FindOrCreate  a lock-free probe first; on a miss, creation serializes with other inserts
//                 and removals on one mutex. Of racing creators of one key, exactly one
//                 creates; the others receive the winner's entry.
//   Remove / last release   serialize on the same mutex.
//   No lookup ever returns (or reads) an entry that has been freed. See docs/NETNAME.md.
//
// WHEN NOT TO USE IT
//   Paths that are not UNC-style, or a table that only one thread touches (a plain map does).
//
// EXAMPLE
//   auto table = midatlas::NetNameTable::Create({.atlas = {.max_mids = 50, .initial_mids = 50}});
//   absl::StatusOr<midatlas::NetNameRef> root = (*table)->FindOrCreate(
//       "\\\\server\\share", midatlas::NetNameKind::kNetRoot, request_context);
//   midatlas::MidAtlas& atlas = *root->atlas();           // the connection's MIDs
//   absl::StatusOr<midatlas::NetNameMatch> match =
//       (*table)->Lookup("\\\\server\\share\\dir\\file.txt", root->connection_id());
//   // match->entry == *root, match->remaining == "\\dir\\file.txt"
#ifndef MIDATLAS_NET_NAME_TABLE_H_
#define MIDATLAS_NET_NAME_TABLE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "midatlas/mid_atlas.h"

namespace midatlas {

// Longest name or lookup path accepted, in bytes (UNC paths beyond this are refused).
inline constexpr std::size_t kMaxNetNameBytes = 4096;
// Longest single component (server, share, directory, file or stream segment), in bytes.
inline constexpr std::size_t kMaxNetNameComponentBytes = 255;
// Size of a connection ID: RDBSS RX_CONNECTION_ID (a union of a ULONG session ID and a LUID).
inline constexpr std::size_t kConnectionIdBytes = 8;

// An opaque connection ID, compared byte by byte. All zero bytes means "no ID".
struct ConnectionId {
  std::array<std::uint8_t, kConnectionIdBytes> bytes{};

  [[nodiscard]] bool is_zero() const noexcept {
    for (std::uint8_t b : bytes) {
      if (b != 0) return false;
    }
    return true;
  }
  friend bool operator==(const ConnectionId&, const ConnectionId&) = default;
};

// The ID whose low bytes hold `session` (little-endian), the rest zero.
ConnectionId ConnectionIdFromSession(std::uint32_t session) noexcept;

// MRxGetConnectionId: asked for the connection ID of a request before every FindOrCreate.
class ConnectionIdProvider {
 public:
  ConnectionIdProvider() = default;
  ConnectionIdProvider(const ConnectionIdProvider&) = delete;
  ConnectionIdProvider& operator=(const ConnectionIdProvider&) = delete;
  virtual ~ConnectionIdProvider();

  // An ID; or kUnimplemented (STATUS_NOT_IMPLEMENTED), which means the all-zero ID; any other
  // error is returned to the FindOrCreate caller unchanged and nothing is created. Called
  // without any lock held, from any thread.
  virtual absl::StatusOr<ConnectionId> GetConnectionId(void* request_context) = 0;
};

enum class NetNameKind : std::uint8_t { kServerCall, kNetRoot, kVNetRoot };

namespace internal {
struct NetNameNode;
class NetNameCore;
struct NetNameRefAccess;
}  // namespace internal

// One reference to an entry. Copying takes another reference; destruction releases it.
class NetNameRef {
 public:
  NetNameRef() noexcept = default;
  NetNameRef(const NetNameRef& other) noexcept;
  NetNameRef(NetNameRef&& other) noexcept : node_(other.node_) { other.node_ = nullptr; }
  NetNameRef& operator=(const NetNameRef& other) noexcept;
  NetNameRef& operator=(NetNameRef&& other) noexcept;
  ~NetNameRef();

  explicit operator bool() const noexcept { return node_ != nullptr; }
  // The accessors below require a non-empty reference.
  [[nodiscard]] NetNameKind kind() const noexcept;
  // The name as it was first created (original case).
  [[nodiscard]] std::string_view name() const noexcept;
  [[nodiscard]] const ConnectionId& connection_id() const noexcept;
  // The server call itself for a server call; for a net root, the server call it holds.
  [[nodiscard]] NetNameRef server_call() const noexcept;
  // The connection's atlas (the server call's). Valid while this reference is held.
  [[nodiscard]] MidAtlas* atlas() const noexcept;
  // False once the entry was removed (or replaced after its last reference went).
  [[nodiscard]] bool in_table() const;
  // References held right now (a snapshot; for tests and diagnostics).
  [[nodiscard]] std::uint32_t use_count() const noexcept;

  // Same entry.
  friend bool operator==(const NetNameRef& a, const NetNameRef& b) noexcept {
    return a.node_ == b.node_;
  }

 private:
  friend class internal::NetNameCore;
  friend struct internal::NetNameRefAccess;  // the C API's handles
  friend class NetNameTable;
  // Adopts one reference that `node` already counts.
  explicit NetNameRef(internal::NetNameNode* node) noexcept : node_(node) {}
  // Gives up the reference without releasing it, and adopts one (the C API's handles).
  [[nodiscard]] internal::NetNameNode* ReleaseToRaw() noexcept;
  static NetNameRef AdoptRaw(internal::NetNameNode* node) noexcept { return NetNameRef(node); }

  internal::NetNameNode* node_ = nullptr;
};

// A Lookup result: the entry and the part of the path after its name (a view into the path).
struct NetNameMatch {
  NetNameRef entry;
  std::string_view remaining;
};

// Receives each context still associated in a server call's atlas when the server call goes.
using OutstandingContextHandler =
    std::function<void(std::string_view server_name, const ConnectionId& id, void* context)>;

class NetNameTable {
 public:
  struct Options {
    // Atlas options of every server call not given its own (the context_destructor is not
    // used: contexts are handed to outstanding_context instead).
    AtlasOptions atlas{.max_mids = 50, .initial_mids = 50};
    // Exact byte comparison of names instead of ASCII case folding.
    bool case_sensitive = false;
    // Buckets at creation (rounded up to a power of two); the array doubles as entries grow.
    std::size_t initial_buckets = 64;
    // Asked for the connection ID of each FindOrCreate request; null means "no IDs".
    std::shared_ptr<ConnectionIdProvider> provider{};
    // Receives the contexts still associated when a server call's atlas is drained. May be
    // empty (the contexts are then simply dissociated).
    OutstandingContextHandler outstanding_context{};
  };

  // InvalidArgument for bad atlas options.
  static absl::StatusOr<std::unique_ptr<NetNameTable>> Create(Options options);

  NetNameTable(const NetNameTable&) = delete;
  NetNameTable& operator=(const NetNameTable&) = delete;
  // Every NetNameRef must have been released; no call may run during or after destruction.
  ~NetNameTable();

  // Asks the provider for `request_context`'s connection ID, then FindOrCreateWithId. A
  // provider error other than kUnimplemented is returned unchanged and nothing is created.
  absl::StatusOr<NetNameRef> FindOrCreate(
      std::string_view name, NetNameKind kind, void* request_context,
      const std::optional<AtlasOptions>& server_atlas = std::nullopt);

  // The entry (name, id) if one is in the table, else a new one. A server call name has one
  // component, a (virtual) net root two or more. A (virtual) net root also finds or creates
  // its server call; `server_atlas` (else Options::atlas) sizes a server call this call
  // creates. Errors: kInvalidArgument (bad name or atlas options; kind does not fit the
  // number of components), kFailedPrecondition (the key exists as another kind),
  // kResourceExhausted (allocation failed).
  absl::StatusOr<NetNameRef> FindOrCreateWithId(
      std::string_view name, NetNameKind kind, const ConnectionId& id,
      const std::optional<AtlasOptions>& server_atlas = std::nullopt);

  // Longest-prefix lookup (see LOOKUP above). kNotFound when no prefix matches,
  // kInvalidArgument for a bad path. Lock-free.
  [[nodiscard]] absl::StatusOr<NetNameMatch> Lookup(std::string_view path,
                                                    const ConnectionId& id) const;

  // Takes the entry out of the table: later lookups miss it; references stay valid. False
  // when it was no longer in the table.
  bool Remove(const NetNameRef& entry);

  // Entries in the table (a snapshot).
  [[nodiscard]] std::size_t size() const noexcept;
  [[nodiscard]] std::size_t bucket_count() const;
  [[nodiscard]] bool case_sensitive() const noexcept;

 private:
  explicit NetNameTable(std::unique_ptr<internal::NetNameCore> core) noexcept;
  std::unique_ptr<internal::NetNameCore> core_;
};

}  // namespace midatlas

#endif  // MIDATLAS_NET_NAME_TABLE_H_
