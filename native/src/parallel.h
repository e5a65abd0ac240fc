// A few helper threads that one decode may hand part of its work to, so that a
// lone request uses an idle core (docs/decisions/0012). Internal to the core.
//
// The caller always does its share and takes back whatever no helper has
// started, so a part never waits for a helper to be free: when every core is
// busy with other requests, the caller ends up doing all of it, as it would
// without helpers.
#ifndef APPLIANCE_SRC_PARALLEL_H_
#define APPLIANCE_SRC_PARALLEL_H_

#include <functional>

namespace appliance {

// Runs part(0) .. part(count - 1), on the calling thread and on helpers, and
// returns when all have returned. The first exception a part throws is
// rethrown here, on the calling thread, once no part is running. The helpers
// are one fewer than the CPUs this process may run on, at most 3, or
// APPLIANCE_DECODE_HELPERS (0 to 3) if it is set.
void RunParts(int count, const std::function<void(int)>& part);

}  // namespace appliance

#endif  // APPLIANCE_SRC_PARALLEL_H_
