#include "numa.hpp"

#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <mutex>
#include <string>

#include "errors.hpp"

namespace hpcx::numa {
namespace {

// libnuma's struct bitmask (numa.h), declared here because the headers may be absent.
struct bitmask {
    unsigned long size;
    unsigned long* maskp;
};

struct Api {
    int (*numa_available)();
    int (*numa_max_node)();
    void* (*numa_alloc_onnode)(std::size_t, int);
    void (*numa_free)(void*, std::size_t);
    long long (*numa_node_size64)(int, long long*);
    int (*numa_run_on_node)(int);
    bitmask* (*numa_allocate_cpumask)();
    void (*numa_bitmask_free)(bitmask*);
    int (*numa_node_to_cpus)(int, bitmask*);
};

// From <numaif.h>.
constexpr int MPOL_DEFAULT = 0;
constexpr int MPOL_PREFERRED = 1;
constexpr int MPOL_BIND = 2;
constexpr int MPOL_INTERLEAVE = 3;
constexpr int MPOL_LOCAL = 4;
constexpr int MPOL_PREFERRED_MANY = 5;
constexpr int MPOL_WEIGHTED_INTERLEAVE = 6;
constexpr unsigned long kMaskBits = 1024;  // nodes; as libnuma's default nodemask size
constexpr unsigned long kBitsPerLong = 8 * sizeof(unsigned long);

struct Loaded {
    LoadStatus status;
    Api api{};
};

Loaded& loaded() {
    // Function-local static: initialised once, thread-safe, on first use (not at import).
    static Loaded l = [] {
        Loaded out;
        static DynLib lib;  // handle kept for the process lifetime
        std::string tried, error;
        if (!lib.open("HPCX_LIBNUMA", "libnuma.so.1", tried, error)) {
            out.status = {false, error, ""};  // nothing loaded; dlerror names the file
            return out;
        }
        Api& a = out.api;
        lib.resolve(a.numa_available, "numa_available");
        lib.resolve(a.numa_max_node, "numa_max_node");
        lib.resolve(a.numa_alloc_onnode, "numa_alloc_onnode");
        lib.resolve(a.numa_free, "numa_free");
        lib.resolve(a.numa_node_size64, "numa_node_size64");
        lib.resolve(a.numa_run_on_node, "numa_run_on_node");
        lib.resolve(a.numa_allocate_cpumask, "numa_allocate_cpumask");
        lib.resolve(a.numa_bitmask_free, "numa_bitmask_free");
        lib.resolve(a.numa_node_to_cpus, "numa_node_to_cpus");
        std::string file = DynLib::file_of(reinterpret_cast<void*>(a.numa_max_node), tried);
        if (!lib.missing().empty()) {
            std::string missing = join(lib.missing(), ", ");
            out.status = {false, file + " lacks entry point(s) " + missing + " (too old?)", file};
            return out;
        }
        if (a.numa_available() < 0) {
            out.status = {false, "numa_available() < 0: the kernel has no NUMA support", file};
            return out;
        }
        out.status = {true, "", file};
        return out;
    }();
    return l;
}

const Api& api() {
    require();
    return loaded().api;
}

const char* mode_name(int mode) {
    switch (mode & 0xff) {  // strip MPOL_F_STATIC_NODES / RELATIVE_NODES flags
        case MPOL_DEFAULT: return "default";
        case MPOL_PREFERRED: return "preferred";
        case MPOL_BIND: return "bind";
        case MPOL_INTERLEAVE: return "interleave";
        case MPOL_LOCAL: return "local";
        case MPOL_PREFERRED_MANY: return "preferred-many";
        case MPOL_WEIGHTED_INTERLEAVE: return "weighted-interleave";
        default: return "unknown";
    }
}

std::string errno_text(int e) { return std::string(std::strerror(e)); }

}  // namespace

const LoadStatus& status() { return loaded().status; }

void require() {
    const LoadStatus& s = status();
    if (!s.ok) throw LibraryUnavailable("libnuma unavailable: " + s.error);
}

int node_count() { return api().numa_max_node() + 1; }

long long node_memory(int node, long long* free_bytes) {
    long long fr = -1;
    long long total = api().numa_node_size64(node, &fr);
    if (free_bytes) *free_bytes = fr;
    return total;
}

std::vector<int> node_cpus(int node) {
    const Api& a = api();
    bitmask* mask = a.numa_allocate_cpumask();
    if (!mask) throw NumaError("numa_allocate_cpumask failed");
    std::vector<int> cpus;
    if (a.numa_node_to_cpus(node, mask) == 0) {
        for (unsigned long i = 0; i < mask->size; ++i) {
            if (mask->maskp[i / kBitsPerLong] & (1UL << (i % kBitsPerLong))) {
                cpus.push_back(static_cast<int>(i));
            }
        }
    }
    a.numa_bitmask_free(mask);
    return cpus;
}

void check_node(int node, const char* what, bool need_memory, bool need_cpus) {
    int n = node_count();
    if (node < 0 || node >= n) {
        throw std::invalid_argument(std::string(what) + ": no NUMA node " + std::to_string(node) +
                                    " (this machine has nodes 0.." + std::to_string(n - 1) + ")");
    }
    if (need_memory && node_memory(node, nullptr) <= 0) {
        throw std::invalid_argument(std::string(what) + ": NUMA node " + std::to_string(node) +
                                    " has no memory");
    }
    if (need_cpus && node_cpus(node).empty()) {
        throw std::invalid_argument(std::string(what) + ": NUMA node " + std::to_string(node) +
                                    " has no CPUs");
    }
}

void check_fits(int node, std::size_t bytes, const char* what) {
    long long fr = -1;
    long long total = node_memory(node, &fr);
    if (total > 0 && bytes > static_cast<unsigned long long>(total)) {
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(bytes) +
                                    " bytes exceed NUMA node " + std::to_string(node) +
                                    "'s memory (" + std::to_string(total) + " bytes)");
    }
    if (fr >= 0 && bytes > static_cast<unsigned long long>(fr)) {
        throw NumaError(std::string(what) + ": " + std::to_string(bytes) +
                        " bytes exceed NUMA node " + std::to_string(node) + "'s free memory (" +
                        std::to_string(fr) + " bytes)");
    }
}

