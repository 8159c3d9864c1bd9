// The Python face of the native core: argument conversion, GIL handling and exception
// registration only. The typed API users see is hpcx/node/native.py; hpcx/_native.pyi types
// this module for mypy (tests/native/test_native_stub.py keeps the two in step).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bandwidth.hpp"
#include "cuda.hpp"
#include "errors.hpp"
#include "metrics_reader.hpp"
#include "numa.hpp"

namespace py = pybind11;

namespace {

// Python ints arrive as int64 so that negative sizes become a ValueError, not a TypeError.
std::size_t to_size(std::int64_t size, const char* what) {
    if (size <= 0) {
        throw std::invalid_argument(std::string(what) + " must be > 0 bytes, not " +
                                    std::to_string(size));
    }
    return static_cast<std::size_t>(size);
}

py::dict capabilities() {
    const hpcx::LoadStatus& n = hpcx::numa::status();
    const hpcx::LoadStatus& c = hpcx::cuda::status();
    py::dict d;
    d["numa"] = n.ok;
    d["numa_error"] = n.ok ? py::object(py::none()) : py::object(py::str(n.error));
    d["numa_library"] = n.library.empty() ? py::object(py::none()) : py::object(py::str(n.library));
    d["cuda"] = c.ok;
    d["cuda_error"] = c.ok ? py::object(py::none()) : py::object(py::str(c.error));
    d["cuda_library"] = c.library.empty() ? py::object(py::none()) : py::object(py::str(c.library));
    return d;
}

using BandwidthTuple = std::tuple<double, std::vector<double>, std::size_t>;

BandwidthTuple as_tuple(const hpcx::bandwidth::Result& r) {
    return {r.median_gbps, r.samples_gbps, r.size};
}

class PyNumaBuffer {
  public:
    PyNumaBuffer(std::int64_t size, int node) : buf_(to_size(size, "size"), node) {}
    std::size_t size() const { return buf_.size(); }
    int node() const { return buf_.node(); }
    bool closed() const { return buf_.closed(); }
    void close() { buf_.release(); }
    std::vector<int> page_nodes(std::int64_t max_pages) const {
        if (buf_.closed()) throw std::invalid_argument("NumaBuffer is closed");
        if (max_pages < 1) throw std::invalid_argument("max_pages must be >= 1");
        return hpcx::numa::page_nodes(buf_.data(), buf_.size(),
                                      static_cast<std::size_t>(max_pages));
    }

