#include "bandwidth.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "cuda.hpp"
#include "errors.hpp"
#include "numa.hpp"

namespace hpcx::bandwidth {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMaxCount = 100000;

// A reusable barrier (C++17 has none) that can be aborted, so a failure in one thread (or in
// starting one) never leaves the others waiting forever.
class Barrier {
  public:
    explicit Barrier(std::size_t n) : n_(n) {}
    // Returns false if aborted.
    bool wait() {
        std::unique_lock<std::mutex> lk(m_);
        if (aborted_) return false;
        std::size_t gen = gen_;
        if (++count_ == n_) {
            count_ = 0;
            ++gen_;
            cv_.notify_all();
            return true;
        }
        cv_.wait(lk, [&] { return gen != gen_ || aborted_; });
        return !aborted_;
    }
    void abort() {
        std::lock_guard<std::mutex> lk(m_);
        aborted_ = true;
        cv_.notify_all();
    }

  private:
    std::mutex m_;
    std::condition_variable cv_;
    std::size_t n_, count_ = 0, gen_ = 0;
    bool aborted_ = false;
};

void check_common(std::size_t size, int samples, int warmup) {
    if (size == 0) throw std::invalid_argument("size must be > 0 bytes");
    // Upper bounds keep warmup + samples from overflowing and the timing arrays small.
    if (samples < 1 || samples > kMaxCount) {
        throw std::invalid_argument("samples must be in 1.." + std::to_string(kMaxCount));
    }
    if (warmup < 0 || warmup > kMaxCount) {
        throw std::invalid_argument("warmup must be in 0.." + std::to_string(kMaxCount));
    }
}

double gbps(std::size_t bytes, double seconds) {
    if (!(seconds > 0)) throw std::runtime_error("timer reported a non-positive interval");
    return static_cast<double>(bytes) / seconds / 1e9;
}

}  // namespace

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

Result cpu_copy(int mem_node, int cpu_node, std::size_t size, int samples, int threads,
                int warmup) {
    check_common(size, samples, warmup);
    if (threads < 1 || threads > 1024) throw std::invalid_argument("threads must be in 1..1024");
    numa::check_node(mem_node, "mem_node", true, false);
    numa::check_node(cpu_node, "cpu_node", false, true);
    if (size > (static_cast<std::size_t>(1) << 62)) {
        throw std::invalid_argument("size " + std::to_string(size) + " is absurd");
    }
    numa::check_fits(mem_node, 2 * size, "cpu_copy (source + destination)");

    numa::Buffer src(size, mem_node);
    numa::Buffer dst(size, mem_node);
    std::memset(src.data(), 0x5a, size);

    const int iters = warmup + samples;
    const auto nthreads = static_cast<std::size_t>(threads);
    // Per-thread, per-iteration start and end times.
    std::vector<std::vector<Clock::time_point>> t0(nthreads), t1(nthreads);
    std::vector<std::string> errors(nthreads);
    Barrier barrier(nthreads);

    // Shares are multiples of 4 KiB (the last takes the rest) so threads never share a line.
    const std::size_t unit = 4096;
    const std::size_t units = (size + unit - 1) / unit;
    auto share = [&](std::size_t k, std::size_t& off, std::size_t& len) {
        std::size_t a = units * k / nthreads * unit, b = units * (k + 1) / nthreads * unit;
        a = std::min(a, size);
        b = std::min(b, size);
        off = a;
        len = b - a;
    };

    auto worker = [&](std::size_t k) {
        t0[k].resize(iters);
        t1[k].resize(iters);
        try {
            numa::run_thread_on_node(cpu_node);
        } catch (const std::exception& e) {
            errors[k] = e.what();
            barrier.abort();
            return;
        }
        std::size_t off = 0, len = 0;
        share(k, off, len);
        char* s = static_cast<char*>(src.data()) + off;
        char* d = static_cast<char*>(dst.data()) + off;
        for (int i = 0; i < iters; ++i) {
            if (!barrier.wait()) return;
            t0[k][i] = Clock::now();
            std::memcpy(d, s, len);
            t1[k][i] = Clock::now();
        }
    };

    std::vector<std::thread> pool;
    pool.reserve(nthreads);
    try {
        for (std::size_t k = 0; k < nthreads; ++k) pool.emplace_back(worker, k);
    } catch (...) {
        barrier.abort();
        for (auto& t : pool) t.join();
        throw NumaError("cannot start " + std::to_string(threads) + " copy threads");
    }
    for (auto& t : pool) t.join();
    for (const auto& e : errors) {
        if (!e.empty()) throw NumaError(e);
    }

    Result r;
    r.size = size;
    for (int i = warmup; i < iters; ++i) {
        Clock::time_point start = t0[0][i], end = t1[0][i];
        for (std::size_t k = 1; k < nthreads; ++k) {
            start = std::min(start, t0[k][i]);
            end = std::max(end, t1[k][i]);
        }
        r.samples_gbps.push_back(gbps(size, std::chrono::duration<double>(end - start).count()));
    }
    r.median_gbps = median(r.samples_gbps);
    return r;
}

