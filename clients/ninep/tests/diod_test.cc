// The client against a real diod on 127.0.0.1 (scripts/with-diod starts it with one worker
// thread, -t 1, and passes its address, export directory and PID in the environment). Every
// test runs on both tag tables.
//
// Holding a request in flight: a Tlopen of a FIFO that has no writer blocks inside diod's one
// worker (the request is "running"); requests sent after it wait in diod's queue ("queued").
// HeldFifo::Unblock opens the writing end and lets everything finish.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "diod_env.h"
#include "gtest/gtest.h"
#include "ninep/client.h"
#include "ninep/connection.h"

namespace ninep {
namespace {

using testing::DiodExport;
using testing::DiodThreadsInOpen;
using testing::Eventually;
using testing::HeldFifo;

class DiodTest : public ::testing::TestWithParam<TagTableKind> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(testing::DiodAddr().empty()) << "run under scripts/with-diod";
    Connect(1024);
  }

  void Connect(std::uint32_t max_in_flight) {
    client_.reset();
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(
        testing::DiodAddr(), {.max_in_flight = max_in_flight, .tag_table = GetParam()});
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *std::move(c);
    absl::StatusOr<std::uint32_t> root = client_->Attach("root", DiodExport(), 0);
    ASSERT_TRUE(root.ok()) << root.status();
    root_ = *root;
  }

  // A new fid for `name` in the export, walked from the root.
  std::uint32_t WalkTo(const std::string& name) {
    const std::vector<std::string> names = {name};
    absl::StatusOr<std::uint32_t> fid = client_->Walk(root_, names);
    EXPECT_TRUE(fid.ok()) << fid.status();
    return fid.ok() ? *fid : kNoFid;
  }

  // Starts a Tlopen of the FIFO `fifo` and waits until diod's worker is blocked in it.
  Call HoldWorker(const HeldFifo& fifo, const std::string& name, std::uint32_t* fid_out) {
    EXPECT_TRUE(fifo.ok());
    const std::uint32_t fid = WalkTo(name);
    *fid_out = fid;
    const int before = DiodThreadsInOpen();
    Call call = client_->connection().Start(BuildTlopen(fid, O_RDONLY));
    EXPECT_TRUE(Eventually([&] { return DiodThreadsInOpen() > before; }))
        << "diod never blocked in the FIFO's open";
    return call;
  }

  ConnectionStats Stats() { return client_->connection().stats(); }
  std::uint16_t SlotOf(std::uint16_t tag) {
    const int bits = 16 - Stats().generation_bits;
    return static_cast<std::uint16_t>(tag & ((1U << bits) - 1));
  }

  std::unique_ptr<Client> client_;
  std::uint32_t root_ = kNoFid;
};

TEST_P(DiodTest, CreateWriteReadReaddirGetattrMatchTheExport) {
  const std::string name = "created-" + std::to_string(static_cast<int>(GetParam())) + ".txt";
  const std::vector<std::string> none;
  absl::StatusOr<std::uint32_t> dir = client_->Walk(root_, none);  // a clone of the root
  ASSERT_TRUE(dir.ok()) << dir.status();
  absl::StatusOr<Ropen> created = client_->Lcreate(*dir, name, O_RDWR, 0640, 0);
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string text = "hello from 9P2000.L";
  const std::vector<std::uint8_t> bytes(text.begin(), text.end());
  absl::StatusOr<std::uint32_t> written = client_->Write(*dir, 0, bytes);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, bytes.size());
  absl::StatusOr<std::vector<std::uint8_t>> read = client_->Read(*dir, 6, 100);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(std::string(read->begin(), read->end()), text.substr(6));
  ASSERT_TRUE(client_->Clunk(*dir).ok());

  // The export holds what was written.
  std::ifstream on_disk(DiodExport() + "/" + name);
  const std::string disk_text((std::istreambuf_iterator<char>(on_disk)),
                              std::istreambuf_iterator<char>());
  EXPECT_EQ(disk_text, text);

  // Getattr agrees with the export, and so does readdir (a file made behind diod's back too).
  std::ofstream(DiodExport() + "/made-locally") << "x";
  const std::uint32_t file = WalkTo(name);
  absl::StatusOr<Attr> attr = client_->Getattr(file);
  ASSERT_TRUE(attr.ok()) << attr.status();
  struct stat st {};
  ASSERT_EQ(::stat((DiodExport() + "/" + name).c_str(), &st), 0);
  EXPECT_EQ(attr->size, text.size());
  EXPECT_EQ(attr->mode, st.st_mode);
  EXPECT_EQ(attr->qid.path, st.st_ino);
  EXPECT_TRUE(client_->Clunk(file).ok());

  absl::StatusOr<std::uint32_t> listing = client_->Walk(root_, none);
  ASSERT_TRUE(listing.ok());
  ASSERT_TRUE(client_->Lopen(*listing, O_RDONLY).ok());
  absl::StatusOr<std::vector<DirEntry>> entries = client_->ReaddirAll(*listing);
  ASSERT_TRUE(entries.ok()) << entries.status();
  std::set<std::string> names;
  for (const DirEntry& e : *entries) names.insert(e.name);
  EXPECT_TRUE(names.count(name)) << "readdir misses " << name;
  EXPECT_TRUE(names.count("made-locally"));
  EXPECT_TRUE(client_->Clunk(*listing).ok());
  EXPECT_EQ(Stats().unknown_tags, 0U);
}

