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

static inline __attribute__((always_inline)) void duet_swap_entries(float *scores, unsigned *ids, long a, long b) {
    float score = scores[a];
    unsigned id = ids[a];
    scores[a] = scores[b];
    ids[a] = ids[b];
    scores[b] = score;
    ids[b] = id;
}

float duet_select_highest(float *scores, unsigned *ids, long count, long keep) {
    long low = 0, high = count - 1, target = keep - 1;
    while (low < high) {
        // Median of three to the end as the pivot.
        long middle = low + (high - low) / 2;
        if (scores[middle] > scores[low]) duet_swap_entries(scores, ids, middle, low);
        if (scores[high] > scores[low]) duet_swap_entries(scores, ids, high, low);
        if (scores[middle] > scores[high]) duet_swap_entries(scores, ids, middle, high);
        float pivot = scores[high];
        // [low, store) holds scores above the pivot, [store, i) the rest; each step rotates entry i
        // into place without a branch.
        long store = low;
        for (long i = low; i < high; i++) {
            float score = scores[i];
            duet_swap_entries(scores, ids, store, i);
            store += score > pivot;
        }
        duet_swap_entries(scores, ids, store, high);
        if (store == target) break;
        if (target < store) high = store - 1; else low = store + 1;
    }
    float lowest = scores[0];
    for (long i = 1; i < keep; i++) lowest = scores[i] < lowest ? scores[i] : lowest;
    return lowest;
}

// 4-bit product-quantization scan ("fast scan", André, Kermarrec & Le Scouarnec, VLDB 2015; as in
// faiss and ScaNN): 32 rows per block; for each pair of subspaces p, 32 bytes whose low nibble is
// row r's code in subspace 2p and high nibble its code in 2p + 1. luts holds one 32-byte table per
// subspace (16 entries, repeated for each 128-bit lane, so one byte shuffle looks up 32 rows).
// Rows whose 16-bit sum exceeds `threshold` and whose position is below `limit` are written out.

// The same arithmetic, one row at a time: the reference for the SIMD variant and the fallback.
static long duet_pq4_scan_portable(const unsigned char *codes, long blocks, long pairs, const unsigned char *luts, int threshold,
                                   long limit, unsigned *positions, unsigned short *sums) {
    long hits = 0;
    for (long block = 0; block < blocks; block++) {
        const unsigned char *base = codes + block * pairs * 32;
        for (long row = 0; row < 32 && block * 32 + row < limit; row++) {
            int sum = 0;
            for (long pair = 0; pair < pairs; pair++) {
                unsigned char byte = base[pair * 32 + row];
                sum += luts[(2 * pair) * 32 + (byte & 15)] + luts[(2 * pair + 1) * 32 + (byte >> 4)];
            }
            if (sum > threshold) {
                positions[hits] = (unsigned)(block * 32 + row);
                sums[hits] = (unsigned short)sum;
                hits++;
            }
        }
    }
    return hits;
}

#if defined(__x86_64__)
typedef char duet_v32qi __attribute__((vector_size(32)));
typedef unsigned char duet_u8x32 __attribute__((vector_size(32)));
typedef unsigned short duet_u16x16 __attribute__((vector_size(32)));
typedef short duet_i16x16 __attribute__((vector_size(32)));

// Sums stay in 16-bit lanes: the even rows of a block in the low byte of each lane's lookup, the odd
// rows in the high byte, so no widening shuffle is needed.
__attribute__((target("avx2"))) static long duet_pq4_scan_avx2(const unsigned char *codes, long blocks, long pairs,
                                                                const unsigned char *luts, int threshold, long limit,
                                                                unsigned *positions, unsigned short *sums) {
    const duet_u8x32 nibble = (duet_u8x32){0} + 15;
    const duet_u16x16 lowByte = (duet_u16x16){0} + 0xff;
    const duet_i16x16 bar = (duet_i16x16){0} + (short)(threshold < -1 ? -1 : threshold > 32767 ? 32767 : threshold);
    long hits = 0;
    for (long block = 0; block < blocks; block++) {
        const unsigned char *base = codes + block * pairs * 32;
        duet_u16x16 even = {0}, odd = {0};
        for (long pair = 0; pair < pairs; pair++) {
            duet_u8x32 packed, first, second;
            memcpy(&packed, base + pair * 32, 32);
            memcpy(&first, luts + pair * 64, 32);
            memcpy(&second, luts + pair * 64 + 32, 32);
            duet_u8x32 low = packed & nibble;
            duet_u8x32 high = (duet_u8x32)((duet_u16x16)packed >> 4) & nibble;
            duet_u16x16 a = (duet_u16x16)__builtin_ia32_pshufb256((duet_v32qi)first, (duet_v32qi)low);
            duet_u16x16 b = (duet_u16x16)__builtin_ia32_pshufb256((duet_v32qi)second, (duet_v32qi)high);
            even += (a & lowByte) + (b & lowByte);
            odd += (a >> 8) + (b >> 8);
        }
        unsigned evenMask = (unsigned)__builtin_ia32_pmovmskb256((duet_v32qi)((duet_i16x16)even > bar));
        unsigned oddMask = (unsigned)__builtin_ia32_pmovmskb256((duet_v32qi)((duet_i16x16)odd > bar));
        // Bit r of `mask` is row r: even rows from the even lanes, odd rows from the odd lanes.
        unsigned mask = (evenMask & 0x55555555u) | ((oddMask & 0x55555555u) << 1);
        long valid = limit - block * 32;
        if (valid < 32) mask &= valid <= 0 ? 0u : (1u << valid) - 1u;
        while (mask) {
            int row = __builtin_ctz(mask);
            mask &= mask - 1;
            positions[hits] = (unsigned)(block * 32 + row);
            sums[hits] = row & 1 ? odd[row >> 1] : even[row >> 1];
            hits++;
        }
    }
    return hits;
}
#endif


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
#define PQ4_SCAN duet_pq4_scan_avx2
#define MULADD FUSED
typedef float KERNEL(v16) __attribute__((vector_size(64), aligned(4)));
WIDEN16_CONVERT

#include "kernels_impl.h"
#undef KERNEL
#undef KERNEL_NAME
#undef KERNEL_TARGET
#undef MULADD
#undef PQ4_SCAN

#define KERNEL(name) name##_avx2
#define KERNEL_NAME "avx2"
#define KERNEL_TARGET __attribute__((target("avx2,fma,f16c")))
#define PQ4_SCAN duet_pq4_scan_avx2
#define MULADD FUSED
typedef float KERNEL(v16) __attribute__((vector_size(64), aligned(4)));
WIDEN16_CONVERT
#include "kernels_impl.h"
#undef KERNEL
#undef KERNEL_NAME
#undef KERNEL_TARGET
#undef MULADD
#undef PQ4_SCAN

// The x86-64 baseline (SSE2) has no FMA: an unfused multiply and add, and F16 by bits.
#define KERNEL(name) name##_baseline
#define KERNEL_NAME "baseline"
#define KERNEL_TARGET
#define PQ4_SCAN duet_pq4_scan_portable
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
#define PQ4_SCAN duet_pq4_scan_portable
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
