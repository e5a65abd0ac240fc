// Status: what every function of the core returns. No exception crosses the core's API.
#ifndef APPLIANCE_STATUS_H_
#define APPLIANCE_STATUS_H_

#include <string>
#include <utility>

namespace appliance {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller asked for something impossible
  kUnsupported,      // not an image format or feature we decode
  kCorrupt,          // damaged or truncated data
  kTooLarge,         // over a configured limit
  kInternal,         // out of memory or a library failure
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status Unsupported(std::string m) {
  return Status(StatusCode::kUnsupported, std::move(m));
}
inline Status Corrupt(std::string m) {
  return Status(StatusCode::kCorrupt, std::move(m));
}
inline Status TooLarge(std::string m) {
  return Status(StatusCode::kTooLarge, std::move(m));
}
inline Status Internal(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}

#define APPLIANCE_RETURN_IF_ERROR(expr)        \
  do {                                         \
    ::appliance::Status status_ = (expr);      \
    if (!status_.ok()) return status_;         \
  } while (0)

}  // namespace appliance

#endif  // APPLIANCE_STATUS_H_