Direction parse_direction(const std::string& s) {
    if (s == "h2d") return Direction::H2D;
    if (s == "d2h") return Direction::D2H;
    throw std::invalid_argument("direction must be 'h2d' or 'd2h', not '" + s + "'");
}

Result gpu_copy(int device, int numa_node, Direction dir, std::size_t size, int samples,
                int warmup, bool pinned) {
    check_common(size, samples, warmup);
    if (numa_node < -1) {
        throw std::invalid_argument("no NUMA node " + std::to_string(numa_node));
    }
    if (numa_node >= 0) {
        numa::check_node(numa_node, "numa_node", true, false);
        numa::check_fits(numa_node, size, "host buffer");
    }
    const cuda::Api& a = cuda::api();
    cuda::check_device(device);
    std::size_t total = 0;
    {
        cuda::CUdevice dev = 0;
        cuda::check(a.cuDeviceGet(&dev, device), "cuDeviceGet");
        cuda::check(a.cuDeviceTotalMem_v2(&total, dev), "cuDeviceTotalMem_v2");
    }
    if (size > total) {
        throw std::invalid_argument("size " + std::to_string(size) + " exceeds CUDA device " +
                                    std::to_string(device) + "'s memory (" +
                                    std::to_string(total) + " bytes)");
    }

    // Declaration order is destruction order reversed: the context outlives everything
    // allocated in it, the host buffer outlives its registration.
    cuda::ScopedContext ctx(device);
    std::unique_ptr<numa::Buffer> numa_host;
    std::unique_ptr<cuda::PinnedHostBuffer> pinned_host;
    std::unique_ptr<char[]> heap_host;
    void* host = nullptr;
    if (numa_node >= 0) {
        numa_host = std::make_unique<numa::Buffer>(size, numa_node);
        host = numa_host->data();
    } else if (pinned) {
        pinned_host = std::make_unique<cuda::PinnedHostBuffer>(size);
        host = pinned_host->get();
    } else {
        heap_host.reset(new (std::nothrow) char[size]);
        if (!heap_host) throw std::invalid_argument("cannot allocate " + std::to_string(size) +
                                                    " host bytes");
        host = heap_host.get();
    }
    std::memset(host, 0x5a, size);  // pre-fault pageable memory too
    std::unique_ptr<cuda::HostRegistration> reg;
    if (pinned && numa_host) reg = std::make_unique<cuda::HostRegistration>(host, size);

    cuda::DeviceBuffer dbuf(size);
    cuda::Stream stream;
    cuda::Event start, stop;

    auto copy = [&] {
        if (dir == Direction::H2D) {
            cuda::check(a.cuMemcpyHtoDAsync_v2(dbuf.get(), host, size, stream.get()),
                        "cuMemcpyHtoDAsync_v2");
        } else {
            cuda::check(a.cuMemcpyDtoHAsync_v2(host, dbuf.get(), size, stream.get()),
                        "cuMemcpyDtoHAsync_v2");
        }
    };
    for (int i = 0; i < warmup; ++i) copy();
    cuda::check(a.cuStreamSynchronize(stream.get()), "cuStreamSynchronize");

    Result r;
    r.size = size;
    for (int i = 0; i < samples; ++i) {
        cuda::check(a.cuEventRecord(start.get(), stream.get()), "cuEventRecord");
        copy();
        cuda::check(a.cuEventRecord(stop.get(), stream.get()), "cuEventRecord");
        cuda::check(a.cuEventSynchronize(stop.get()), "cuEventSynchronize");
        float ms = 0;
        cuda::check(a.cuEventElapsedTime(&ms, start.get(), stop.get()), "cuEventElapsedTime");
        r.samples_gbps.push_back(gbps(size, static_cast<double>(ms) * 1e-3));
    }
    r.median_gbps = median(r.samples_gbps);
    return r;
}

}  // namespace hpcx::bandwidth
