// The 16-lane helpers are always inlined into their variant, so no vector crosses a call boundary.
#pragma clang diagnostic ignored "-Wpsabi"
#include "CDuetIntrinsics.h"
#include <stdlib.h>
#include <string.h>

// IEEE binary16 bits to float, exactly, without F16C.
static inline __attribute__((always_inline)) float duet_half_to_float(unsigned short h) {
    unsigned sign = (unsigned)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, bits;
    if (exponent == 0) {
        float value = (float)mantissa * 0x1p-24f;
        return sign ? -value : value;
    }
    bits = exponent == 31 ? (sign | 0x7f800000u | (mantissa << 13)) : (sign | ((exponent + 112) << 23) | (mantissa << 13));
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

#define FUSED(a, b, c) __builtin_elementwise_fma((a), (b), (c))

#if defined(__x86_64__)

#define WIDEN16_CONVERT                                                                                         \
    static inline __attribute__((always_inline)) KERNEL_TARGET KERNEL(v16) KERNEL(widen16)(const unsigned short *p) { \
        typedef _Float16 h16 __attribute__((vector_size(32), aligned(2)));                                       \
        h16 half;                                                                                               \
        memcpy(&half, p, sizeof half);                                                                          \
        return __builtin_convertvector(half, KERNEL(v16));                                                      \
    }

#define KERNEL(name) name##_avx512
#define KERNEL_NAME "avx512"
#define KERNEL_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")))
#define MULADD FUSED
typedef float KERNEL(v16) __attribute__((vector_size(64), aligned(4)));
WIDEN16_CONVERT

#include "kernels_impl.h"
#undef KERNEL
#undef KERNEL_NAME
#undef KERNEL_TARGET
#undef MULADD

#define KERNEL(name) name##_avx2
#define KERNEL_NAME "avx2"
#define KERNEL_TARGET __attribute__((target("avx2,fma,f16c")))
#define MULADD FUSED
typedef float KERNEL(v16) __attribute__((vector_size(64), aligned(4)));
WIDEN16_CONVERT
#include "kernels_impl.h"
#undef KERNEL
#undef KERNEL_NAME
#undef KERNEL_TARGET
#undef MULADD

// The x86-64 baseline (SSE2) has no FMA: an unfused multiply and add, and F16 by bits.
#define KERNEL(name) name##_baseline
#define KERNEL_NAME "baseline"
#define KERNEL_TARGET
#define MULADD(a, b, c) ((a) * (b) + (c))
typedef float KERNEL(v16) __attribute__((vector_size(64), aligned(4)));
static inline __attribute__((always_inline)) KERNEL(v16) KERNEL(widen16)(const unsigned short *p) {
    KERNEL(v16) wide;
    for (int lane = 0; lane < 16; lane++) wide[lane] = duet_half_to_float(p[lane]);
    return wide;
}
#include "kernels_impl.h"

static const struct duet_kernel_table *duet_kernels_choose(const char *wanted) {
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    if (wanted && strcmp(wanted, "baseline") == 0) return &table_baseline;
    if (wanted && strcmp(wanted, "avx2") == 0) return avx2 ? &table_avx2 : NULL;
    if (wanted && strcmp(wanted, "avx512") == 0) return avx512 ? &table_avx512 : NULL;
    if (wanted) return NULL;
    return avx512 ? &table_avx512 : avx2 ? &table_avx2 : &table_baseline;
}

#else

// arm64 (NEON, with FMA, and half conversion in hardware) and any other architecture: one variant.
#define KERNEL(name) name##_baseline
#define KERNEL_NAME "baseline"
#define KERNEL_TARGET
#if defined(__aarch64__)
#define MULADD FUSED
#else
#define MULADD(a, b, c) ((a) * (b) + (c))
#endif
typedef float KERNEL(v16) __attribute__((vector_size(64), aligned(4)));
static inline __attribute__((always_inline)) KERNEL(v16) KERNEL(widen16)(const unsigned short *p) {
    KERNEL(v16) wide;
    for (int lane = 0; lane < 16; lane++) wide[lane] = duet_half_to_float(p[lane]);
    return wide;
}
#include "kernels_impl.h"

static const struct duet_kernel_table *duet_kernels_choose(const char *wanted) {
    if (wanted && strcmp(wanted, "baseline") != 0) return NULL;
    return &table_baseline;
}

#endif

const struct duet_kernel_table *duet_kernels_active;

const struct duet_kernel_table *duet_kernels_variant(const char *name) { return duet_kernels_choose(name); }

const struct duet_kernel_table *duet_kernels_load(void) {
    const char *wanted = getenv("DUET_KERNELS");
    const struct duet_kernel_table *table = wanted && *wanted ? duet_kernels_choose(wanted) : NULL;
    if (!table) table = duet_kernels_choose(NULL);
    __atomic_store_n(&duet_kernels_active, table, __ATOMIC_RELEASE);
    return table;
}

__attribute__((constructor)) static void duet_kernels_at_load(void) { duet_kernels_load(); }
