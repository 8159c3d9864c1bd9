/* A stand-in for the CUDA driver (libcuda.so.1) over plain host memory, for tests on machines
 * without a GPU. It implements the entry points hpcx's native module resolves, strictly enough
 * to catch misuse: copies need a current context and live, large-enough allocations; double
 * registration and unknown handles are errors. It counts live resources so a test can assert
 * that every path frees what it took (fake_cuda_live, read through ctypes).
 *
 * Knobs (environment, read at each call):
 *   FAKE_CUDA_DEVICES=N          number of devices (default 2)
 *   FAKE_CUDA_FAIL=fn[,fn...]    those entry points return their natural error code
 *   FAKE_CUDA_FAIL_AFTER=N       ...but only after N successful calls to them
 * Build with -DFAKE_OMIT_HTOD to leave cuMemcpyHtoDAsync_v2 out (symbol resolution tests). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct fake_ctx { int dev; int refs; } *CUcontext;
typedef struct fake_stream { int magic; } *CUstream;
typedef struct fake_event { int magic; int recorded; struct timespec t; } *CUevent;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_NO_DEVICE = 100,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_READY = 600,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED = 712,
    CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED = 713,
};

#define STREAM_MAGIC 0x5743
#define EVENT_MAGIC 0x4576
#define MAX_TRACKED 256
#define DEVICE_MEMORY (1ULL << 30)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int initialized;
static struct fake_ctx contexts[8];
static __thread CUcontext ctx_stack[16];
static __thread int ctx_depth;
static size_t device_used[8];

struct tracked { void *p; size_t size; int dev; };
static struct tracked dev_allocs[MAX_TRACKED], host_allocs[MAX_TRACKED], registrations[MAX_TRACKED];
static int live_streams, live_events, fail_counts[64];

/* ---- helpers ---- */

static int device_count(void) {
    const char *s = getenv("FAKE_CUDA_DEVICES");
    int n = s ? atoi(s) : 2;
    return n < 0 ? 0 : (n > 8 ? 8 : n);
}

/* Natural error codes for injected failures. */
static CUresult injected(const char *fn, CUresult code) {
    static const char *seen[64];
    const char *list = getenv("FAKE_CUDA_FAIL");
    if (!list) return CUDA_SUCCESS;
    size_t n = strlen(fn);
    const char *p = list;
    int hit = 0;
    while ((p = strstr(p, fn)) != NULL) {
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) { hit = 1; break; }
        p += n;
    }
    if (!hit) return CUDA_SUCCESS;
    const char *after = getenv("FAKE_CUDA_FAIL_AFTER");
    if (after) {
        pthread_mutex_lock(&lock);
        int slot = 0;
        while (slot < 63 && seen[slot] && strcmp(seen[slot], fn) != 0) slot++;
        seen[slot] = fn;
        int count = fail_counts[slot]++;
        pthread_mutex_unlock(&lock);
        if (count < atoi(after)) return CUDA_SUCCESS;
    }
    return code;
}

static int track(struct tracked *t, void *p, size_t size, int dev) {
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (!t[i].p) { t[i].p = p; t[i].size = size; t[i].dev = dev; return 1; }
    }
    return 0;
}

static struct tracked *find(struct tracked *t, const void *p) {
    for (int i = 0; i < MAX_TRACKED; i++) if (t[i].p == p) return &t[i];
    return NULL;
}

/* The tracked range containing [p, p+size), or NULL. */
static struct tracked *covering(struct tracked *t, const void *p, size_t size) {
    for (int i = 0; i < MAX_TRACKED; i++) {
        const char *b = t[i].p;
        if (b && (const char *)p >= b && (const char *)p + size <= b + t[i].size) return &t[i];
    }
    return NULL;
}

static int count(struct tracked *t) {
    int n = 0;
    for (int i = 0; i < MAX_TRACKED; i++) n += t[i].p != NULL;
    return n;
}

static CUcontext current(void) { return ctx_depth ? ctx_stack[ctx_depth - 1] : NULL; }

/* ---- what tests read through ctypes ---- */

int fake_cuda_live_device_allocs(void) { return count(dev_allocs); }
int fake_cuda_live_host_allocs(void) { return count(host_allocs); }
int fake_cuda_live_registrations(void) { return count(registrations); }
int fake_cuda_live_streams(void) { return live_streams; }
int fake_cuda_live_events(void) { return live_events; }
int fake_cuda_retained_contexts(void) {
    int n = 0;
    for (int i = 0; i < 8; i++) n += contexts[i].refs;
    return n;
}
int fake_cuda_context_depth(void) { return ctx_depth; }
int fake_cuda_live(void) {
    return fake_cuda_live_device_allocs() + fake_cuda_live_host_allocs() +
           fake_cuda_live_registrations() + live_streams + live_events +
           fake_cuda_retained_contexts() + ctx_depth;
}

/* ---- the driver API ---- */

CUresult cuInit(unsigned flags) {
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = injected("cuInit", CUDA_ERROR_NO_DEVICE);
    if (r) return r;
    initialized = 1;
    return CUDA_SUCCESS;
}

