// See metrics_reader.hpp. The line accepted here is exactly one JSON object with the keys
// "name" (a plain printable ASCII string, no escapes), "value" (a number), and optionally
// "step" (an integer or null) and "time" (a number or null), each once, separated by spaces
// or tabs only, the object filling the line. For such a line, what Python's json module and
// hpcx.metrics' checks give is decided here the same way: the number grammar is JSON's, an
// integer value is converted as float(int) does (round to nearest), a float with
// std::from_chars (correctly rounded, as float(str)), and every limit is checked. Anything
// else sends the whole file to the Python reader.
#include "metrics_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <exception>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace hpcx::metrics {
namespace {

struct Part {
    Columns cols;
    std::unordered_map<std::string, std::int32_t> ids;
    // The names of the file being read, looked up before the map (a file has a few names).
    std::vector<std::int32_t> recent;
    // What ended this part's thread early (std::bad_alloc outside a file's own try): rethrown
    // in the calling thread once every thread is joined, never out of a std::thread.
    std::exception_ptr error;
};

inline bool is_ws(char c) { return c == ' ' || c == '\t'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

struct Number {
    bool is_int = false;
    const char* begin = nullptr;
    const char* end = nullptr;
};

// A JSON number at p (its grammar, nothing more); false when there is none.
bool scan_number(const char*& p, const char* end, Number& out) {
    const char* s = p;
    const char* q = p;
    if (q < end && *q == '-') ++q;
    if (q >= end) return false;
    if (*q == '0') {
        ++q;
    } else if (*q >= '1' && *q <= '9') {
        while (q < end && is_digit(*q)) ++q;
    } else {
        return false;
    }
    bool is_int = true;
    if (q < end && *q == '.') {
        ++q;
        if (q >= end || !is_digit(*q)) return false;
        while (q < end && is_digit(*q)) ++q;
        is_int = false;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        ++q;
        if (q < end && (*q == '+' || *q == '-')) ++q;
        if (q >= end || !is_digit(*q)) return false;
        while (q < end && is_digit(*q)) ++q;
        is_int = false;
    }
    out.is_int = is_int;
    out.begin = s;
    out.end = q;
    p = q;
    return true;
}

// An integer literal that fits int64 (else false: Python would hold a bigger int).
bool to_int64(const Number& n, std::int64_t& out) {
    const char* q = n.begin;
    bool neg = false;
    if (*q == '-') {
        neg = true;
        ++q;
    }
    if (n.end - q > 19) return false;
    std::uint64_t mag = 0;
    for (; q < n.end; ++q) {
        std::uint64_t d = static_cast<std::uint64_t>(*q - '0');
        if (mag > (UINT64_MAX - d) / 10) return false;
        mag = mag * 10 + d;
    }
    const std::uint64_t limit = neg ? (std::uint64_t{1} << 63) : (std::uint64_t{1} << 63) - 1;
    if (mag > limit) return false;
    out = neg ? static_cast<std::int64_t>(0 - mag) : static_cast<std::int64_t>(mag);
    return true;
}

// A float literal's value, correctly rounded; false when out of range (Python: inf or a
// denormal edge: left to it).
bool to_double(const Number& n, double& out) {
    auto r = std::from_chars(n.begin, n.end, out, std::chars_format::general);
    return r.ec == std::errc() && r.ptr == n.end && std::isfinite(out);
}

bool is_null(const char*& p, const char* end) {
    if (end - p >= 4 && std::memcmp(p, "null", 4) == 0) {
        p += 4;
        return true;
    }
    return false;
}

enum Key { NAME = 1, VALUE = 2, STEP = 4, TIME = 8 };

// One line [p, end) into the part's columns; false: not the plain shape (nothing appended).
bool read_line(const char* p, const char* end, const Limits& lim, Part& part) {
    if (p >= end || *p != '{' || end[-1] != '}') return false;
    ++p;
    --end;  // the closing brace
    int seen = 0;
    const char* name = nullptr;
    std::size_t name_len = 0;
    double value = 0.0;
    std::int64_t step = 0;
    bool has_step = false;
    double t = 0.0;
    bool has_time = false;
    while (p < end && is_ws(*p)) ++p;
    for (;;) {
        if (p >= end || *p != '"') return false;
        ++p;
        const char* k = p;
        while (p < end && *p != '"' && *p != '\\') ++p;
        if (p >= end || *p != '"') return false;
        std::string_view key(k, static_cast<std::size_t>(p - k));
        ++p;
        int which;
        if (key == "name") {
            which = NAME;
        } else if (key == "value") {
            which = VALUE;
        } else if (key == "step") {
            which = STEP;
        } else if (key == "time") {
            which = TIME;
        } else {
            return false;
        }
        if (seen & which) return false;  // a repeated key: Python keeps the last; left to it
        seen |= which;
        while (p < end && is_ws(*p)) ++p;
        if (p >= end || *p != ':') return false;
        ++p;
        while (p < end && is_ws(*p)) ++p;
        if (which == NAME) {
            if (p >= end || *p != '"') return false;
            ++p;
            name = p;
            while (p < end && *p != '"') {
                unsigned char c = static_cast<unsigned char>(*p);
                if (c < 0x20 || c > 0x7e || c == '\\') return false;
                ++p;
            }
            if (p >= end) return false;
            name_len = static_cast<std::size_t>(p - name);
            ++p;
            if (name_len == 0 || name_len > lim.max_name) return false;
        } else if (which == VALUE) {
            Number n;
            if (!scan_number(p, end, n)) return false;
            if (n.is_int) {
                std::int64_t i;
                if (!to_int64(n, i)) return false;
                value = static_cast<double>(i);
            } else if (!to_double(n, value)) {
                return false;
            }
        } else if (which == STEP) {
            if (!is_null(p, end)) {
                Number n;
                if (!scan_number(p, end, n) || !n.is_int || !to_int64(n, step)) return false;
                has_step = true;
            }
        } else {
            if (!is_null(p, end)) {
                Number n;
                if (!scan_number(p, end, n)) return false;
                if (n.is_int) {
                    // Exact in a double below 2**53: the same comparison as Python's.
                    std::int64_t i;
                    if (!to_int64(n, i) || i > (std::int64_t{1} << 53) ||
                        i < -(std::int64_t{1} << 53))
                        return false;
                    t = static_cast<double>(i);
                } else if (!to_double(n, t)) {
                    return false;
                }
                if (!(t >= lim.time_min && t <= lim.time_max)) return false;
                has_time = true;
            }
        }
        while (p < end && is_ws(*p)) ++p;
        if (p == end) break;
        if (*p != ',') return false;
        ++p;
        while (p < end && is_ws(*p)) ++p;
    }
    if ((seen & (NAME | VALUE)) != (NAME | VALUE)) return false;
    std::string_view nm(name, name_len);
    std::int32_t id = -1;
    for (std::int32_t r : part.recent) {
        if (part.cols.names[static_cast<std::size_t>(r)] == nm) {
            id = r;
            break;
        }
    }
    if (id < 0) {
        std::string s(nm);
        auto it = part.ids.find(s);
        if (it == part.ids.end()) {
            id = static_cast<std::int32_t>(part.cols.names.size());
            part.cols.names.push_back(s);
            part.ids.emplace(std::move(s), id);
        } else {
            id = it->second;
        }
        if (part.recent.size() < 16) part.recent.push_back(id);
    }
    Columns& c = part.cols;
    c.name_id.push_back(id);
    c.value.push_back(value);
    c.step.push_back(has_step ? step : 0);
    c.has_step.push_back(has_step ? 1 : 0);
    c.time.push_back(has_time ? t : 0.0);
    c.has_time.push_back(has_time ? 1 : 0);
    return true;
}

// The file's bytes, opened as hpcx.metrics.open_regular does (no link followed, never
// blocking on a FIFO, a regular file only). 1: read; 0: missing; -1: for the Python reader.
int slurp(const std::string& path, std::size_t max_bytes, std::string& buf) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<std::uint64_t>(st.st_size) > max_bytes) {
        ::close(fd);
        return -1;
    }
    buf.resize(static_cast<std::size_t>(st.st_size) + 1);
    std::size_t got = 0;
    for (;;) {
        if (got == buf.size()) {
            if (buf.size() > max_bytes) {
                ::close(fd);
                return -1;
            }
            buf.resize(buf.size() * 2);
        }
        ssize_t n = ::read(fd, &buf[got], buf.size() - got);
        if (n < 0) {
            if (errno == EINTR) continue;
            ::close(fd);
            return -1;
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (got > max_bytes) return -1;
    buf.resize(got);
    return 1;
}

std::uint8_t read_file(const std::string& path, const Limits& lim, Part& part,
                       std::string& buf, std::int64_t& rows) {
    rows = 0;
    int got = slurp(path, lim.max_file_bytes, buf);
    if (got == 0) return CLEAN;
    if (got < 0) return FALLBACK;
    Columns& c = part.cols;
    const std::size_t before = c.value.size();
    part.recent.clear();
    const char* p = buf.data();
    const char* end = p + buf.size();
    std::int64_t lines = 0;
    bool ok = true;
    try {
        while (p < end) {
            const char* nl =
                static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
            const char* stop = nl ? nl : end;
            ++lines;
            if (lines > lim.max_lines ||
                static_cast<std::size_t>(stop - p) > lim.max_line_bytes ||
                !read_line(p, stop, lim, part)) {
                ok = false;
                break;
            }
            p = nl ? nl + 1 : end;
        }
    } catch (...) {  // std::bad_alloc midway through a row: the file is the Python reader's
        ok = false;
    }
    if (!ok) {
        // Every column back to where this file began (a row may be part-appended).
        c.name_id.resize(before);
        c.value.resize(before);
        c.step.resize(before);
        c.has_step.resize(before);
        c.time.resize(before);
        c.has_time.resize(before);
        return FALLBACK;
    }
    rows = static_cast<std::int64_t>(c.value.size() - before);
    return CLEAN;
}

void read_range(const std::vector<std::string>& paths, std::size_t from, std::size_t to,
                const Limits& lim, Part& part) noexcept {
    try {
        std::string buf;
        part.cols.status.reserve(to - from);
        part.cols.counts.reserve(to - from);
        for (std::size_t i = from; i < to; ++i) {
            std::int64_t rows = 0;
            std::uint8_t st;
            try {
                st = read_file(paths[i], lim, part, buf, rows);
            } catch (...) {  // std::bad_alloc: that file is the Python reader's
                st = FALLBACK;
                rows = 0;
            }
            part.cols.status.push_back(st);
            part.cols.counts.push_back(rows);
        }
    } catch (...) {
        part.error = std::current_exception();
    }
}

// Run fn(k, from, to) over t ranges of [0, n), one thread each. A thread that cannot be
// started (std::system_error: the process's thread limit) runs its range in the calling
// thread instead, so no started thread is ever left unjoined. fn must not throw.
template <class F>
void run_ranges(std::size_t n, std::size_t t, F fn) {
    std::vector<std::thread> pool;
    pool.reserve(t);  // throws before any thread starts, if at all
    const std::size_t step = (n + t - 1) / t;
    for (std::size_t k = 0; k < t; ++k) {
        const std::size_t from = std::min(n, k * step), to = std::min(n, from + step);
        try {
            pool.emplace_back(fn, k, from, to);
        } catch (...) {
            fn(k, from, to);
        }
    }
    for (auto& th : pool) th.join();
}

template <class T>
void append(std::vector<T>& to, const std::vector<T>& from) {
    to.insert(to.end(), from.begin(), from.end());
}

std::size_t thread_count(int threads, std::size_t n) {
    std::size_t t = threads < 1 ? 1 : static_cast<std::size_t>(threads);
    return std::min(t, n / 64 + 1);
}

}  // namespace

Files read_regular_files(const std::vector<std::string>& paths, std::size_t max_bytes,
                         int threads) {
    const std::size_t n = paths.size();
    Files out;
    out.data.resize(n);
    out.ok.assign(n, 0);
    auto work = [&](std::size_t, std::size_t from, std::size_t to) noexcept {
        for (std::size_t i = from; i < to; ++i) {
            try {
                out.ok[i] = slurp(paths[i], max_bytes, out.data[i]) == 1 ? 1 : 0;
            } catch (...) {
                out.ok[i] = 0;
            }
            if (!out.ok[i]) out.data[i].clear();
        }
    };
    const std::size_t t = thread_count(threads, n);
    if (t <= 1) {
        work(0, 0, n);
        return out;
    }
    run_ranges(n, t, work);
    return out;
}

Columns read_files(const std::vector<std::string>& paths, const Limits& limits, int threads) {
    const std::size_t n = paths.size();
    const std::size_t t = thread_count(threads, n);
    std::vector<Part> parts(t);
    if (t == 1) {
        read_range(paths, 0, n, limits, parts[0]);
        if (parts[0].error) std::rethrow_exception(parts[0].error);
        return std::move(parts[0].cols);
    }
    run_ranges(n, t, [&](std::size_t k, std::size_t from, std::size_t to) noexcept {
        read_range(paths, from, to, limits, parts[k]);
    });
    for (const Part& part : parts)
        if (part.error) std::rethrow_exception(part.error);
    Columns out = std::move(parts[0].cols);
    std::unordered_map<std::string, std::int32_t> ids = std::move(parts[0].ids);
    for (std::size_t k = 1; k < t; ++k) {
        Columns& c = parts[k].cols;
        std::vector<std::int32_t> remap(c.names.size());
        for (std::size_t j = 0; j < c.names.size(); ++j) {
            auto it = ids.find(c.names[j]);
            if (it == ids.end()) {
                std::int32_t id = static_cast<std::int32_t>(out.names.size());
                out.names.push_back(c.names[j]);
                ids.emplace(c.names[j], id);
                remap[j] = id;
            } else {
                remap[j] = it->second;
            }
        }
        for (std::int32_t& id : c.name_id) id = remap[static_cast<std::size_t>(id)];
        append(out.status, c.status);
        append(out.counts, c.counts);
        append(out.name_id, c.name_id);
        append(out.step, c.step);
        append(out.has_step, c.has_step);
        append(out.value, c.value);
        append(out.time, c.time);
        append(out.has_time, c.has_time);
    }
    return out;
}

}  // namespace hpcx::metrics
