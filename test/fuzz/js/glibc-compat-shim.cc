// The three functions of glibc 2.38 / libstdc++ 3.4.32 that Jazzer.js 4's prebuilt addon calls,
// for glibc 2.36 / GCC 12 (see glibc-compat.cjs): C23's strtol variants differ only in accepting
// "0b" prefixes, which the addon's callers never parse; ios_base_library_init is GCC 13's way of
// initialising the standard streams, done here as GCC 12 does.
#include <cstdlib>
#include <ios>

extern "C" long __isoc23_strtol(const char* s, char** end, int base) { return std::strtol(s, end, base); }
extern "C" unsigned long __isoc23_strtoul(const char* s, char** end, int base) { return std::strtoul(s, end, base); }
namespace std {
void ios_base_library_init() { static ios_base::Init init; }
}  // namespace std
