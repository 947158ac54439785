// The extensions through the C++ API: AtlasOptions::reserved_mids and excluded_mids, and
// Associate with AssociateOptions. The C API's suite (tests/capi/midatlax_ex_test.cc) covers the
// shapes and races in depth; this one pins what the C++ front end adds: validation messages,
// status codes, and that both overloads of Associate obey the reserve.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "midatlas/mid_atlas.h"

namespace midatlas {
namespace {

void* Ctx(std::uintptr_t value) { return reinterpret_cast<void*>(value); }

TEST(MidAtlasEx, BadReserveIsInvalidArgumentWithAMessage) {
  for (const std::uint32_t reserved : {10U, 11U, 70000U}) {
    absl::StatusOr<MidAtlas> atlas =
        MidAtlas::Create({.max_mids = 10, .initial_mids = 5, .reserved_mids = reserved});
    ASSERT_FALSE(atlas.ok());
    EXPECT_TRUE(absl::IsInvalidArgument(atlas.status()));
    EXPECT_NE(std::string(atlas.status().message()).find("reserved_mids"), std::string::npos);
  }
  EXPECT_TRUE(MidAtlas::Create({.max_mids = 10, .initial_mids = 5, .reserved_mids = 9}).ok());
}

TEST(MidAtlasEx, AMaximumTheExclusionsLeaveNoRoomForIsInvalidArgument) {
  absl::StatusOr<MidAtlas> atlas =
      MidAtlas::Create({.max_mids = 65535, .initial_mids = 50, .excluded_mids = {0xFFFF}});
  EXPECT_TRUE(atlas.ok());
  atlas = MidAtlas::Create(
      {.max_mids = 65535, .initial_mids = 50, .excluded_mids = {0xFFFF, 0, 0xFFFF}});
  ASSERT_FALSE(atlas.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(atlas.status()));
  EXPECT_NE(std::string(atlas.status().message()).find("excluded"), std::string::npos);
  // The other checks still come first.
  atlas = MidAtlas::Create({.max_mids = 0, .initial_mids = 1, .excluded_mids = {1}});
  ASSERT_FALSE(atlas.ok());
  EXPECT_NE(std::string(atlas.status().message()).find("max_mids"), std::string::npos);
}

TEST(MidAtlasEx, ExcludedValuesAreNeverHandedOut) {
  const std::vector<Mid> excluded = {0, 5, 16, 17, 31, 40, 41};
  absl::StatusOr<MidAtlas> atlas =
      MidAtlas::Create({.max_mids = 40, .initial_mids = 1, .excluded_mids = excluded});
  ASSERT_TRUE(atlas.ok());
  const std::set<Mid> never(excluded.begin(), excluded.end());
  for (int round = 0; round < 3; ++round) {
    std::set<Mid> held;
    for (std::uintptr_t i = 1; i <= 40; ++i) {
      absl::StatusOr<Mid> mid = atlas->Associate(Ctx(i));
      ASSERT_TRUE(mid.ok()) << mid.status();
      EXPECT_EQ(never.count(*mid), 0U) << *mid;
      EXPECT_TRUE(held.insert(*mid).second);
    }
    EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(Ctx(99)).status()));
    for (const Mid value : never) EXPECT_EQ(atlas->Map(value), nullptr);
    EXPECT_EQ(atlas->IterateAndRemove([](void*) {}), 40U);
  }
}

TEST(MidAtlasEx, BothAssociateOverloadsObeyTheReserve) {
  absl::StatusOr<MidAtlas> atlas =
      MidAtlas::Create({.max_mids = 6, .initial_mids = 6, .reserved_mids = 2});
  ASSERT_TRUE(atlas.ok());
  EXPECT_EQ(atlas->reserved_mids(), 2U);
  for (std::uintptr_t i = 1; i <= 2; ++i) EXPECT_TRUE(atlas->Associate(Ctx(i)).ok());
  for (std::uintptr_t i = 3; i <= 4; ++i) EXPECT_TRUE(atlas->Associate(Ctx(i), {}).ok());
  EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(Ctx(5)).status()));
  EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(Ctx(5), {.use_reserve = false}).status()));
  absl::StatusOr<Mid> reserved = atlas->Associate(Ctx(5), {.use_reserve = true});
  ASSERT_TRUE(reserved.ok());
  EXPECT_EQ(atlas->Map(*reserved), Ctx(5));
  EXPECT_TRUE(atlas->Associate(Ctx(6), {.use_reserve = true}).ok());
  EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(Ctx(7), {.use_reserve = true}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(atlas->Associate(nullptr, {.use_reserve = true}).status()));
  EXPECT_EQ(atlas->mids_in_use(), 6U);
  // Freeing the reserved MID makes room for a reserve taker only: 5 held >= 6 - 2.
  ASSERT_TRUE(atlas->MapAndDissociate(*reserved).ok());
  EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(Ctx(8)).status()));
  EXPECT_TRUE(atlas->Associate(Ctx(8), {.use_reserve = true}).ok());
}

TEST(MidAtlasEx, GenerationBits) {
  absl::StatusOr<MidAtlas> bad =
      MidAtlas::Create({.max_mids = 4097, .initial_mids = 1, .generation_bits = 4});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_NE(std::string(bad.status().message()).find("generation_bits"), std::string::npos);
  bad = MidAtlas::Create({.max_mids = 1, .initial_mids = 1, .generation_bits = 16});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  absl::StatusOr<MidAtlas> atlas =
      MidAtlas::Create({.max_mids = 4096, .initial_mids = 16, .generation_bits = 4});
  ASSERT_TRUE(atlas.ok());
  EXPECT_EQ(atlas->generation_bits(), 4U);
  absl::StatusOr<Mid> first = atlas->Associate(Ctx(1));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(atlas->MapAndDissociate(*first).ok());
  absl::StatusOr<Mid> second = atlas->Associate(Ctx(2));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, *first + 0x1000) << "same index, next generation";
  EXPECT_EQ(atlas->Map(*first), nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(atlas->MapAndDissociate(*first).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(atlas->Reassociate(*first, Ctx(3))));
  EXPECT_EQ(atlas->Map(*second), Ctx(2));
  // An index whose every generation is excluded leaves no room for the 4096th MID.
  std::vector<Mid> every_generation;
  for (Mid gen = 0; gen < 16; ++gen) every_generation.push_back(static_cast<Mid>(gen << 12 | 9));
  bad = MidAtlas::Create({.max_mids = 4096,
                          .initial_mids = 16,
                          .excluded_mids = every_generation,
                          .generation_bits = 4});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_NE(std::string(bad.status().message()).find("excluded"), std::string::npos);
  EXPECT_TRUE(MidAtlas::Create({.max_mids = 4095,
                                .initial_mids = 16,
                                .excluded_mids = every_generation,
                                .generation_bits = 4})
                  .ok());
}

TEST(MidAtlasEx, DefaultsChangeNothing) {
  absl::StatusOr<MidAtlas> atlas = MidAtlas::Create({.max_mids = 20, .initial_mids = 1});
  ASSERT_TRUE(atlas.ok());
  EXPECT_EQ(atlas->reserved_mids(), 0U);
  for (std::uintptr_t i = 0; i < 20; ++i) {
    absl::StatusOr<Mid> mid = atlas->Associate(Ctx(i + 1), {.use_reserve = i % 2 == 0});
    ASSERT_TRUE(mid.ok());
    EXPECT_EQ(*mid, i);
  }
  EXPECT_TRUE(IsAllMidsInUse(atlas->Associate(Ctx(99)).status()));
}

}  // namespace
}  // namespace midatlas
