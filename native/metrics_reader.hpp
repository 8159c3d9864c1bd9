// A reader of run folders' metrics.jsonl files for the harvest: each file read and checked in
// C++ on a few threads (no GIL), for the common line only. A file it cannot prove clean (any
// line not of the plain shape, a meta line, a blank line, a limit reached, not a regular
// file) is marked for hpcx/metrics.py's reader, which reports its problems by line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hpcx::metrics {

struct Limits {
    std::int64_t max_lines = 0;
    std::size_t max_line_bytes = 0;
    std::size_t max_name = 0;
    std::size_t max_file_bytes = 0;
    double time_min = 0.0;
    double time_max = 0.0;
};

// Per file: CLEAN (its rows are in the columns; a missing file is clean with no rows) or
// FALLBACK (no rows here: the Python reader reads it).
enum : std::uint8_t { CLEAN = 0, FALLBACK = 1 };

struct Columns {
    std::vector<std::uint8_t> status;  // per file
    std::vector<std::int64_t> counts;  // per file: rows read
    std::vector<std::int32_t> name_id;  // per row: index into names
    std::vector<std::string> names;
    std::vector<std::int64_t> step;
    std::vector<std::uint8_t> has_step;
    std::vector<double> value;
    std::vector<double> time;
    std::vector<std::uint8_t> has_time;
};

// Read ``paths`` in order on up to ``threads`` threads; rows come out in file order, each
// file's in line order. Never throws for a file: a file it cannot read is FALLBACK.
Columns read_files(const std::vector<std::string>& paths, const Limits& limits, int threads);

// Small files read whole on up to ``threads`` threads, each opened as the metrics files are
// (no link followed, never blocking, a regular file only, at most ``max_bytes``): ``ok[i]``
// says whether ``data[i]`` holds file i (else it is the Python reader's: missing, not a
// regular file, too big, an error).
struct Files {
    std::vector<std::string> data;
    std::vector<std::uint8_t> ok;
};
Files read_regular_files(const std::vector<std::string>& paths, std::size_t max_bytes,
                         int threads);

}  // namespace hpcx::metrics
