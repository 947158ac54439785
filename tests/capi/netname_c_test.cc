// The NetName table's C API (midatlas/netname.h), used as ported mini-redirector code would.
#include "midatlas/netname.h"

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "midatlas/midatlax.h"

namespace {

constexpr NTSTATUS kAccessDenied = static_cast<NTSTATUS>(0xC0000022UL);

// The request context is a session number: 0 answers STATUS_NOT_IMPLEMENTED, 99 fails with
// STATUS_ACCESS_DENIED, anything else is the ID.
NTSTATUS GetConnectionId(PVOID rx_context, PRX_CONNECTION_ID unique_id) {
  const ULONG session = *static_cast<const ULONG*>(rx_context);
  if (session == 0) {
    unique_id->SessionID = 0xdeadU;  // ignored: NOT_IMPLEMENTED means the zero ID
    return STATUS_NOT_IMPLEMENTED;
  }
  if (session == 99) return kAccessDenied;
  unique_id->SessionID = session;
  return STATUS_SUCCESS;
}

std::vector<PVOID>* g_outstanding = nullptr;
VOID CollectOutstanding(PVOID context) { g_outstanding->push_back(context); }

class NetNameCTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_outstanding = &outstanding_;
    ASSERT_EQ(RxCreateNetNameTable(GetConnectionId, 50, 50, 0, CollectOutstanding, &table_),
              STATUS_SUCCESS);
  }
  void TearDown() override { RxDestroyNetNameTable(table_); }

  NTSTATUS Create(std::string_view name, ULONG session, RX_NET_NAME_TYPE type,
                  PRX_NET_NAME* out) {
    return RxFindOrCreateNetName(table_, &session, name.data(), name.size(), type, out);
  }

  NTSTATUS Lookup(std::string_view path, ULONG session, PRX_NET_NAME* out, size_t* prefix) {
    RX_CONNECTION_ID id;
    std::memset(&id, 0, sizeof(id));
    id.SessionID = session;
    return RxLookupNetName(table_, path.data(), path.size(), &id, out, prefix);
  }

  PRX_NET_NAME_TABLE table_ = nullptr;
  std::vector<PVOID> outstanding_;
};

TEST_F(NetNameCTest, TwoSessionsToOneShareGetDifferentNetNamesAndAtlases) {
  PRX_NET_NAME a = nullptr;
  PRX_NET_NAME b = nullptr;
  ASSERT_EQ(Create("\\\\server\\share", 1, RxNetNameVNetRoot, &a), STATUS_SUCCESS);
  ASSERT_EQ(Create("\\\\server\\share", 2, RxNetNameVNetRoot, &b), STATUS_SUCCESS);
  EXPECT_NE(a, b);
  PRX_MID_ATLAS atlas_a = RxGetNetNameMidAtlas(a);
  PRX_MID_ATLAS atlas_b = RxGetNetNameMidAtlas(b);
  ASSERT_NE(atlas_a, nullptr);
  EXPECT_NE(atlas_a, atlas_b);
  EXPECT_EQ(RxGetMaximumNumberOfMids(atlas_a), 50);
  int request = 0;
  USHORT mid = 0;
  ASSERT_EQ(RxAssociateContextWithMid(atlas_a, &request, &mid), STATUS_SUCCESS);
  EXPECT_EQ(RxMapMidToContext(atlas_a, mid), &request);
  EXPECT_EQ(RxMapMidToContext(atlas_b, mid), nullptr);
  PVOID back = nullptr;
  ASSERT_EQ(RxMapAndDissociateMidFromContext(atlas_a, mid, &back), STATUS_SUCCESS);

  RX_CONNECTION_ID id;
  RxGetNetNameConnectionId(b, &id);
  EXPECT_EQ(id.SessionID, 2U);
  EXPECT_EQ(RxGetNetNameType(a), RxNetNameVNetRoot);
  RxDereferenceNetName(a);
  RxDereferenceNetName(b);
}