void run_thread_on_node(int node) {
    if (api().numa_run_on_node(node) != 0) {
        throw NumaError("numa_run_on_node(" + std::to_string(node) + "): " + errno_text(errno));
    }
}

void bind_process(int node, bool memory) {
    check_node(node, "bind", memory, true);
    std::vector<int> cpus = node_cpus(node);
    int max_cpu = 0;
    for (int c : cpus) max_cpu = c > max_cpu ? c : max_cpu;
    std::size_t setsize = CPU_ALLOC_SIZE(max_cpu + 1);
    cpu_set_t* set = CPU_ALLOC(max_cpu + 1);
    if (!set) throw NumaError("CPU_ALLOC failed");
    CPU_ZERO_S(setsize, set);
    for (int c : cpus) CPU_SET_S(c, setsize, set);

    // Memory policy first: it is per thread and only the calling thread's can be set, so do
    // it before touching affinity, and fail without side effects if the kernel refuses.
    if (memory) {
        std::vector<unsigned long> mask(kMaskBits / kBitsPerLong, 0);
        mask[node / kBitsPerLong] |= 1UL << (node % kBitsPerLong);
        // maxnode counts one past the last bit, as libnuma passes it.
        if (syscall(SYS_set_mempolicy, MPOL_BIND, mask.data(), kMaskBits + 1) != 0) {
            int e = errno;
            CPU_FREE(set);
            throw NumaError("set_mempolicy(MPOL_BIND, node " + std::to_string(node) +
                            "): " + errno_text(e));
        }
    }
    // Affinity: the calling thread, then every other thread of the process (best effort:
    // threads may exit while we walk /proc/self/task).
    if (sched_setaffinity(0, setsize, set) != 0) {
        int e = errno;
        CPU_FREE(set);
        throw NumaError("sched_setaffinity(node " + std::to_string(node) + "): " + errno_text(e));
    }
    if (DIR* d = opendir("/proc/self/task")) {
        while (dirent* ent = readdir(d)) {
            if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
            pid_t tid = static_cast<pid_t>(std::strtol(ent->d_name, nullptr, 10));
            sched_setaffinity(tid, setsize, set);
        }
        closedir(d);
    }
    CPU_FREE(set);
}

std::pair<std::string, std::vector<int>> memory_policy() {
    int mode = 0;
    std::vector<unsigned long> mask(kMaskBits / kBitsPerLong, 0);
    if (syscall(SYS_get_mempolicy, &mode, mask.data(), kMaskBits + 1, nullptr, 0UL) != 0) {
        throw NumaError("get_mempolicy: " + errno_text(errno));
    }
    std::vector<int> nodes;
    for (unsigned long i = 0; i < kMaskBits; ++i) {
        if (mask[i / kBitsPerLong] & (1UL << (i % kBitsPerLong))) {
            nodes.push_back(static_cast<int>(i));
        }
    }
    return {mode_name(mode), nodes};
}

std::vector<int> page_nodes(const void* p, std::size_t size, std::size_t max_pages) {
    if (max_pages < 1) throw std::invalid_argument("max_pages must be >= 1");
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t npages = (size + page - 1) / page;
    const std::size_t n = npages < max_pages ? npages : max_pages;
    std::vector<void*> pages(n);
    std::vector<int> st(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
        // Evenly spread over the buffer, first and last page included.
        std::size_t idx = n == 1 ? 0 : i * (npages - 1) / (n - 1);
        pages[i] = const_cast<char*>(static_cast<const char*>(p)) + idx * page;
    }
    // nodes == NULL: query only, move nothing.
    if (syscall(SYS_move_pages, 0, n, pages.data(), nullptr, st.data(), 0) != 0) {
        throw NumaError("move_pages: " + errno_text(errno));
    }
    return st;
}

Buffer::Buffer(std::size_t size, int node) {
    if (size == 0) throw std::invalid_argument("NumaBuffer: size must be > 0");
    check_node(node, "NumaBuffer", true, false);
    check_fits(node, size, "NumaBuffer");
    void* p = api().numa_alloc_onnode(size, node);
    if (!p) {
        throw NumaError("numa_alloc_onnode(" + std::to_string(size) + ", " +
                        std::to_string(node) + ") failed");
    }
    // Ask for transparent huge pages, as numpy's allocator does for large arrays: with 4 KiB
    // pages a copy of hundreds of MiB spends a measurable share of its time on TLB misses,
    // and the comparison with numpy.copyto would be unfair. Advisory: ignore failure.
    madvise(p, size, MADV_HUGEPAGE);
    // Pre-fault: the first touch places each page (on `node`, by the mbind policy libnuma set);
    // a measurement must not time page faults.
    std::memset(p, 0, size);
    data_ = p;
    size_ = size;
    node_ = node;
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(other.data_), size_(other.size_), node_(other.node_) {
    other.data_ = nullptr;
    other.size_ = 0;
}

void Buffer::release() {
    if (data_) {
        loaded().api.numa_free(data_, size_);
        data_ = nullptr;
    }
}

Buffer::~Buffer() { release(); }

}  // namespace hpcx::numa
