// Copies a file out of a 9P2000.L export (diod, or any 9P2000.L server) with N reads in
// flight at once, printing progress and the throughput.
//
//   ninep_copy HOST:PORT EXPORT REMOTE_PATH LOCAL_FILE [--parallel=N] [--uname=NAME]
//   e.g. ninep_copy 127.0.0.1:5640 /srv/data logs/big.log /tmp/big.log --parallel=16
//
// One connection, N threads, each reading the next chunk (one msize-sized Tread at a time)
// and writing it at its offset: the connection's tag table matches the N replies in flight
// to their readers.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "ninep/client.h"

namespace {

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "ninep_copy: %s: %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  std::uint32_t parallel = 8;
  std::string uname = "root";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--parallel=", 0) == 0) {
      if (!absl::SimpleAtoi(a.substr(11), &parallel) || parallel < 1 || parallel > 1024) {
        std::fprintf(stderr, "ninep_copy: --parallel takes 1..1024\n");
        return 2;
      }
    } else if (a.rfind("--uname=", 0) == 0) {
      uname = a.substr(8);
    } else {
      args.push_back(a);
    }
  }
  if (args.size() != 4) {
    std::fprintf(stderr,
                 "usage: ninep_copy HOST:PORT EXPORT REMOTE_PATH LOCAL_FILE [--parallel=N] "
                 "[--uname=NAME]\n");
    return 2;
  }
  const std::string& addr = args[0];
  const std::string& export_path = args[1];
  const std::string& remote = args[2];
  const std::string& local = args[3];

  absl::StatusOr<std::unique_ptr<ninep::Client>> client = ninep::Client::Connect(addr);
  if (!client.ok()) return Fail("connect " + addr, client.status());
  absl::StatusOr<std::uint32_t> root = (*client)->Attach(uname, export_path, 0);
  if (!root.ok()) return Fail("attach " + export_path, root.status());
  std::vector<std::string> names = absl::StrSplit(remote, '/', absl::SkipEmpty());
  if (names.size() > ninep::kMaxWalkNames) {
    return Fail(remote, absl::InvalidArgumentError("more than 16 path components"));
  }
  absl::StatusOr<std::uint32_t> file = (*client)->Walk(*root, names);
  if (!file.ok()) return Fail("walk " + remote, file.status());
  absl::StatusOr<ninep::Attr> attr = (*client)->Getattr(*file);
  if (!attr.ok()) return Fail("getattr " + remote, attr.status());
  absl::StatusOr<ninep::Ropen> opened = (*client)->Lopen(*file, O_RDONLY);
  if (!opened.ok()) return Fail("open " + remote, opened.status());

  const int out = ::open(local.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) return Fail("create " + local, absl::ErrnoToStatus(errno, "open"));
  const std::uint64_t size = attr->size;
  std::uint32_t chunk = (*client)->max_io();
  if (opened->iounit != 0) chunk = std::min(chunk, opened->iounit);
  const std::uint64_t chunks = (size + chunk - 1) / chunk;

  std::atomic<std::uint64_t> next_chunk{0};
  std::atomic<std::uint64_t> copied{0};
  std::atomic<bool> failed{false};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> readers;
  for (std::uint32_t r = 0; r < parallel; ++r) {
    readers.emplace_back([&] {
      for (;;) {
        // (copy:N1) relaxed: hands out chunk numbers; each is read by one thread only.
        const std::uint64_t c = next_chunk.fetch_add(1, std::memory_order_relaxed);
        if (c >= chunks || failed.load(std::memory_order_relaxed)) return;  // (copy:N2)
        std::uint64_t offset = c * chunk;
        const std::uint64_t end = std::min(size, offset + chunk);
        while (offset < end) {  // a server may answer with less than asked
          absl::StatusOr<std::vector<std::uint8_t>> data =
              (*client)->Read(*file, offset, static_cast<std::uint32_t>(end - offset));
          if (!data.ok() || data->empty() ||
              ::pwrite(out, data->data(), data->size(), static_cast<off_t>(offset)) !=
                  static_cast<ssize_t>(data->size())) {
            if (!data.ok()) std::fprintf(stderr, "ninep_copy: read: %s\n",
                                         data.status().ToString().c_str());
            failed.store(true, std::memory_order_relaxed);  // (copy:N3) relaxed: a flag
            return;
          }
          offset += data->size();
          copied.fetch_add(data->size(), std::memory_order_relaxed);  // (copy:N4) relaxed
        }
      }
    });
  }
  // Progress, from this thread, until the readers are done.
  std::atomic<bool> done{false};
  std::thread progress([&] {
    while (!done.load(std::memory_order_acquire)) {  // (copy:N5) acquire: pairs with N6
      const std::uint64_t now = copied.load(std::memory_order_relaxed);
      std::fprintf(stderr, "\r%llu / %llu bytes (%3.0f%%)", static_cast<unsigned long long>(now),
                   static_cast<unsigned long long>(size),
                   size == 0 ? 100.0 : 100.0 * static_cast<double>(now) / static_cast<double>(size));
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  for (std::thread& t : readers) t.join();
  done.store(true, std::memory_order_release);  // (copy:N6) release: pairs with N5
  progress.join();
  ::close(out);
  (void)(*client)->Clunk(*file);
  (void)(*client)->Clunk(*root);
  if (failed.load()) {
    std::fprintf(stderr, "\nninep_copy: failed\n");
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "\r%llu / %llu bytes (100%%)\n", static_cast<unsigned long long>(size),
               static_cast<unsigned long long>(size));
  std::printf("copied %s (%llu bytes) in %.3f s: %.1f MB/s with %u reads in flight\n",
              remote.c_str(), static_cast<unsigned long long>(size), seconds,
              static_cast<double>(size) / 1e6 / std::max(seconds, 1e-9), parallel);
  return 0;
}
