#include "ptypilot/scan_driver/scan_driver.hpp"

namespace ptypilot {

Status ScanDriver::submit_async(const ScanRequest& request) {
  if (synchronous_result_)
    return failed_precondition(std::string(name()) +
                               " scan driver: a request is still pending; wait_acknowledged first");
  synchronous_result_ = submit(request);
  return Status::Ok();
}

Status ScanDriver::wait_acknowledged(std::chrono::milliseconds) {
  if (!synchronous_result_)
    return failed_precondition(std::string(name()) + " scan driver: no request is pending");
  const Status result = *synchronous_result_;
  synchronous_result_.reset();
  return result;
}

}  // namespace ptypilot
