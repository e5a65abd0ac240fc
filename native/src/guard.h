// The core's promise that no C++ exception crosses its API: every exported
// function runs its body through Guard, which turns an exception thrown inside
// (std::bad_alloc from a vector, or a library's own) into a kInternal Status.
// Internal to the core.
#ifndef APPLIANCE_SRC_GUARD_H_
#define APPLIANCE_SRC_GUARD_H_

#include <exception>
#include <new>
#include <string>
#include <utility>

#include "appliance/status.h"

namespace appliance {

// `doing` names the step for the message ("decoding PNG"); `body` returns a Status.
template <typename Body>
Status Guard(const char* doing, Body&& body) noexcept {
  try {
    return std::forward<Body>(body)();
  } catch (const std::bad_alloc&) {
    return Internal(std::string("out of memory ") + doing);
  } catch (const std::exception& e) {
    return Internal(std::string(doing) + ": " + e.what());
  } catch (...) {
    return Internal(std::string(doing) + ": unknown error");
  }
}

}  // namespace appliance

#endif  // APPLIANCE_SRC_GUARD_H_
