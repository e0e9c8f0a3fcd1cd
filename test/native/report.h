// The output protocol of every native test executable (test/native): one JSON object per line,
//   {"name": "<suite>/<case>", "ok": true|false, "message": "<why it failed, or a summary>"}
// or, for a case this machine cannot run (a CPU feature it lacks),
//   {"name": "<suite>/<case>", "skipped": true, "message": "<what is missing>"}
// so that a vitest file (test/native/native.ts) can turn each line into a test (a skipped one
// reported as skipped, never as passed). `--list` prints the names only ({"name": ...} per line,
// with "skipped" and "message" for skipped cases) without running anything; `--filter S` runs the
// cases whose name contains S. The last line on stderr counts passed, failed and skipped cases.
// The exit status is 1 when any case failed.
#pragma once
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cmae::testing {

// Fails the running case with a message made of the parts.
template <typename... Parts>
[[noreturn]] void fail_case(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw std::runtime_error(os.str());
}

// Escapes a string for a JSON string literal.
inline std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

// A registry of named cases; run() executes them per the command line and prints the protocol.
// A case returns normally to pass (its return value is the summary message) and throws to fail.
class Suite {
 public:
  using Case = std::function<std::string()>;
  void add(std::string name, Case body) { cases_.push_back({std::move(name), std::move(body), {}}); }
  // A case this machine cannot run, reported as skipped with the reason (e.g. the missing CPU feature).
  void skip(std::string name, std::string reason) { cases_.push_back({std::move(name), nullptr, std::move(reason)}); }

  int run(int argc, char** argv) {
    bool list = false;
    std::string filter;
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--list") == 0) list = true;
      else if (std::strcmp(argv[i], "--filter") == 0 && i + 1 < argc) filter = argv[++i];
    }
    int failed = 0, passed = 0, skipped = 0;
    for (const auto& c : cases_) {
      if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
      if (!c.body) {
        ++skipped;
        std::printf("{\"name\": \"%s\", \"skipped\": true, \"message\": \"%s\"}\n", json_escape(c.name).c_str(),
                    json_escape(c.skip_reason).c_str());
        std::fflush(stdout);
        continue;
      }
      if (list) {
        std::printf("{\"name\": \"%s\"}\n", json_escape(c.name).c_str());
        continue;
      }
      bool ok = true;
      std::string message;
      try {
        message = c.body();
      } catch (const std::exception& e) {
        ok = false;
        message = e.what();
      } catch (...) {
        ok = false;
        message = "unknown exception";
      }
      failed += ok ? 0 : 1;
      passed += ok ? 1 : 0;
      std::printf("{\"name\": \"%s\", \"ok\": %s, \"message\": \"%s\"}\n", json_escape(c.name).c_str(), ok ? "true" : "false",
                  json_escape(message).c_str());
      std::fflush(stdout);
    }
    if (!list) std::fprintf(stderr, "%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed > 0 ? 1 : 0;
  }

 private:
  struct Entry {
    std::string name;
    Case body;                // null: skipped
    std::string skip_reason;  // why, when skipped
  };
  std::vector<Entry> cases_;
};

}  // namespace cmae::testing

// Fails the running case unless cond holds; the message names the condition and the parts.
#define CMAE_TEST_CHECK(cond, ...)                                                        \
  do {                                                                                    \
    if (!(cond)) ::cmae::testing::fail_case("check failed: " #cond ": ", __VA_ARGS__);   \
  } while (0)
