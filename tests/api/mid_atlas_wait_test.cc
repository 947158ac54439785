// The quarantine and waiting through the C++ API (mid_atlas.h): status codes that tell the
// cases apart, MapAndDissociateOrLate, AssociateWait's deadline, AssociateAsync's MidWait
// handle (cancel on destruction, outliving a completed request), TypedMidAtlas's options.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "midatlas/mid_atlas.h"

namespace midatlas {
namespace {

void* Ctx(std::uintptr_t value) { return reinterpret_cast<void*>(value); }

MidAtlas Make(std::uint32_t max, std::uint32_t generation_bits = 0) {
  absl::StatusOr<MidAtlas> atlas = MidAtlas::Create(
      {.max_mids = max, .initial_mids = max < 16 ? max : 16, .generation_bits = generation_bits});
  EXPECT_TRUE(atlas.ok()) << atlas.status();
  return *std::move(atlas);
}

std::vector<Mid> Fill(MidAtlas& atlas, std::uintptr_t count) {
  std::vector<Mid> mids;
  for (std::uintptr_t i = 0; i < count; ++i) {
    absl::StatusOr<Mid> mid = atlas.Associate(Ctx(0x100 + i));
    EXPECT_TRUE(mid.ok()) << mid.status();
    mids.push_back(*mid);
  }
  return mids;
}

TEST(MidAtlasDiscardTest, StatusCodesTellTheCasesApart) {
  MidAtlas atlas = Make(64, 4);
  const Mid mid = Fill(atlas, 1)[0];
  absl::StatusOr<void*> taken = atlas.Discard(mid, Ctx(0x77));
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(*taken, Ctx(0x100));
  EXPECT_EQ(atlas.discarded_mids(), 1U);
  EXPECT_EQ(atlas.mids_in_use(), 1U);
  EXPECT_EQ(atlas.Map(mid), nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(atlas.Discard(mid).status()));
  // MapAndDissociate says Cancelled and leaves the late context...
  EXPECT_TRUE(absl::IsCancelled(atlas.MapAndDissociate(mid).status()));
  // ...which MapAndDissociateOrLate hands out, once.
  absl::StatusOr<Dissociated> late = atlas.MapAndDissociateOrLate(mid);
  ASSERT_TRUE(late.ok());
  EXPECT_TRUE(late->late);
  EXPECT_EQ(late->context, Ctx(0x77));
  late = atlas.MapAndDissociateOrLate(mid);
  ASSERT_TRUE(late.ok());
  EXPECT_TRUE(late->late);
  EXPECT_EQ(late->context, nullptr);
  absl::StatusOr<void*> released = atlas.ReleaseDiscarded(mid);
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(*released, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(atlas.ReleaseDiscarded(mid).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(atlas.MapAndDissociateOrLate(mid).status()));
  EXPECT_EQ(atlas.discarded_mids(), 0U);
  // An ordinary MID through MapAndDissociateOrLate.
  const Mid other = *atlas.Associate(Ctx(0x200));
  late = atlas.MapAndDissociateOrLate(other);
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(late->late);
  EXPECT_EQ(late->context, Ctx(0x200));
}

TEST(MidAtlasWaitTest, AssociateWaitTimesOutWithDeadlineExceeded) {
  MidAtlas atlas = Make(2);
  Fill(atlas, 2);
  EXPECT_TRUE(absl::IsDeadlineExceeded(atlas.AssociateWait(Ctx(1), absl::ZeroDuration()).status()));
  EXPECT_TRUE(
      absl::IsDeadlineExceeded(atlas.AssociateWait(Ctx(1), absl::Milliseconds(5)).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(atlas.AssociateWait(nullptr, absl::Seconds(1)).status()));
  EXPECT_EQ(atlas.waiters(), 0U);
}

TEST(MidAtlasWaitTest, AssociateWaitIsServedByAnotherThread) {
  MidAtlas atlas = Make(2);
  const std::vector<Mid> mids = Fill(atlas, 2);
  std::optional<absl::StatusOr<Mid>> got;
  std::thread waiter([&] { got = atlas.AssociateWait(Ctx(0x99), absl::InfiniteDuration()); });
  while (atlas.waiters() == 0) std::this_thread::yield();
  ASSERT_TRUE(atlas.MapAndDissociate(mids[0]).ok());
  waiter.join();
  ASSERT_TRUE(got.has_value() && got->ok());
  EXPECT_EQ(atlas.Map(**got), Ctx(0x99));
}

TEST(MidAtlasWaitTest, AssociateAsyncAtOnceOrQueuedWithAHandle) {
  MidAtlas atlas = Make(2, 4);
  int calls = 0;
  absl::StatusOr<MidWait> now = atlas.AssociateAsync(Ctx(1), [&](absl::StatusOr<Mid>) { ++calls; });
  ASSERT_TRUE(now.ok());
  ASSERT_TRUE(now->mid().has_value());
  EXPECT_EQ(atlas.Map(*now->mid()), Ctx(1));
  const Mid second = *atlas.Associate(Ctx(2));
  std::optional<absl::StatusOr<Mid>> handed;
  absl::StatusOr<MidWait> queued =
      atlas.AssociateAsync(Ctx(3), [&](absl::StatusOr<Mid> mid) { handed = mid; });
  ASSERT_TRUE(queued.ok());
  EXPECT_FALSE(queued->mid().has_value());
  EXPECT_EQ(atlas.waiters(), 1U);
  ASSERT_TRUE(atlas.MapAndDissociate(second).ok());
  ASSERT_TRUE(handed.has_value() && handed->ok());
  EXPECT_EQ(atlas.Map(**handed), Ctx(3));
  EXPECT_FALSE(queued->Cancel());  // handed already
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(absl::IsInvalidArgument(atlas.AssociateAsync(nullptr, [](absl::StatusOr<Mid>) {}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(atlas.AssociateAsync(Ctx(1), nullptr).status()));
}

TEST(MidAtlasWaitTest, DestroyingAQueuedHandleCancelsIt) {
  MidAtlas atlas = Make(1);
  Fill(atlas, 1);
  std::optional<absl::Status> result;
  {
    absl::StatusOr<MidWait> queued = atlas.AssociateAsync(
        Ctx(3), [&](absl::StatusOr<Mid> mid) { result = mid.status(); });
    ASSERT_TRUE(queued.ok());
    EXPECT_EQ(atlas.waiters(), 1U);
  }
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(absl::IsCancelled(*result));
  EXPECT_EQ(atlas.waiters(), 0U);
}

TEST(MidAtlasWaitTest, AHandleMayOutliveTheAtlasThatCancelledIt) {
  std::optional<absl::Status> result;
  std::optional<MidWait> handle;
  {
    MidAtlas atlas = Make(1);
    Fill(atlas, 1);
    absl::StatusOr<MidWait> queued = atlas.AssociateAsync(
        Ctx(3), [&](absl::StatusOr<Mid> mid) { result = mid.status(); });
    ASSERT_TRUE(queued.ok());
    handle.emplace(*std::move(queued));
  }
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(absl::IsCancelled(*result));
  EXPECT_FALSE(handle->Cancel());
  handle.reset();
}

TEST(TypedMidAtlasTest, TakesTheExtensionOptions) {
  struct Request {
    int id;
  };
  absl::StatusOr<TypedMidAtlas<Request>> atlas = TypedMidAtlas<Request>::Create(
      {.max_mids = 64, .initial_mids = 16, .excluded_mids = {0, 1}, .generation_bits = 4});
  ASSERT_TRUE(atlas.ok()) << atlas.status();
  Request request{7};
  const Mid mid = *atlas->Associate(&request);
  // With generations an excluded value is one generation of an index: 0 and 1 are skipped.
  EXPECT_NE(mid, 0);
  EXPECT_NE(mid, 1);
  EXPECT_EQ(atlas->untyped().generation_bits(), 4U);
  EXPECT_EQ(atlas->Map(mid), &request);
  absl::StatusOr<TypedMidAtlas<Request>> bad =
      TypedMidAtlas<Request>::Create({.max_mids = 64, .reserved_mids = 64});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
}

}  // namespace
}  // namespace midatlas
