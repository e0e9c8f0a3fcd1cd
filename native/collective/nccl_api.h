// The part of NCCL's C interface that cmae_mpi.so calls, and of the CUDA driver's, declared here and
// resolved with dlsym from libraries opened at run time. Why not nccl.h: neither Debian nor npm
// ships NCCL's headers, so CI could not compile the device path, and the plugin must load on
// machines without NCCL or a GPU (where these libraries are simply not found). Every name and
// value below is part of NCCL 2's stable ABI (since 2.7, which added point-to-point send/receive)
// and of the CUDA driver API; a cudaStream_t is a CUstream (the runtime's and the driver's handles
// are interchangeable).
#pragma once
#include <dlfcn.h>

#include <cstddef>
#include <string>

namespace cmae::nccl {

using Result = int;              // ncclResult_t
constexpr Result kSuccess = 0;   // ncclSuccess
constexpr Result kInProgress = 7;  // ncclInProgress (non-blocking communicators only)
using DataType = int;            // ncclDataType_t
constexpr DataType kInt8 = 0;    // ncclInt8 (= ncclChar): byte exchanges
using Comm = struct Opaque*;     // ncclComm_t
using Stream = void*;            // cudaStream_t / CUstream
struct UniqueId {                // ncclUniqueId (NCCL_UNIQUE_ID_BYTES)
  char internal[128];
};

using DriverResult = int;                     // CUresult
constexpr DriverResult kDriverSuccess = 0;    // CUDA_SUCCESS
constexpr DriverResult kDriverNotReady = 600;  // CUDA_ERROR_NOT_READY

// The entry points, or why they could not be had.
struct Api {
  Result (*get_version)(int*) = nullptr;
  Result (*get_unique_id)(UniqueId*) = nullptr;
  Result (*comm_init_rank)(Comm*, int, UniqueId, int) = nullptr;
  Result (*comm_destroy)(Comm) = nullptr;
  Result (*comm_abort)(Comm) = nullptr;
  Result (*comm_get_async_error)(Comm, Result*) = nullptr;
  const char* (*get_error_string)(Result) = nullptr;
  Result (*group_start)() = nullptr;
  Result (*group_end)() = nullptr;
  Result (*send)(const void*, size_t, DataType, int, Comm, Stream) = nullptr;
  Result (*recv)(void*, size_t, DataType, int, Comm, Stream) = nullptr;
  DriverResult (*stream_query)(Stream) = nullptr;  // cuStreamQuery
  int version = 0;                                 // NCCL's, e.g. 22304 for 2.23.4
  std::string missing = "not loaded";              // empty when every entry point was found

  bool ok() const { return missing.empty(); }

  // NCCL from `nccl_path` (libnccl.so.2 where not set), cuStreamQuery from `driver_path`
  // (libcuda.so.1). The libraries stay loaded for the process.
  static Api load(const std::string& nccl_path, const std::string& driver_path) {
    Api a;
    a.missing.clear();
    void* nccl = dlopen(nccl_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!nccl) return a.fail(nccl_path, dlerror());
    void* driver = dlopen(driver_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!driver) return a.fail(driver_path, dlerror());
    a.find(nccl, "ncclGetVersion", a.get_version);
    a.find(nccl, "ncclGetUniqueId", a.get_unique_id);
    a.find(nccl, "ncclCommInitRank", a.comm_init_rank);
    a.find(nccl, "ncclCommDestroy", a.comm_destroy);
    a.find(nccl, "ncclCommAbort", a.comm_abort);
    a.find(nccl, "ncclCommGetAsyncError", a.comm_get_async_error);
    a.find(nccl, "ncclGetErrorString", a.get_error_string);
    a.find(nccl, "ncclGroupStart", a.group_start);
    a.find(nccl, "ncclGroupEnd", a.group_end);
    a.find(nccl, "ncclSend", a.send);
    a.find(nccl, "ncclRecv", a.recv);
    a.find(driver, "cuStreamQuery", a.stream_query);
    if (a.ok() && a.get_version(&a.version) != kSuccess) a.missing = "ncclGetVersion failed";
    return a;
  }

  // "NCCL 2.23.4" (NCCL encodes major·10000 + minor·100 + patch since 2.9, major·1000 + … before).
  std::string name() const {
    const int v = version, major = v >= 10000 ? v / 10000 : v / 1000, minor = v >= 10000 ? v / 100 % 100 : v / 100 % 10;
    return "NCCL " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
  }

 private:
  Api fail(const std::string& path, const char* why) {
    missing = path + ": " + (why ? why : "cannot be loaded");
    return *this;
  }
  template <typename F>
  void find(void* lib, const char* symbol, F& fn) {
    fn = reinterpret_cast<F>(dlsym(lib, symbol));
    if (!fn && missing.empty()) missing = std::string("no ") + symbol;
  }
};

}  // namespace cmae::nccl
