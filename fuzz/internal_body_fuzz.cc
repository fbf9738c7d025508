// The internal API's messages, as a worker decodes a request and the control node an answer
// (both sides are network-reachable): every das.internal.v1 message a route carries, the exact
// sum's own byte encoding inside an AggregateResponse (common/exact_sum.h), the topology's
// checks (rpc/topology.h), an error answer read back into a Status (rpc/status_wire.h), and a
// shard's query answer merged as the control node merges it (control/query_merge.h,
// control/quantile_search.h).
// The first byte chooses the message.
#include <cstddef>
#include <cstdint>
#include <string>

#include <variant>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "common/exact_sum.h"
#include "control/quantile_search.h"
#include "control/query_merge.h"
#include "das/v1/internal.pb.h"
#include "rpc/status_wire.h"
#include "rpc/topology.h"

namespace iv1 = das::internal::v1;

template <typename Message>
bool Parse(const std::string& bytes, Message& message) {
  return message.ParseFromString(bytes);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 14) {
    case 0: {
      iv1::WriteRequest m;
      if (Parse(bytes, m)) {
        for (const auto& b : m.batches()) (void)b.rows_size();
      }
      break;
    }
    case 1: {
      iv1::TopologyRequest m;
      if (Parse(bytes, m)) (void)das::rpc::ValidateTopology(m.topology(), 16384);
      break;
    }
    case 2: {
      iv1::AggregateResponse m;
      if (Parse(bytes, m)) (void)das::ExactSum::FromBytes(m.exact_sum());
      break;
    }
    case 3: {
      (void)das::ExactSum::FromBytes(bytes);
      break;
    }
    case 4: {
      das::http::Response response;
      response.status = 503;
      response.content_type = std::string(das::rpc::kProtobufType);
      response.body = bytes;
      (void)das::rpc::StatusFromResponse(response, "127.0.0.1:1");
      break;
    }
    case 5: {
      iv1::WorkerHealthResponse m;
      (void)Parse(bytes, m);
      break;
    }
    case 6: {
      iv1::RaftEntry m;
      (void)Parse(bytes, m);
      break;
    }
    case 7: {
      iv1::CopyResponse m;
      (void)Parse(bytes, m);
      break;
    }
    case 8: {
      iv1::CopyChunkResponse m;
      (void)Parse(bytes, m);
      break;
    }
    case 9: {
      iv1::WriteResponse m;
      (void)Parse(bytes, m);
      break;
    }
    case 10: {
      iv1::ControlState m;
      if (Parse(bytes, m)) (void)das::rpc::ValidateTopology(m.topology(), 16384);
      break;
    }
    case 11: {
      iv1::ShardQuery m;
      (void)Parse(bytes, m);
      break;
    }
    case 12: {
      iv1::ShardQueryResponse m;
      if (!Parse(bytes, m)) break;
      // As merged: ungrouped (then its buckets' quantile rounds) and grouped.
      for (const char* json : {R"({"granularity":"1s","quantiles":[0.5]})",
                               R"({"group_by":"key","order_by":"avg","limit":2})"}) {
        das::v1::Query query;
        (void)google::protobuf::util::JsonStringToMessage(json, &query);
        auto plan = das::control::PlanQuery(query, 1000);
        const auto& planned = std::get<das::control::QueryPlan>(plan);
        das::control::QueryMerge merge(planned);
        if (!merge.Add(m).ok()) continue;
        if (planned.grouped) {
          (void)merge.Finish(nullptr);
          continue;
        }
        das::control::QuantileSearch search(merge.Summaries(), planned.quantiles);
        const std::vector<const iv1::ShardQueryResponse*> answers = {&m};
        for (int round = 0; round < 8 && !search.done(); ++round) {
          if (!search.Feed(answers).ok()) break;
        }
        if (search.done()) (void)merge.Finish(&search);
      }
      break;
    }
    default: {
      iv1::TopologyResponse a;
      iv1::ShardReadRequest b;
      iv1::TransferRequest c;
      iv1::CopyRequest d;
      iv1::CopyChunkRequest e;
      (void)Parse(bytes, a);
      (void)Parse(bytes, b);
      (void)Parse(bytes, c);
      (void)Parse(bytes, d);
      (void)Parse(bytes, e);
      break;
    }
  }
  return 0;
}
