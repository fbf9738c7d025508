// Every status code crosses the internal wire and comes back the same, and answers with the
// HTTP status of the one table (HttpStatusOf).
#include "rpc/status_wire.h"

#include <gtest/gtest.h>

namespace das::rpc {
namespace {

TEST(StatusWireTest, EveryCodeComesBackAsItLeft) {
  const std::vector<Status> all = {
      InvalidArgument("a limit"), Unavailable("a peer"),
      DeadlineExceeded("late"),   NotLeader("not here", "7"),
      ShuttingDown("closing"),    AlreadyExists("other rows"),
      Internal("a bug"),          Malformed("no protobuf"),
      NotFound("no such worker"), FailedPrecondition("too few workers")};
  for (const Status& status : all) {
    const Status back = FromWire(ToWire(status));
    EXPECT_EQ(back.code(), status.code()) << status.ToString();
    EXPECT_EQ(back.message(), status.message()) << status.ToString();
    EXPECT_EQ(back.detail(), status.detail()) << status.ToString();
    const http::Response answer = ErrorResponse(status);
    EXPECT_EQ(answer.status, HttpStatusOf(status.code())) << status.ToString();
    EXPECT_EQ(StatusFromResponse(answer, "peer").code(), status.code()) << status.ToString();
  }
}

TEST(StatusWireTest, AStateThatForbidsItNowIsAConflict) {
  EXPECT_EQ(HttpStatusOf(StatusCode::kFailedPrecondition), 409u);
  EXPECT_EQ(FailedPrecondition("x").ToString(), "FAILED_PRECONDITION: x");
}

}  // namespace
}  // namespace das::rpc