CUresult cuGetErrorName(CUresult error, const char **name) {
    if (!name) return CUDA_ERROR_INVALID_VALUE;
    switch (error) {
#define NAME(x) case x: *name = #x; return CUDA_SUCCESS;
        NAME(CUDA_SUCCESS)
        NAME(CUDA_ERROR_INVALID_VALUE)
        NAME(CUDA_ERROR_OUT_OF_MEMORY)
        NAME(CUDA_ERROR_NOT_INITIALIZED)
        NAME(CUDA_ERROR_NO_DEVICE)
        NAME(CUDA_ERROR_INVALID_DEVICE)
        NAME(CUDA_ERROR_INVALID_CONTEXT)
        NAME(CUDA_ERROR_INVALID_HANDLE)
        NAME(CUDA_ERROR_NOT_READY)
        NAME(CUDA_ERROR_ILLEGAL_ADDRESS)
        NAME(CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED)
        NAME(CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED)
#undef NAME
        default: *name = NULL; return CUDA_ERROR_INVALID_VALUE;
    }
}

CUresult cuDeviceGetCount(int *n) {
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!n) return CUDA_ERROR_INVALID_VALUE;
    *n = device_count();
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *dev, int ordinal) {
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!dev) return CUDA_ERROR_INVALID_VALUE;
    if (ordinal < 0 || ordinal >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    *dev = ordinal;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
    if (dev < 0 || dev >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "Fake GPU %d", dev);
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice dev) {
    /* The real driver prints an 8-digit domain on some versions and upper-case hex. */
    static const char *ids[] = {"00000000:17:00.0", "0000:B3:00.0", "0001:01:00.0",
                                "0000:02:00.0", "0000:03:00.0", "0000:04:00.0",
                                "0000:05:00.0", "0000:06:00.0"};
    if (dev < 0 || dev >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    if (!id || len < 13) return CUDA_ERROR_INVALID_VALUE;
    snprintf(id, (size_t)len, "%s", ids[dev]);
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    if (dev < 0 || dev >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    *bytes = DEVICE_MEMORY;
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev) {
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (dev < 0 || dev >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    CUresult r = injected("cuDevicePrimaryCtxRetain", CUDA_ERROR_OUT_OF_MEMORY);
    if (r) return r;
    pthread_mutex_lock(&lock);
    contexts[dev].dev = dev;
    contexts[dev].refs++;
    pthread_mutex_unlock(&lock);
    *ctx = &contexts[dev];
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
    if (dev < 0 || dev >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&lock);
    CUresult r = contexts[dev].refs > 0 ? (contexts[dev].refs--, CUDA_SUCCESS)
                                        : CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_unlock(&lock);
    return r;
}

CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
    if (!ctx || ctx->refs <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx_depth >= 16) return CUDA_ERROR_INVALID_VALUE;
    ctx_stack[ctx_depth++] = ctx;
    return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent_v2(CUcontext *ctx) {
    if (!ctx_depth) return CUDA_ERROR_INVALID_CONTEXT;
    CUcontext c = ctx_stack[--ctx_depth];
    if (ctx) *ctx = c;
    return CUDA_SUCCESS;
}

CUresult cuStreamCreate(CUstream *s, unsigned flags) {
    if (!current()) return CUDA_ERROR_INVALID_CONTEXT;
    if (!s || flags > 1) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = injected("cuStreamCreate", CUDA_ERROR_OUT_OF_MEMORY);
    if (r) return r;
    *s = calloc(1, sizeof(**s));
    (*s)->magic = STREAM_MAGIC;
    __atomic_add_fetch(&live_streams, 1, __ATOMIC_SEQ_CST);
    return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream s) {
    if (!s || s->magic != STREAM_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
    return CUDA_SUCCESS;  /* every copy here completes before it returns */
}

CUresult cuStreamDestroy_v2(CUstream s) {
    if (!s || s->magic != STREAM_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
    s->magic = 0;
    free(s);
    __atomic_sub_fetch(&live_streams, 1, __ATOMIC_SEQ_CST);
    return CUDA_SUCCESS;
}

CUresult cuEventCreate(CUevent *e, unsigned flags) {
    if (!current()) return CUDA_ERROR_INVALID_CONTEXT;
    if (!e || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    *e = calloc(1, sizeof(**e));
    (*e)->magic = EVENT_MAGIC;
    __atomic_add_fetch(&live_events, 1, __ATOMIC_SEQ_CST);
    return CUDA_SUCCESS;
}

CUresult cuEventRecord(CUevent e, CUstream s) {
    if (!e || e->magic != EVENT_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
    if (s && s->magic != STREAM_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
    clock_gettime(CLOCK_MONOTONIC, &e->t);
    e->recorded = 1;
    return CUDA_SUCCESS;
}

CUresult cuEventSynchronize(CUevent e) {
    if (!e || e->magic != EVENT_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
    return CUDA_SUCCESS;
}

CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end) {
    if (!ms) return CUDA_ERROR_INVALID_VALUE;
    if (!start || start->magic != EVENT_MAGIC || !end || end->magic != EVENT_MAGIC)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!start->recorded || !end->recorded) return CUDA_ERROR_NOT_READY;
    double d = (double)(end->t.tv_sec - start->t.tv_sec) * 1e3 +
               (double)(end->t.tv_nsec - start->t.tv_nsec) / 1e6;
    *ms = (float)(d > 0 ? d : 1e-6);
    return CUDA_SUCCESS;
}

CUresult cuEventDestroy_v2(CUevent e) {
    if (!e || e->magic != EVENT_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
    e->magic = 0;
    free(e);
    __atomic_sub_fetch(&live_events, 1, __ATOMIC_SEQ_CST);
    return CUDA_SUCCESS;
}

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t size) {
    CUcontext c = current();
    if (!c) return CUDA_ERROR_INVALID_CONTEXT;
    if (!p || size == 0) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = injected("cuMemAlloc_v2", CUDA_ERROR_OUT_OF_MEMORY);
    if (r) return r;
    pthread_mutex_lock(&lock);
    if (device_used[c->dev] + size > DEVICE_MEMORY) {
        pthread_mutex_unlock(&lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    void *m = malloc(size);
    if (!m || !track(dev_allocs, m, size, c->dev)) {
        free(m);
        pthread_mutex_unlock(&lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    device_used[c->dev] += size;
    pthread_mutex_unlock(&lock);
    *p = (CUdeviceptr)(uintptr_t)m;
    return CUDA_SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
    pthread_mutex_lock(&lock);
    struct tracked *t = find(dev_allocs, (void *)(uintptr_t)p);
    if (!t) { pthread_mutex_unlock(&lock); return CUDA_ERROR_INVALID_VALUE; }
    device_used[t->dev] -= t->size;
    free(t->p);
    t->p = NULL;
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}

CUresult cuMemAllocHost_v2(void **p, size_t size) {
    if (!current()) return CUDA_ERROR_INVALID_CONTEXT;
    if (!p || size == 0) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = injected("cuMemAllocHost_v2", CUDA_ERROR_OUT_OF_MEMORY);
    if (r) return r;
    void *m = malloc(size);
    pthread_mutex_lock(&lock);
    int ok = m && track(host_allocs, m, size, -1);
    pthread_mutex_unlock(&lock);
    if (!ok) { free(m); return CUDA_ERROR_OUT_OF_MEMORY; }
    *p = m;
    return CUDA_SUCCESS;
}

CUresult cuMemFreeHost(void *p) {
    pthread_mutex_lock(&lock);
    struct tracked *t = find(host_allocs, p);
    if (!t) { pthread_mutex_unlock(&lock); return CUDA_ERROR_INVALID_VALUE; }
    free(t->p);
    t->p = NULL;
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}

CUresult cuMemHostRegister_v2(void *p, size_t size, unsigned flags) {
    if (!current()) return CUDA_ERROR_INVALID_CONTEXT;
    if (!p || size == 0 || flags > 0xf) return CUDA_ERROR_INVALID_VALUE;
    CUresult r = injected("cuMemHostRegister_v2", CUDA_ERROR_OUT_OF_MEMORY);
    if (r) return r;
    pthread_mutex_lock(&lock);
    if (covering(registrations, p, 1)) {
        pthread_mutex_unlock(&lock);
        return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
    }
    int ok = track(registrations, p, size, -1);
    pthread_mutex_unlock(&lock);
    return ok ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuMemHostUnregister(void *p) {
    pthread_mutex_lock(&lock);
    struct tracked *t = find(registrations, p);
    if (!t) { pthread_mutex_unlock(&lock); return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED; }
    t->p = NULL;
    pthread_mutex_unlock(&lock);
    return CUDA_SUCCESS;
}

static CUresult check_copy(CUdeviceptr d, size_t size, CUstream s) {
    if (!current()) return CUDA_ERROR_INVALID_CONTEXT;
    if (s && s->magic != STREAM_MAGIC) return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&lock);
    int ok = covering(dev_allocs, (void *)(uintptr_t)d, size) != NULL;
    pthread_mutex_unlock(&lock);
    return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

#ifndef FAKE_OMIT_HTOD
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t size, CUstream s) {
    CUresult r = check_copy(dst, size, s);
    if (r) return r;
    r = injected("cuMemcpyHtoDAsync_v2", CUDA_ERROR_ILLEGAL_ADDRESS);
    if (r) return r;
    memcpy((void *)(uintptr_t)dst, src, size);
    return CUDA_SUCCESS;
}
#endif

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t size, CUstream s) {
    CUresult r = check_copy(src, size, s);
    if (r) return r;
    r = injected("cuMemcpyDtoHAsync_v2", CUDA_ERROR_ILLEGAL_ADDRESS);
    if (r) return r;
    memcpy(dst, (const void *)(uintptr_t)src, size);
    return CUDA_SUCCESS;
}
