// The CUDA driver API through libcuda.so.1, opened lazily with dlopen: no toolkit, no headers.
// Only the versioned entry points a 64-bit driver exports are used (cuMemAlloc_v2, ...).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "dynlib.hpp"

namespace hpcx::cuda {

// Driver types (cuda.h), declared here so building needs no toolkit.
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st*;
using CUstream = struct CUstream_st*;
using CUevent = struct CUevent_st*;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr unsigned CU_STREAM_NON_BLOCKING = 0x1;
constexpr unsigned CU_EVENT_DEFAULT = 0x0;
constexpr unsigned CU_MEMHOSTREGISTER_PORTABLE = 0x1;

struct Api {
    CUresult (*cuInit)(unsigned);
    CUresult (*cuGetErrorName)(CUresult, const char**);
    CUresult (*cuDeviceGetCount)(int*);
    CUresult (*cuDeviceGet)(CUdevice*, int);
    CUresult (*cuDeviceGetName)(char*, int, CUdevice);
    CUresult (*cuDeviceGetPCIBusId)(char*, int, CUdevice);
    CUresult (*cuDeviceTotalMem_v2)(std::size_t*, CUdevice);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
    CUresult (*cuDevicePrimaryCtxRelease_v2)(CUdevice);
    CUresult (*cuCtxPushCurrent_v2)(CUcontext);
    CUresult (*cuCtxPopCurrent_v2)(CUcontext*);
    CUresult (*cuStreamCreate)(CUstream*, unsigned);
    CUresult (*cuStreamSynchronize)(CUstream);
    CUresult (*cuStreamDestroy_v2)(CUstream);
    CUresult (*cuEventCreate)(CUevent*, unsigned);
    CUresult (*cuEventRecord)(CUevent, CUstream);
    CUresult (*cuEventSynchronize)(CUevent);
    CUresult (*cuEventElapsedTime)(float*, CUevent, CUevent);
    CUresult (*cuEventDestroy_v2)(CUevent);
    CUresult (*cuMemAlloc_v2)(CUdeviceptr*, std::size_t);
    CUresult (*cuMemFree_v2)(CUdeviceptr);
    CUresult (*cuMemAllocHost_v2)(void**, std::size_t);
    CUresult (*cuMemFreeHost)(void*);
    CUresult (*cuMemHostRegister_v2)(void*, std::size_t, unsigned);
    CUresult (*cuMemHostUnregister)(void*);
    CUresult (*cuMemcpyHtoDAsync_v2)(CUdeviceptr, const void*, std::size_t, CUstream);
    CUresult (*cuMemcpyDtoHAsync_v2)(void*, CUdeviceptr, std::size_t, CUstream);
};

// Loads the driver and calls cuInit(0) on first use (env HPCX_LIBCUDA overrides the path);
// never throws. Not ok when the library or an entry point is missing or cuInit fails.
const LoadStatus& status();

// The resolved entry points. Throws LibraryUnavailable (no driver, missing symbol) or
// CudaError (cuInit failed).
const Api& api();

// "CUDA_ERROR_OUT_OF_MEMORY" for 2, from the driver's own cuGetErrorName.
std::string error_name(CUresult r);

// Throws CudaError "<call> failed: <NAME> (<code>)" unless r is CUDA_SUCCESS.
void check(CUresult r, const char* call);

struct DeviceInfo {
    int index;
    std::string name;
    std::string pci_bus_id;  // lower case, 4-digit domain: "0000:17:00.0"
    std::size_t total_memory;
};

int device_count();
std::vector<DeviceInfo> devices();
// Throws std::invalid_argument unless 0 <= index < device_count().
void check_device(int index);

// "00000000:B3:00.0" -> "0000:b3:00.0": the form sysfs and lspci use.
std::string normalize_bus_id(const std::string& id);

// RAII: the device's primary context, retained and made current on this thread for the
// object's lifetime, then popped and released.
class ScopedContext {
  public:
    explicit ScopedContext(int device);
    ~ScopedContext();
    ScopedContext(const ScopedContext&) = delete;
    ScopedContext& operator=(const ScopedContext&) = delete;

  private:
    CUdevice dev_ = 0;
    bool retained_ = false;
    bool pushed_ = false;
};

class Stream {
  public:
    Stream();  // non-blocking: no implicit sync with the legacy default stream
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    CUstream get() const { return s_; }

  private:
    CUstream s_ = nullptr;
};

class Event {
  public:
    Event();
    ~Event();
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    CUevent get() const { return e_; }

  private:
    CUevent e_ = nullptr;
};

class DeviceBuffer {
  public:
    explicit DeviceBuffer(std::size_t size);
    ~DeviceBuffer();
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    CUdeviceptr get() const { return p_; }

  private:
    CUdeviceptr p_ = 0;
};

// Page-locked host memory from the driver (cuMemAllocHost), placed wherever the driver likes.
class PinnedHostBuffer {
  public:
    explicit PinnedHostBuffer(std::size_t size);
    ~PinnedHostBuffer();
    PinnedHostBuffer(const PinnedHostBuffer&) = delete;
    PinnedHostBuffer& operator=(const PinnedHostBuffer&) = delete;
    void* get() const { return p_; }

  private:
    void* p_ = nullptr;
};

// Registers existing host memory (e.g. a NUMA buffer) as pinned for the object's lifetime.
class HostRegistration {
  public:
    HostRegistration(void* p, std::size_t size);
    ~HostRegistration();
    HostRegistration(const HostRegistration&) = delete;
    HostRegistration& operator=(const HostRegistration&) = delete;

  private:
    void* p_ = nullptr;
};

}  // namespace hpcx::cuda