TEST_P(DiodTest, RlerrorFailsOnlyItsRequest) {
  const std::vector<std::string> missing = {"no-such-file"};
  absl::StatusOr<std::uint32_t> fid = client_->Walk(root_, missing);
  EXPECT_EQ(fid.status().code(), absl::StatusCode::kNotFound) << fid.status();
  EXPECT_EQ(LerrorErrno(fid.status()), std::optional<std::uint32_t>(ENOENT));
  absl::StatusOr<Attr> attr = client_->Getattr(root_);  // the connection is still usable
  EXPECT_TRUE(attr.ok()) << attr.status();
}

TEST_P(DiodTest, OneToFourThousandInFlightFromEightThreadsAllMatch) {
  // Record r of the file holds r: a reply delivered to the wrong request shows at once.
  constexpr std::uint32_t kRecords = 4096;
  {
    std::ofstream out(DiodExport() + "/records", std::ios::binary);
    for (std::uint64_t r = 0; r < kRecords; ++r) out.write(reinterpret_cast<const char*>(&r), 8);
  }
  Connect(4096);
  const std::uint32_t fid = WalkTo("records");
  ASSERT_TRUE(client_->Lopen(fid, O_RDONLY).ok());
  std::atomic<int> mismatched{0}, failed{0};
  for (std::uint32_t depth : {1U, 8U, 64U, 512U, 4096U}) {
    const std::uint32_t threads = std::min(depth, 8U);
    std::vector<std::thread> workers;
    for (std::uint32_t t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        std::vector<std::pair<std::uint64_t, Call>> calls;
        for (std::uint32_t r = t; r < depth; r += threads) {
          calls.emplace_back(r, client_->connection().Start(BuildTread(fid, r * 8ULL, 8)));
        }
        for (auto& [record, call] : calls) {
          absl::StatusOr<Reply> reply = call.Wait();
          if (!reply.ok()) {
            failed.fetch_add(1);
            continue;
          }
          const auto& data = std::get<Rread>(*reply).data;
          std::uint64_t got = ~0ULL;
          if (data.size() == 8) std::memcpy(&got, data.data(), 8);
          if (got != record) mismatched.fetch_add(1);
        }
      });
    }
    for (std::thread& w : workers) w.join();
  }
  EXPECT_EQ(mismatched.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  const ConnectionStats s = Stats();
  EXPECT_EQ(s.unknown_tags, 0U);
  EXPECT_EQ(s.malformed_replies, 0U);
  EXPECT_EQ(s.tags_in_use, 0U);
  EXPECT_EQ(s.generation_bits, GetParam() == TagTableKind::kAtlas ? 4 : 0);
  EXPECT_TRUE(client_->Clunk(fid).ok());
}