TEST_F(NetNameCTest, NotImplementedIsTheAllZeroId) {
  PRX_NET_NAME via_provider = nullptr;
  ASSERT_EQ(Create("\\\\server", 0, RxNetNameServerCall, &via_provider), STATUS_SUCCESS);
  RX_CONNECTION_ID id;
  RxGetNetNameConnectionId(via_provider, &id);
  for (UCHAR byte : id.Bytes) EXPECT_EQ(byte, 0);
  PRX_NET_NAME found = nullptr;
  size_t prefix = 0;
  ASSERT_EQ(RxLookupNetName(table_, "\\\\server\\x", 10, nullptr, &found, &prefix),
            STATUS_SUCCESS);
  EXPECT_EQ(found, via_provider);
  EXPECT_EQ(prefix, 8U);
  RxDereferenceNetName(found);
  RxDereferenceNetName(via_provider);
}

TEST_F(NetNameCTest, AProviderErrorComesBackUnchangedAndCreatesNothing) {
  PRX_NET_NAME name = reinterpret_cast<PRX_NET_NAME>(&outstanding_);
  EXPECT_EQ(Create("\\\\server\\share", 99, RxNetNameNetRoot, &name), kAccessDenied);
  EXPECT_EQ(name, nullptr);
  size_t prefix = 0;
  EXPECT_EQ(RxLookupNetName(table_, "\\\\server", 8, nullptr, &name, &prefix), STATUS_NOT_FOUND);
}

TEST_F(NetNameCTest, BadNamesAreObjectNameInvalidAndInsertNothing) {
  PRX_NET_NAME name = nullptr;
  const std::string with_nul("\\\\server\\a\0b", 12);
  for (std::string_view bad : {std::string_view("server"), std::string_view("\\\\a\\\\b"),
                               std::string_view(with_nul), std::string_view("\\\\a\\b\\"),
                               std::string_view("\\\\a\\b:c")}) {
    EXPECT_EQ(Create(bad, 1, RxNetNameNetRoot, &name), STATUS_OBJECT_NAME_INVALID) << bad;
    EXPECT_EQ(name, nullptr);
  }
  const std::string too_long(RX_NETNAME_MAX_BYTES + 1, 'a');
  EXPECT_EQ(Create("\\\\" + too_long, 1, RxNetNameServerCall, &name),
            STATUS_OBJECT_NAME_INVALID);
  size_t prefix = 0;
  EXPECT_EQ(Lookup("\\server", 1, &name, &prefix), STATUS_OBJECT_NAME_INVALID);
  EXPECT_EQ(Lookup("\\\\server", 1, &name, &prefix), STATUS_NOT_FOUND);
}

