// How a call of either front end ended, in the terms both document: the one vocabulary the
// typed API suite and the allocation-failure sweep judge answers in.
#ifndef MIDATLAS_TESTS_API_OUTCOME_H_
#define MIDATLAS_TESTS_API_OUTCOME_H_

#include <cstdint>
#include <ostream>

#include "absl/status/status.h"
#include "midatlas/midatlax.h"

namespace midatlas::testing_support {

enum class Outcome : std::uint8_t {
  kOk,
  kAllInUse,     // C++: kUnavailable        C: STATUS_UNSUCCESSFUL
  kOutOfMemory,  // C++: kResourceExhausted  C: STATUS_INSUFFICIENT_RESOURCES
  kInvalid,      // C++: kInvalidArgument    C: STATUS_INVALID_PARAMETER
  kUnexpected,   // any other answer (never correct)
  kThrew,        // an exception escaped the call (never correct)
};

// The C++ front end. `hot_path`: Associate, MapAndDissociate and Reassociate answer with the
// code alone (mid_atlas.h); a message there would have been allocated, which is an error too.
inline Outcome OutcomeOf(const absl::Status& status, bool hot_path = false) noexcept {
  if (status.ok()) return Outcome::kOk;
  if (hot_path && !status.message().empty()) return Outcome::kUnexpected;
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      return Outcome::kAllInUse;
    case absl::StatusCode::kResourceExhausted:
      return Outcome::kOutOfMemory;
    case absl::StatusCode::kInvalidArgument:
      return Outcome::kInvalid;
    default:
      return Outcome::kUnexpected;
  }
}

// The C front end.
inline Outcome OutcomeOf(NTSTATUS status) noexcept {
  if (status == STATUS_SUCCESS) return Outcome::kOk;
  if (status == STATUS_UNSUCCESSFUL) return Outcome::kAllInUse;
  if (status == STATUS_INSUFFICIENT_RESOURCES) return Outcome::kOutOfMemory;
  if (status == STATUS_INVALID_PARAMETER) return Outcome::kInvalid;
  return Outcome::kUnexpected;
}

inline std::ostream& operator<<(std::ostream& out, Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return out << "ok";
    case Outcome::kAllInUse:
      return out << "all in use";
    case Outcome::kOutOfMemory:
      return out << "out of memory";
    case Outcome::kInvalid:
      return out << "invalid";
    case Outcome::kThrew:
      return out << "threw";
    case Outcome::kUnexpected:
      break;
  }
  return out << "unexpected";
}

}  // namespace midatlas::testing_support

#endif  // MIDATLAS_TESTS_API_OUTCOME_H_
