#include <gtest/gtest.h>

#include "midatlas/mid_atlas.h"

namespace midatlas {
namespace {

TEST(AtlasSmoke, AssociateMapDissociate) {
  auto atlas = MidAtlas::Create({.max_mids = 65535, .initial_mids = 50});
  ASSERT_TRUE(atlas.ok()) << atlas.status();
  int x = 0;
  auto mid = (*atlas)->Associate(&x);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ((*atlas)->Map(*mid), &x);
  auto back = (*atlas)->MapAndDissociate(*mid);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, &x);
  EXPECT_EQ((*atlas)->Map(*mid), nullptr);
}

}  // namespace
}  // namespace midatlas
