// Every status code crosses the internal wire and comes back the same, and answers with the
// HTTP status of the one table (HttpStatusOf).
#include "rpc/status_wire.h"

#include <gtest/gtest.h>

namespace das::rpc {
namespace {

TEST(StatusWireTest, EveryCodeComesBackAsItLeft) {
  const std::vector<Status> all = {InvalidArgument("a limit"),
                                   Unavailable("a peer"),
                                   DeadlineExceeded("late"),
                                   NotLeader("not here", "7"),
                                   ShuttingDown("closing"),
                                   AlreadyExists("other rows"),
                                   Internal("a bug"),
                                   Malformed("no protobuf"),
                                   NotFound("no such worker"),
                                   FailedPrecondition("too few workers"),
                                   Status(StatusCode::kMethodNotAllowed, "use POST")};
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

// A method a route does not take is its own code, not an invalid argument (a 405 everywhere).
TEST(StatusWireTest, AMethodARouteDoesNotTakeIs405) {
  EXPECT_EQ(HttpStatusOf(StatusCode::kMethodNotAllowed), 405u);
  EXPECT_EQ(Status(StatusCode::kMethodNotAllowed, "x").ToString(), "METHOD_NOT_ALLOWED: x");
}

// A sub-batch's outcome read once into the codes callers act on: a key reused with other
// rows and a row over a limit are both refusals of the request itself (422).
TEST(StatusWireTest, ASubBatchIsStoredOrRefusedWithACode) {
  internal::v1::SubBatchResult result;
  result.set_rows_written(3);
  Result<SubBatchStored> stored = FromWire(result);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->rows, 3u);
  EXPECT_FALSE(stored->duplicate);
  result.set_code(internal::v1::SubBatchResult::DUPLICATE);
  ASSERT_TRUE(FromWire(result).ok());
  EXPECT_TRUE(FromWire(result)->duplicate);
  result.set_code(internal::v1::SubBatchResult::KEY_CONFLICT);
  EXPECT_EQ(FromWire(result).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(HttpStatusOf(StatusCode::kAlreadyExists), 422u);
  result.set_code(internal::v1::SubBatchResult::INVALID_ARGUMENT);
  result.set_error("partition_key is empty");
  EXPECT_EQ(FromWire(result).status().ToString(), "INVALID_ARGUMENT: partition_key is empty");
}

}  // namespace
}  // namespace das::rpc
