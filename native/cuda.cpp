#include "cuda.hpp"

#include <cctype>
#include <stdexcept>

#include "errors.hpp"

namespace hpcx::cuda {
namespace {

struct Loaded {
    LoadStatus status;
    Api api{};
    bool library_ok = false;  // dlopen and every symbol resolved (cuInit may still have failed)
};

Loaded& loaded() {
    static Loaded l = [] {
        Loaded out;
        static DynLib lib;
        std::string tried, error;
        if (!lib.open("HPCX_LIBCUDA", "libcuda.so.1", tried, error)) {
            out.status = {false, error, ""};  // nothing loaded; dlerror names the file
            return out;
        }
        Api& a = out.api;
#define HPCX_RESOLVE(name) lib.resolve(a.name, #name)
        HPCX_RESOLVE(cuInit);
        HPCX_RESOLVE(cuGetErrorName);
        HPCX_RESOLVE(cuDeviceGetCount);
        HPCX_RESOLVE(cuDeviceGet);
        HPCX_RESOLVE(cuDeviceGetName);
        HPCX_RESOLVE(cuDeviceGetPCIBusId);
        HPCX_RESOLVE(cuDeviceTotalMem_v2);
        HPCX_RESOLVE(cuDevicePrimaryCtxRetain);
        HPCX_RESOLVE(cuDevicePrimaryCtxRelease_v2);
        HPCX_RESOLVE(cuCtxPushCurrent_v2);
        HPCX_RESOLVE(cuCtxPopCurrent_v2);
        HPCX_RESOLVE(cuStreamCreate);
        HPCX_RESOLVE(cuStreamSynchronize);
        HPCX_RESOLVE(cuStreamDestroy_v2);
        HPCX_RESOLVE(cuEventCreate);
        HPCX_RESOLVE(cuEventRecord);
        HPCX_RESOLVE(cuEventSynchronize);
        HPCX_RESOLVE(cuEventElapsedTime);
        HPCX_RESOLVE(cuEventDestroy_v2);
        HPCX_RESOLVE(cuMemAlloc_v2);
        HPCX_RESOLVE(cuMemFree_v2);
        HPCX_RESOLVE(cuMemAllocHost_v2);
        HPCX_RESOLVE(cuMemFreeHost);
        HPCX_RESOLVE(cuMemHostRegister_v2);
        HPCX_RESOLVE(cuMemHostUnregister);
        HPCX_RESOLVE(cuMemcpyHtoDAsync_v2);
        HPCX_RESOLVE(cuMemcpyDtoHAsync_v2);
#undef HPCX_RESOLVE
        std::string file = DynLib::file_of(reinterpret_cast<void*>(a.cuInit), tried);
        if (!lib.missing().empty()) {
            std::string missing = join(lib.missing(), ", ");
            out.status = {false, file + " lacks entry point(s) " + missing + " (too old?)", file};
            return out;
        }
        out.library_ok = true;
        CUresult r = a.cuInit(0);
        if (r != CUDA_SUCCESS) {
            const char* name = nullptr;
            std::string n = (a.cuGetErrorName(r, &name) == CUDA_SUCCESS && name)
                                ? name
                                : "CUresult " + std::to_string(r);
            out.status = {false, "cuInit(0) failed: " + n + " (" + std::to_string(r) + ")", file};
            return out;
        }
        out.status = {true, "", file};
        return out;
    }();
    return l;
}

}  // namespace

const LoadStatus& status() { return loaded().status; }

const Api& api() {
    const Loaded& l = loaded();
    if (!l.library_ok) throw LibraryUnavailable("CUDA driver unavailable: " + l.status.error);
    if (!l.status.ok) throw CudaError(l.status.error);
    return l.api;
}

std::string error_name(CUresult r) {
    const char* name = nullptr;
    if (loaded().library_ok && loaded().api.cuGetErrorName(r, &name) == CUDA_SUCCESS && name) {
        return name;
    }
    return "CUresult " + std::to_string(r);
}

void check(CUresult r, const char* call) {
    if (r != CUDA_SUCCESS) {
        throw CudaError(std::string(call) + " failed: " + error_name(r) + " (" +
                        std::to_string(r) + ")");
    }
}

int device_count() {
    int n = 0;
    check(api().cuDeviceGetCount(&n), "cuDeviceGetCount");
    return n;
}

void check_device(int index) {
    int n = device_count();
    if (index < 0 || index >= n) {
        throw std::invalid_argument("no CUDA device " + std::to_string(index) + " (" +
                                    std::to_string(n) + " visible)");
    }
}

std::string normalize_bus_id(const std::string& id) {
    std::string out;
    for (char c : id) {
        if (c == '\0') break;
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    // The driver may print an 8-digit PCI domain; sysfs and lspci use 4 digits.
    auto colon = out.find(':');
    if (colon != std::string::npos && colon > 4) {
        std::string domain = out.substr(0, colon);
        std::size_t lead = domain.find_first_not_of('0');
        if (lead == std::string::npos || domain.size() - lead <= 4) {
            out = domain.substr(domain.size() - 4) + out.substr(colon);
        }
    }
    return out;
}

std::vector<DeviceInfo> devices() {
    const Api& a = api();
    int n = device_count();
    std::vector<DeviceInfo> out;
    for (int i = 0; i < n; ++i) {
        CUdevice dev = 0;
        check(a.cuDeviceGet(&dev, i), "cuDeviceGet");
        char name[256] = {0};
        check(a.cuDeviceGetName(name, sizeof(name) - 1, dev), "cuDeviceGetName");
        char bus[64] = {0};
        check(a.cuDeviceGetPCIBusId(bus, sizeof(bus) - 1, dev), "cuDeviceGetPCIBusId");
        std::size_t mem = 0;
        check(a.cuDeviceTotalMem_v2(&mem, dev), "cuDeviceTotalMem_v2");
        out.push_back({i, name, normalize_bus_id(bus), mem});
    }
    return out;
}

ScopedContext::ScopedContext(int device) {
    const Api& a = api();
    check(a.cuDeviceGet(&dev_, device), "cuDeviceGet");
    CUcontext ctx = nullptr;
    check(a.cuDevicePrimaryCtxRetain(&ctx, dev_), "cuDevicePrimaryCtxRetain");
    retained_ = true;
    CUresult r = a.cuCtxPushCurrent_v2(ctx);
    if (r != CUDA_SUCCESS) {
        a.cuDevicePrimaryCtxRelease_v2(dev_);
        retained_ = false;
        check(r, "cuCtxPushCurrent_v2");
    }
    pushed_ = true;
}

ScopedContext::~ScopedContext() {
    const Api& a = loaded().api;
    if (pushed_) {
        CUcontext popped = nullptr;
        a.cuCtxPopCurrent_v2(&popped);
    }
    if (retained_) a.cuDevicePrimaryCtxRelease_v2(dev_);
}

Stream::Stream() {
    check(api().cuStreamCreate(&s_, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
}
Stream::~Stream() {
    if (s_) loaded().api.cuStreamDestroy_v2(s_);
}

Event::Event() { check(api().cuEventCreate(&e_, CU_EVENT_DEFAULT), "cuEventCreate"); }
Event::~Event() {
    if (e_) loaded().api.cuEventDestroy_v2(e_);
}

DeviceBuffer::DeviceBuffer(std::size_t size) {
    check(api().cuMemAlloc_v2(&p_, size), "cuMemAlloc_v2");
}
DeviceBuffer::~DeviceBuffer() {
    if (p_) loaded().api.cuMemFree_v2(p_);
}

PinnedHostBuffer::PinnedHostBuffer(std::size_t size) {
    check(api().cuMemAllocHost_v2(&p_, size), "cuMemAllocHost_v2");
}
PinnedHostBuffer::~PinnedHostBuffer() {
    if (p_) loaded().api.cuMemFreeHost(p_);
}

HostRegistration::HostRegistration(void* p, std::size_t size) {
    check(api().cuMemHostRegister_v2(p, size, CU_MEMHOSTREGISTER_PORTABLE),
          "cuMemHostRegister_v2");
    p_ = p;
}
HostRegistration::~HostRegistration() {
    if (p_) loaded().api.cuMemHostUnregister(p_);
}

}  // namespace hpcx::cuda
