// Borrowed: messages owned elsewhere (by a caller, or on an arena of their own) placed in a
// repeated field of another message, to encode them inside it without a copy, and handed back,
// never freed, when the Borrowed goes. The control node's coalesced write requests borrow their
// callers' sub-batches; a shard's raft entry borrows the sub-batches of the request it carries.
// Thread-safety: as the field's message; a borrowed message is only read meanwhile.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

namespace das::rpc {

template <typename Message>
class Borrowed {
 public:
  // REQUIRES: `field` is empty and gains elements only through Add while this lives.
  explicit Borrowed(google::protobuf::RepeatedPtrField<Message>& field) : field_(field) {}
  Borrowed(const Borrowed&) = delete;
  Borrowed& operator=(const Borrowed&) = delete;
  ~Borrowed() { field_.UnsafeArenaExtractSubrange(0, field_.size(), nullptr); }

  // `message` must outlive this Borrowed; it is read (encoded), never changed.
  void Add(const Message& message) {
    field_.UnsafeArenaAddAllocated(const_cast<Message*>(&message));
  }

 private:
  google::protobuf::RepeatedPtrField<Message>& field_;
};

}  // namespace das::rpc