// netname.h's NULL rule, function by function: NTSTATUS functions answer
// STATUS_INVALID_PARAMETER and clear the outputs they were given.
TEST_F(NetNameCTest, CreateTableWithNullTableOrBadSizesIsInvalidParameterAndClearsTable) {
  EXPECT_EQ(RxCreateNetNameTable(nullptr, 10, 10, 0, nullptr, nullptr), STATUS_INVALID_PARAMETER);
  PRX_NET_NAME_TABLE table = table_;  // not NULL, so that the clear shows
  EXPECT_EQ(RxCreateNetNameTable(nullptr, 10, 11, 0, nullptr, &table), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(table, nullptr);
}

TEST_F(NetNameCTest, FindOrCreateWithANullArgumentIsInvalidParameterAndClearsNetName) {
  PRX_NET_NAME sentinel = reinterpret_cast<PRX_NET_NAME>(&outstanding_);
  PRX_NET_NAME name = sentinel;
  ULONG session = 1;
  EXPECT_EQ(RxFindOrCreateNetName(nullptr, &session, "\\\\s", 3, RxNetNameServerCall, &name),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(name, nullptr);
  name = sentinel;
  EXPECT_EQ(RxFindOrCreateNetName(table_, &session, nullptr, 3, RxNetNameServerCall, &name),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(name, nullptr);
  EXPECT_EQ(RxFindOrCreateNetName(table_, &session, "\\\\s", 3, RxNetNameServerCall, nullptr),
            STATUS_INVALID_PARAMETER);
  // None of them created anything.
  size_t prefix = 0;
  EXPECT_EQ(Lookup("\\\\s", 1, &name, &prefix), STATUS_NOT_FOUND);
}

TEST_F(NetNameCTest, TypesThatDoNotFitTheNameOrDoNotExistAreInvalidParameters) {
  PRX_NET_NAME name = nullptr;
  EXPECT_EQ(Create("\\\\s", 1, RxNetNameNetRoot, &name), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(Create("\\\\s\\share", 1, RxNetNameServerCall, &name), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(Create("\\\\s", 1, RxNetNameInvalid, &name), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(Create("\\\\s", 1, static_cast<RX_NET_NAME_TYPE>(3), &name),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(name, nullptr);
}

TEST_F(NetNameCTest, LookupWithANullArgumentIsInvalidParameterAndClearsItsOutputs) {
  PRX_NET_NAME server = nullptr;
  ASSERT_EQ(Create("\\\\s", 0, RxNetNameServerCall, &server), STATUS_SUCCESS);
  PRX_NET_NAME name = server;
  size_t prefix = 99;
  EXPECT_EQ(RxLookupNetName(nullptr, "\\\\s", 3, nullptr, &name, &prefix),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(name, nullptr);
  EXPECT_EQ(prefix, 0U);
  name = server;
  prefix = 99;
  EXPECT_EQ(RxLookupNetName(table_, nullptr, 3, nullptr, &name, &prefix),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(name, nullptr);
  EXPECT_EQ(prefix, 0U);
  prefix = 99;
  EXPECT_EQ(RxLookupNetName(table_, "\\\\s", 3, nullptr, nullptr, &prefix),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(prefix, 0U);
  name = server;
  EXPECT_EQ(RxLookupNetName(table_, "\\\\s", 3, nullptr, &name, nullptr),
            STATUS_INVALID_PARAMETER);
  EXPECT_EQ(name, nullptr);
  // A NULL ConnectionId is the all-zero ID, not an error.
  ASSERT_EQ(RxLookupNetName(table_, "\\\\s", 3, nullptr, &name, &prefix), STATUS_SUCCESS);
  EXPECT_EQ(name, server);
  RxDereferenceNetName(name);
  RxDereferenceNetName(server);
}

TEST_F(NetNameCTest, RemoveWithANullArgumentIsInvalidParameterAndRemovesNothing) {
  PRX_NET_NAME server = nullptr;
  ASSERT_EQ(Create("\\\\s", 1, RxNetNameServerCall, &server), STATUS_SUCCESS);
  EXPECT_EQ(RxRemoveNetName(nullptr, server), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxRemoveNetName(table_, nullptr), STATUS_INVALID_PARAMETER);
  EXPECT_EQ(RxRemoveNetName(table_, server), STATUS_SUCCESS);  // still in the table until now
  RxDereferenceNetName(server);
}

// Getters return a neutral value for a NULL NetName.
TEST_F(NetNameCTest, GettersOfANullNetNameReturnNeutralValues) {
  EXPECT_EQ(RxGetNetNameMidAtlas(nullptr), nullptr);
  EXPECT_EQ(RxGetNetNameType(nullptr), RxNetNameInvalid);
  size_t length = 7;
  EXPECT_EQ(RxGetNetNameName(nullptr, &length), nullptr);
  EXPECT_EQ(length, 0U);
  EXPECT_EQ(RxGetNetNameName(nullptr, nullptr), nullptr);
  RX_CONNECTION_ID id;
  std::memset(&id, 0xab, sizeof(id));
  RxGetNetNameConnectionId(nullptr, &id);
  for (UCHAR byte : id.Bytes) EXPECT_EQ(byte, 0);
}

TEST_F(NetNameCTest, OptionalOutputsOfGettersMayBeNull) {
  PRX_NET_NAME server = nullptr;
  ASSERT_EQ(Create("\\\\server", 5, RxNetNameServerCall, &server), STATUS_SUCCESS);
  const char* name = RxGetNetNameName(server, nullptr);
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(std::string_view(name, 8), "\\\\server");
  RxGetNetNameConnectionId(server, nullptr);  // nothing to write to: nothing done
  RX_CONNECTION_ID id;
  RxGetNetNameConnectionId(server, &id);
  EXPECT_EQ(id.SessionID, 5U);
  RxDereferenceNetName(server);
}

// VOID functions do nothing with NULL: in particular they touch no entry's references.
TEST_F(NetNameCTest, VoidFunctionsGivenNullDoNothing) {
  PRX_NET_NAME server = nullptr;
  ASSERT_EQ(Create("\\\\s", 1, RxNetNameServerCall, &server), STATUS_SUCCESS);
  RxReferenceNetName(nullptr);
  RxDereferenceNetName(nullptr);
  RxDestroyNetNameTable(nullptr);
  RxDereferenceNetName(server);  // the only reference: the entry leaves the table
  PRX_NET_NAME found = nullptr;
  size_t prefix = 0;
  EXPECT_EQ(Lookup("\\\\s", 1, &found, &prefix), STATUS_NOT_FOUND);
}

TEST_F(NetNameCTest, ATypeClashIsANameCollision) {
  PRX_NET_NAME root = nullptr;
  PRX_NET_NAME clash = nullptr;
  ASSERT_EQ(Create("\\\\s\\share", 1, RxNetNameNetRoot, &root), STATUS_SUCCESS);
  EXPECT_EQ(Create("\\\\s\\share", 1, RxNetNameVNetRoot, &clash), STATUS_OBJECT_NAME_COLLISION);
  EXPECT_EQ(clash, nullptr);
  RxDereferenceNetName(root);
}

TEST_F(NetNameCTest, LookupGivesTheLongestPrefixLength) {
  PRX_NET_NAME root = nullptr;
  ASSERT_EQ(Create("\\\\Server\\Share", 7, RxNetNameNetRoot, &root), STATUS_SUCCESS);
  PRX_NET_NAME found = nullptr;
  size_t prefix = 0;
  const std::string_view path = "\\\\SERVER\\share\\dir\\file.txt:stream";
  ASSERT_EQ(Lookup(path, 7, &found, &prefix), STATUS_SUCCESS);
  EXPECT_EQ(found, root);
  EXPECT_EQ(path.substr(prefix), "\\dir\\file.txt:stream");
  size_t length = 0;
  const char* name = RxGetNetNameName(found, &length);
  EXPECT_EQ(std::string_view(name, length), "\\\\Server\\Share");
  RxDereferenceNetName(found);
  EXPECT_EQ(Lookup(path, 8, &found, &prefix), STATUS_NOT_FOUND);
  RxDereferenceNetName(root);
}

TEST_F(NetNameCTest, CaseSensitiveFlagTellsCaseApart) {
  PRX_NET_NAME_TABLE exact = nullptr;
  ASSERT_EQ(RxCreateNetNameTable(nullptr, 50, 50, RX_NETNAME_CASE_SENSITIVE, nullptr, &exact),
            STATUS_SUCCESS);
  PRX_NET_NAME name = nullptr;
  ASSERT_EQ(RxFindOrCreateNetName(exact, nullptr, "\\\\Server", 8, RxNetNameServerCall, &name),
            STATUS_SUCCESS);
  PRX_NET_NAME found = nullptr;
  size_t prefix = 0;
  EXPECT_EQ(RxLookupNetName(exact, "\\\\server", 8, nullptr, &found, &prefix), STATUS_NOT_FOUND);
  EXPECT_EQ(RxLookupNetName(exact, "\\\\Server", 8, nullptr, &found, &prefix), STATUS_SUCCESS);
  RxDereferenceNetName(found);
  RxDereferenceNetName(name);
  RxDestroyNetNameTable(exact);
}

TEST_F(NetNameCTest, RemoveAndTheLastDereferenceDrainTheAtlasOnce) {
  PRX_NET_NAME root = nullptr;
  ASSERT_EQ(Create("\\\\server\\share", 1, RxNetNameNetRoot, &root), STATUS_SUCCESS);
  RxReferenceNetName(root);
  std::vector<int> requests(5);
  PRX_MID_ATLAS atlas = RxGetNetNameMidAtlas(root);
  for (int& request : requests) {
    USHORT mid = 0;
    ASSERT_EQ(RxAssociateContextWithMid(atlas, &request, &mid), STATUS_SUCCESS);
  }
  EXPECT_EQ(RxRemoveNetName(table_, root), STATUS_SUCCESS);
  EXPECT_EQ(RxRemoveNetName(table_, root), STATUS_NOT_FOUND);
  RxDereferenceNetName(root);
  EXPECT_TRUE(outstanding_.empty());  // one reference is still held
  RxDereferenceNetName(root);
  ASSERT_EQ(outstanding_.size(), requests.size());
  std::set<PVOID> distinct(outstanding_.begin(), outstanding_.end());
  EXPECT_EQ(distinct.size(), requests.size());
  PRX_NET_NAME found = nullptr;
  size_t prefix = 0;
  EXPECT_EQ(Lookup("\\\\server", 1, &found, &prefix), STATUS_NOT_FOUND);
}

}  // namespace
