// One Register* function per area of the core; module.cc only lists them.
#ifndef APPLIANCE_BINDINGS_REGISTER_H_
#define APPLIANCE_BINDINGS_REGISTER_H_

#include <pybind11/pybind11.h>

namespace appliance::bindings {

void RegisterOptions(pybind11::module_& m);
void RegisterTranscode(pybind11::module_& m);

}  // namespace appliance::bindings

#endif  // APPLIANCE_BINDINGS_REGISTER_H_
