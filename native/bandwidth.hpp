// Bandwidth measurements. Convention everywhere: bytes copied / seconds / 1e9 (GB = 10^9
// bytes), as nvbandwidth counts. A CPU copy of N bytes counts N, not the 2N of traffic (read +
// write) that STREAM's Copy reports. The reported figure is the median sample.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace hpcx::bandwidth {

struct Result {
    double median_gbps = 0;
    std::vector<double> samples_gbps;  // in measurement order
    std::size_t size = 0;              // bytes copied per sample
};

// memcpy between two buffers of `size` bytes, both on `mem_node`, by `threads` threads pinned
// to `cpu_node`'s CPUs, each copying its contiguous share. One sample is the time from the
// first thread's start to the last thread's end. `warmup` untimed copies come first.
Result cpu_copy(int mem_node, int cpu_node, std::size_t size, int samples, int threads,
                int warmup);

enum class Direction { H2D, D2H };
Direction parse_direction(const std::string& s);  // "h2d" | "d2h", else std::invalid_argument

// One cuMemcpy{HtoD,DtoH}Async_v2 of `size` bytes per sample on a non-blocking stream, timed
// with events around it, after `warmup` untimed copies. The host buffer is on `numa_node`
// (numa_alloc_onnode, registered with cuMemHostRegister when pinned) or, with numa_node < 0,
// from cuMemAllocHost (pinned) / the heap (pageable).
Result gpu_copy(int device, int numa_node, Direction dir, std::size_t size, int samples,
                int warmup, bool pinned);

double median(std::vector<double> v);

}  // namespace hpcx::bandwidth