  private:
    hpcx::numa::Buffer buf_;
};

template <class T>
py::bytes as_bytes(const std::vector<T>& v) {
    return py::bytes(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// The harvest's metrics files, read and checked on ``threads`` threads without the GIL (see
// native/metrics_reader.hpp); columns as bytes (numpy.frombuffer reads them in place).
py::tuple read_metrics_files(const std::vector<std::string>& paths, std::int64_t max_lines,
                             std::int64_t max_line_bytes, std::int64_t max_name,
                             std::int64_t max_file_bytes, double time_min, double time_max,
                             int threads) {
    if (max_lines < 1 || max_line_bytes < 1 || max_name < 1 || max_file_bytes < 1) {
        throw std::invalid_argument("read_metrics_files: limits must be >= 1");
    }
    hpcx::metrics::Limits lim;
    lim.max_lines = max_lines;
    lim.max_line_bytes = static_cast<std::size_t>(max_line_bytes);
    lim.max_name = static_cast<std::size_t>(max_name);
    lim.max_file_bytes = static_cast<std::size_t>(max_file_bytes);
    lim.time_min = time_min;
    lim.time_max = time_max;
    hpcx::metrics::Columns c;
    {
        py::gil_scoped_release nogil;
        c = hpcx::metrics::read_files(paths, lim, threads);
    }
    py::list names;
    for (const auto& n : c.names) names.append(py::str(n));
    return py::make_tuple(as_bytes(c.status), as_bytes(c.counts), as_bytes(c.name_id), names,
                          as_bytes(c.step), as_bytes(c.has_step), as_bytes(c.value),
                          as_bytes(c.time), as_bytes(c.has_time));
}

// Small files (status.json of many run folders) read whole on threads without the GIL; None
// for each file the Python reader must read itself (see read_regular_files).
py::list read_regular_files(const std::vector<std::string>& paths, std::int64_t max_bytes,
                            int threads) {
    if (max_bytes < 1) throw std::invalid_argument("read_regular_files: max_bytes must be >= 1");
    hpcx::metrics::Files f;
    {
        py::gil_scoped_release nogil;
        f = hpcx::metrics::read_regular_files(paths, static_cast<std::size_t>(max_bytes), threads);
    }
    py::list out(paths.size());
    for (std::size_t i = 0; i < paths.size(); ++i) {
        if (f.ok[i]) {
            out[i] = py::bytes(f.data[i]);
        } else {
            out[i] = py::none();
        }
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "hpcx native core (private: use hpcx.native)";

    auto& base = PyExc_RuntimeError;
    py::register_exception<hpcx::NumaError>(m, "NumaError", base);
    py::register_exception<hpcx::CudaError>(m, "CudaError", base);
    py::register_exception<hpcx::LibraryUnavailable>(m, "LibraryUnavailable", base);

    m.def("capabilities", &capabilities,
          "Load libnuma and libcuda if not yet tried; report what loaded and why not.");
    m.def("numa_node_count", &hpcx::numa::node_count);
    m.def("node_cpus", [](int node) {
        hpcx::numa::check_node(node, "node_cpus", false, false);
        return hpcx::numa::node_cpus(node);
    });
    m.def("node_memory", [](int node) {
        hpcx::numa::check_node(node, "node_memory", false, false);
        long long free_bytes = -1;
        long long total = hpcx::numa::node_memory(node, &free_bytes);
        return std::make_pair(total, free_bytes);
    });
    m.def("bind", &hpcx::numa::bind_process, py::arg("node"), py::arg("memory") = true);
    m.def("memory_policy", &hpcx::numa::memory_policy);

    py::class_<PyNumaBuffer>(m, "NumaBuffer")
        .def(py::init<std::int64_t, int>(), py::arg("size"), py::arg("node"),
             py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("size", &PyNumaBuffer::size)
        .def_property_readonly("node", &PyNumaBuffer::node)
        .def_property_readonly("closed", &PyNumaBuffer::closed)
        .def("close", &PyNumaBuffer::close)
        .def("page_nodes", &PyNumaBuffer::page_nodes, py::arg("max_pages") = 64);

    m.def(
        "cpu_copy_bandwidth",
        [](int mem_node, int cpu_node, std::int64_t size, int samples, int threads, int warmup) {
            std::size_t n = to_size(size, "size");
            py::gil_scoped_release nogil;
            return as_tuple(
                hpcx::bandwidth::cpu_copy(mem_node, cpu_node, n, samples, threads, warmup));
        },
        py::arg("mem_node"), py::arg("cpu_node"), py::arg("size"), py::arg("samples"),
        py::arg("threads"), py::arg("warmup"));

    m.def("cuda_devices", [] {
        std::vector<std::tuple<int, std::string, std::string, std::size_t>> out;
        for (const auto& d : hpcx::cuda::devices()) {
            out.emplace_back(d.index, d.name, d.pci_bus_id, d.total_memory);
        }
        return out;
    });

    m.def(
        "gpu_copy_bandwidth",
        [](int device, std::optional<int> numa_node, const std::string& direction,
           std::int64_t size, int samples, int warmup, bool pinned) {
            hpcx::bandwidth::Direction dir = hpcx::bandwidth::parse_direction(direction);
            std::size_t n = to_size(size, "size");
            if (numa_node && *numa_node < 0) {
                throw std::invalid_argument("no NUMA node " + std::to_string(*numa_node));
            }
            py::gil_scoped_release nogil;
            return as_tuple(hpcx::bandwidth::gpu_copy(device, numa_node.value_or(-1), dir, n,
                                                      samples, warmup, pinned));
        },
        py::arg("device"), py::arg("numa_node"), py::arg("direction"), py::arg("size"),
        py::arg("samples"), py::arg("warmup"), py::arg("pinned"));

    m.def("read_metrics_files", &read_metrics_files, py::arg("paths"), py::arg("max_lines"),
          py::arg("max_line_bytes"), py::arg("max_name"), py::arg("max_file_bytes"),
          py::arg("time_min"), py::arg("time_max"), py::arg("threads"),
          "Read metrics.jsonl files (plain lines only) on threads; see hpcx.run.harvest.");
    m.def("read_regular_files", &read_regular_files, py::arg("paths"), py::arg("max_bytes"),
          py::arg("threads"),
          "Read small regular files whole on threads (None: not read); see hpcx.metrics.");
}
