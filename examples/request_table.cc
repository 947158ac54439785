// A redirector's request table with the C++ API: tag each outgoing request with a MID,
// find it on every response, finish it on the last one.
#include <cstdio>
#include <string>

#include "midatlas/mid_atlas.h"

struct Request {
  std::string path;
  int responses = 0;
};

int main() {
  auto atlas = midatlas::TypedMidAtlas<Request>::Create(
      {.max_mids = 1024, .initial_mids = 50, .context_destructor = [](Request* r) { delete r; }});
  if (!atlas.ok()) return 1;

  auto* request = new Request{.path = "\\\\server\\share\\file.txt"};
  absl::StatusOr<midatlas::Mid> mid = atlas->Associate(request);  // send path
  if (!mid.ok()) {                      // IsAllMidsInUse(): wait for a response, retry
    delete request;
    return 1;
  }
  if (Request* found = atlas->Map(*mid)) ++found->responses;       // receive path (wait-free)
  absl::StatusOr<Request*> done = atlas->MapAndDissociate(*mid);  // final response
  if (!done.ok()) return 1;
  std::printf("MID %u answered %s\n", static_cast<unsigned>(*mid), (*done)->path.c_str());
  delete *done;
  return 0;  // anything still associated goes to context_destructor
}
