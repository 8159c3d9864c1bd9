// NUMA placement through libnuma.so.1, opened lazily with dlopen (no headers needed), plus the
// raw syscalls (set_mempolicy, get_mempolicy, move_pages) that libnuma wraps.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "dynlib.hpp"

namespace hpcx::numa {

// Loads libnuma on first call (env HPCX_LIBNUMA overrides the path); never throws.
const LoadStatus& status();

// Throws LibraryUnavailable unless libnuma loaded and numa_available() succeeded.
void require();

// Configured nodes: numa_max_node() + 1.
int node_count();

// Throws std::invalid_argument unless `node` exists (and has memory / CPUs when asked).
void check_node(int node, const char* what, bool need_memory, bool need_cpus);

// Total and free bytes of a node's memory (numa_node_size64); -1 if unknown.
long long node_memory(int node, long long* free_bytes);

// CPUs of a node, ascending.
std::vector<int> node_cpus(int node);

// Runs the calling thread on the node's CPUs only (numa_run_on_node).
void run_thread_on_node(int node);

// Binds the process: every thread's CPU affinity to the node's CPUs, and the calling thread's
// memory policy to MPOL_BIND on the node when `memory`. Both are inherited by threads created
// later and survive execve, which is what `hpcx exec` relies on.
void bind_process(int node, bool memory);

// The calling thread's memory policy: (mode name, nodes in its mask).
std::pair<std::string, std::vector<int>> memory_policy();

// The node each of up to `max_pages` pages (spread evenly over [p, p+size)) lives on,
// from move_pages(nodes=NULL); negative values are -errno for a page (e.g. -ENOENT: not present).
std::vector<int> page_nodes(const void* p, std::size_t size, std::size_t max_pages);

// A pre-faulted buffer on one node (numa_alloc_onnode), freed on destruction.
class Buffer {
  public:
    Buffer(std::size_t size, int node);
    ~Buffer();
    Buffer(Buffer&& other) noexcept;
    Buffer& operator=(Buffer&&) = delete;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    void* data() const { return data_; }
    std::size_t size() const { return size_; }
    int node() const { return node_; }
    bool closed() const { return data_ == nullptr; }
    void release();  // idempotent

  private:
    void* data_ = nullptr;
    std::size_t size_ = 0;
    int node_ = -1;
};

// Throws std::invalid_argument if `bytes` cannot fit on the node at all, NumaError if the
// node has not that much free memory now (pre-faulting would invite the OOM killer).
void check_fits(int node, std::size_t bytes, const char* what);

}  // namespace hpcx::numa
