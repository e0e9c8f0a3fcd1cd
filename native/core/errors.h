// Error model of the native core (native/README.md, principle 5): native code never aborts on bad input.
// It throws cmae::Error with a kind; the Node binding maps each kind to a typed JS Error subclass
// (ShapeError, DTypeError, ...) carrying the message. The core includes no Node headers.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace cmae {

enum class ErrorKind { Shape, DType, Device, Value, Format, IO, Disposed, Busy, Aborted, Distributed, Internal };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Builds the message from any streamable pieces: fail(ErrorKind::Shape, "x has ", n, " rows").
template <typename... Parts>
[[noreturn]] void fail(ErrorKind kind, const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(kind, os.str());
}

}  // namespace cmae

// Argument checks for public entry points; the message says what was expected and what came.
#define CMAE_CHECK(cond, kind, ...)                         \
  do {                                                      \
    if (!(cond)) ::cmae::fail(::cmae::ErrorKind::kind, __VA_ARGS__); \
  } while (0)