TEST_P(DiodTest, FlushOfARunningRequestHonoursTheReplyThatBeatsTheRflush) {
  HeldFifo fifo("running-fifo");
  std::uint32_t fid = kNoFid;
  Call open = HoldWorker(fifo, "running-fifo", &fid);
  const std::uint16_t tag = open.tag();
  ASSERT_TRUE(open.Cancel());
  EXPECT_EQ(open.Wait().status().code(), absl::StatusCode::kCancelled);  // answered at once
  // Quarantined: the tag is still in use (and so is the Tflush's) until the Rflush.
  EXPECT_EQ(Stats().tags_in_use, 2U);
  Call other = client_->connection().Start(BuildTgetattr(root_, kGetattrBasic));
  EXPECT_NE(SlotOf(other.tag()), SlotOf(tag));
  fifo.Unblock();
  ASSERT_TRUE(Eventually([&] { return Stats().rflushes == 1 && Stats().tags_in_use == 0; }));
  EXPECT_TRUE(other.Wait().ok());
  const ConnectionStats s = Stats();
  EXPECT_EQ(s.late_replies, 1U);  // diod answered the open, then the flush
  EXPECT_EQ(s.unknown_tags, 0U);
  std::optional<absl::StatusOr<Reply>> late = open.late_reply();
  ASSERT_TRUE(late.has_value());
  ASSERT_TRUE(late->ok()) << late->status();
  EXPECT_TRUE(std::holds_alternative<Ropen>(**late));  // the fid is open: its owner clunks it
  EXPECT_TRUE(client_->Clunk(fid).ok());
}

TEST_P(DiodTest, FlushOfAQueuedRequestGetsOnlyTheRflush) {
  HeldFifo fifo("queued-fifo");
  std::uint32_t fid = kNoFid;
  Call running = HoldWorker(fifo, "queued-fifo", &fid);
  Call queued = client_->connection().Start(BuildTgetattr(root_, kGetattrBasic));
  ASSERT_TRUE(queued.Cancel());
  EXPECT_EQ(queued.Wait().status().code(), absl::StatusCode::kCancelled);
  // diod drops the queued request and answers the Tflush while its worker is still held.
  ASSERT_TRUE(Eventually([&] { return Stats().rflushes == 1; }));
  EXPECT_FALSE(running.done());
  EXPECT_EQ(Stats().tags_in_use, 1U);  // the held open only: the flushed tag is free again
  fifo.Unblock();
  EXPECT_TRUE(running.Wait().ok());
  ASSERT_TRUE(Eventually([&] { return Stats().tags_in_use == 0; }));
  EXPECT_EQ(Stats().late_replies, 0U);
  EXPECT_FALSE(queued.late_reply().has_value());
  EXPECT_EQ(Stats().unknown_tags, 0U);
  EXPECT_TRUE(client_->Clunk(fid).ok());
}

TEST_P(DiodTest, RepeatedFlushesAreAllReleasedByTheLastRflush) {
  // Two Tflush for one running request.
  HeldFifo fifo("twice-fifo");
  std::uint32_t fid = kNoFid;
  Call open = HoldWorker(fifo, "twice-fifo", &fid);
  ASSERT_TRUE(open.Cancel());
  ASSERT_TRUE(open.Cancel());
  EXPECT_EQ(Stats().flushes_sent, 2U);
  EXPECT_EQ(Stats().tags_in_use, 3U);  // the request and both flushes
  fifo.Unblock();
  ASSERT_TRUE(Eventually([&] { return Stats().tags_in_use == 0; }))
      << "tags still in use: " << Stats().tags_in_use;
  // diod 1.0.24 answers the last Tflush, and at times the earlier one too, before it: the
  // last Rflush frees every flush tag still in use, an earlier one just its own.
  EXPECT_GE(Stats().rflushes, 1U);
  EXPECT_LE(Stats().rflushes, 2U);
  EXPECT_EQ(Stats().unknown_tags, 0U);
  // A reply for an earlier flush would now count as unknown; the connection stays usable.
  EXPECT_TRUE(client_->Getattr(root_).ok());
  EXPECT_EQ(Stats().unknown_tags, 0U);
  EXPECT_TRUE(client_->Clunk(fid).ok());
}

