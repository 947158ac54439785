// TagTable::Create: picks the implementation (tag_table.h).
#include "tag_table.h"

#include "absl/strings/str_cat.h"

namespace ninep::internal {

absl::StatusOr<std::unique_ptr<TagTable>> MakeAtlasTagTable(std::uint32_t max_in_flight);
absl::StatusOr<std::unique_ptr<TagTable>> MakeMutexTagTable(std::uint32_t max_in_flight);

int SlotBits(std::uint32_t max_in_flight) {
  int bits = 1;
  while (bits < 16 && (std::uint32_t{1} << bits) < max_in_flight) ++bits;
  return bits;
}

absl::StatusOr<std::unique_ptr<TagTable>> TagTable::Create(TagTableKind kind,
                                                           std::uint32_t max_in_flight) {
  // Tags are 16 bits and NOTAG is never handed out, so at most 65,535 are in flight.
  if (max_in_flight < 1 || max_in_flight > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight is ", max_in_flight, "; it must be 1..65535"));
  }
  switch (kind) {
    case TagTableKind::kAtlas:
      return MakeAtlasTagTable(max_in_flight);
    case TagTableKind::kMutex:
      return MakeMutexTagTable(max_in_flight);
  }
  return absl::InvalidArgumentError("unknown tag table kind");
}

}  // namespace ninep::internal
