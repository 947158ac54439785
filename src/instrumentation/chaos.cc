#include "instrumentation/chaos.h"

#include <chrono>
#include <random>
#include <thread>

namespace midatlas::internal {

void ChaosPoint() noexcept {
  thread_local std::minstd_rand generator{std::random_device{}()};
  const auto draw = generator() % 64;
  if (draw < 8) {
    std::this_thread::yield();
  } else if (draw == 8) {
    std::this_thread::sleep_for(std::chrono::microseconds(generator() % 50));
  }
}

}  // namespace midatlas::internal