TEST_P(DiodTest, CancelledQueuedWalkLeavesNoFidBehind) {
  // Queued behind the held worker, the walk is dropped by the Tflush: no Rwalk, no new fid,
  // nothing to clunk. (A late Rwalk, whose new fid the client clunks, is covered by the
  // scripted-server test: diod cannot hold a walk running.)
  HeldFifo fifo("walk-fifo");
  std::uint32_t fid = kNoFid;
  Call running = HoldWorker(fifo, "walk-fifo", &fid);
  const std::vector<std::string> names = {"walk-fifo"};
  const std::uint32_t newfid = client_->NewFid();
  Call walk = client_->connection().Start(BuildTwalk(root_, newfid, names));
  ASSERT_TRUE(walk.Cancel());
  fifo.Unblock();
  EXPECT_TRUE(running.Wait().ok());
  ASSERT_TRUE(Eventually([&] { return Stats().tags_in_use == 0; }));
  EXPECT_EQ(Stats().late_replies, 0U);
  EXPECT_EQ(Stats().late_clunks, 0U);
  EXPECT_FALSE(client_->Getattr(newfid).ok());  // diod never made the fid
  EXPECT_TRUE(client_->Clunk(fid).ok());
}

TEST_P(DiodTest, WhenEveryTagIsInUseRequestersWaitAndAreServedInArrivalOrder) {
  constexpr std::uint32_t kTags = 64;
  constexpr std::size_t kRequesters = 256;
  Connect(kTags);
  HeldFifo fifo("exhaust-fifo");
  std::uint32_t fid = kNoFid;
  Call running = HoldWorker(fifo, "exhaust-fifo", &fid);
  std::vector<Call> holders;
  for (std::uint32_t i = 1; i < kTags; ++i) {
    holders.push_back(client_->connection().Start(BuildTgetattr(root_, kGetattrBasic)));
  }
  ASSERT_EQ(Stats().tags_in_use, kTags);
  std::vector<std::uint64_t> admission(kRequesters);
  std::vector<absl::Status> result(kRequesters);
  std::vector<std::thread> requesters;
  for (std::size_t i = 0; i < kRequesters; ++i) {
    requesters.emplace_back([&, i] {
      Call call = client_->connection().Start(BuildTgetattr(root_, kGetattrBasic));
      result[i] = call.Wait().status();
      admission[i] = call.admission();
    });
    ASSERT_TRUE(Eventually([&] { return Stats().tags_waiting == i + 1; }));
  }
  fifo.Unblock();
  for (std::thread& t : requesters) t.join();
  EXPECT_TRUE(running.Wait().ok());
  for (Call& h : holders) EXPECT_TRUE(h.Wait().ok());
  for (std::size_t i = 0; i < kRequesters; ++i) {
    EXPECT_TRUE(result[i].ok()) << "requester " << i << ": " << result[i];
    if (i > 0) {
      EXPECT_LT(admission[i - 1], admission[i]) << "requester " << i;
    }
  }
  EXPECT_EQ(Stats().tag_waits, kRequesters);
  EXPECT_EQ(Stats().tags_in_use, 0U);
  EXPECT_EQ(Stats().unknown_tags, 0U);
  EXPECT_TRUE(client_->Clunk(fid).ok());
}

TEST_P(DiodTest, DisconnectWithRequestsInFlightFailsThemAndTheServerSurvives) {
  HeldFifo fifo("disconnect-fifo");
  std::uint32_t fid = kNoFid;
  Call running = HoldWorker(fifo, "disconnect-fifo", &fid);
  std::vector<Call> queued;
  for (int i = 0; i < 100; ++i) {
    queued.push_back(client_->connection().Start(BuildTgetattr(root_, kGetattrBasic)));
  }
  Call cancelled = client_->connection().Start(BuildTgetattr(root_, kGetattrBasic));
  ASSERT_TRUE(cancelled.Cancel());  // a quarantined tag and a Tflush in flight too
  client_.reset();                  // disconnects
  EXPECT_EQ(running.Wait().status().code(), absl::StatusCode::kUnavailable);
  for (Call& c : queued) EXPECT_EQ(c.Wait().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(cancelled.Cancel());  // nothing left to flush
  fifo.Unblock();  // diod's worker finishes and answers a connection that is gone
  Connect(1024);   // the server survived
  EXPECT_TRUE(client_->Getattr(root_).ok());
}

INSTANTIATE_TEST_SUITE_P(BothTables, DiodTest,
                         ::testing::Values(TagTableKind::kAtlas, TagTableKind::kMutex),
                         [](const ::testing::TestParamInfo<TagTableKind>& p) {
                           return p.param == TagTableKind::kAtlas ? "Atlas" : "Mutex";
                         });

}  // namespace
}  // namespace ninep
