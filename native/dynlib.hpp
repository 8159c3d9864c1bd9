// dlopen a shared library at run time, so the module builds and imports without it.
#pragma once

#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace hpcx {

// Outcome of loading a library lazily: what was opened, or why not (dlerror's words).
struct LoadStatus {
    bool ok = false;
    std::string error;    // empty when ok
    std::string library;  // the file actually opened (from dladdr), or the name tried
};

// Owns one dlopen handle. Resolution failures are collected, not thrown, so one message can
// name every missing entry point.
class DynLib {
  public:
    DynLib() = default;
    DynLib(const DynLib&) = delete;
    DynLib& operator=(const DynLib&) = delete;
    ~DynLib() {
        // Libraries stay loaded for the life of the process, as the driver expects: unloading
        // libcuda while its threads run is unsafe. The handle is intentionally not closed.
    }

    // Opens `env_var`'s value if set and non-empty, else `default_name`. Returns false and
    // fills `error` on failure.
    bool open(const char* env_var, const char* default_name, std::string& tried,
              std::string& error) {
        const char* override_path = std::getenv(env_var);
        tried = (override_path && *override_path) ? override_path : default_name;
        dlerror();
        handle_ = dlopen(tried.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle_) {
            const char* e = dlerror();
            error = e ? e : ("cannot open " + tried);
            return false;
        }
        return true;
    }

    template <typename Fn>
    void resolve(Fn& fn, const char* name) {
        dlerror();
        void* p = dlsym(handle_, name);
        if (!p) {
            missing_.push_back(name);
        }
        fn = reinterpret_cast<Fn>(p);
    }

    const std::vector<std::string>& missing() const { return missing_; }

    // The path of the file that defines `symbol`: what the dynamic loader actually picked.
    static std::string file_of(void* symbol, const std::string& fallback) {
        Dl_info info{};
        if (symbol && dladdr(symbol, &info) && info.dli_fname) return info.dli_fname;
        return fallback;
    }

  private:
    void* handle_ = nullptr;
    std::vector<std::string> missing_;
};

inline std::string join(const std::vector<std::string>& items, const char* sep) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += sep;
        out += items[i];
    }
    return out;
}

}  // namespace hpcx
