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

// The int8 screening of the length-ordered scan (struct duet_i8_scan in the header). The float
// steps after the exact integer sums are written out in one order with contraction off, so every
// variant raises a row's score to the same bits.

// Raises the 16 screened scores of the block at `position` into `upper`; true when one is not below
// `threshold` (NaN included: a row the bound cannot rule out is a candidate).
#define DUET_I8_RAISE(NAME, TARGET)                                                                                         \
    static inline __attribute__((always_inline)) TARGET int NAME(const struct duet_i8_scan *scan,                           \
                                                                 const struct duet_i8_query *query, long position,          \
                                                                 const int *sums, float threshold, float *upper) {          \
        _Pragma("clang fp contract(off)")                                                                                    \
        int hit = 0;                                                                                                         \
        for (int lane = 0; lane < 16; lane++) {                                                                              \
            long row = position + lane;                                                                                      \
            float screened = (float)(sums[lane] - query->correction) * (scan->scales[row] * query->scale);                  \
            float magnitude = screened < 0 ? -screened : screened;                                                          \
            float margin = (query->error_weight * scan->errors[row] + query->length_weight * scan->bounds[row]) +           \
                           query->relative_weight * magnitude;                                                              \
            upper[lane] = screened + margin;                                                                                 \
            hit |= !(upper[lane] < threshold);                                                                               \
        }                                                                                                                    \
        return hit;                                                                                                          \
    }

DUET_I8_RAISE(duet_i8_raise_portable, )

// The reference: each row's sum value by value.
static long duet_i8_screen_portable(const struct duet_i8_scan *scan, const struct duet_i8_query *query, long position, long row_limit,
                                    int heap_full, float threshold, float *upper, int *outcome) {
    for (; position < scan->count; position += 16) {
        if (heap_full && query->norm * scan->bounds[position] < threshold) { *outcome = DUET_I8_PROVEN; return position; }
        if (position >= row_limit) { *outcome = DUET_I8_ROW_LIMIT; return position; }
        const unsigned char *block = scan->blocks + (position / 16) * scan->groups * 64;
        int sums[16] = {0};
        for (long g = 0; g < scan->groups; g++) {
            const unsigned char *run = block + g * 64;
            const signed char *q = query->q8 + g * 4;
            for (int lane = 0; lane < 16; lane++)
                for (int t = 0; t < 4; t++) sums[lane] += run[lane * 4 + t] * q[t];
        }
        if (duet_i8_raise_portable(scan, query, position, sums, threshold, upper)) { *outcome = DUET_I8_CANDIDATES; return position; }
    }
    *outcome = DUET_I8_END;
    return position;
}

#if defined(__x86_64__)
#include <immintrin.h>

DUET_I8_RAISE(duet_i8_raise_avx2, __attribute__((target("avx2"))))

// Without VNNI: four rows' runs widened to 16 bits and multiplied in pairs (vpmaddwd), so each
// 32-bit lane holds half a row's run; the halves are added once per block.
__attribute__((target("avx2"))) static long duet_i8_screen_avx2(const struct duet_i8_scan *scan, const struct duet_i8_query *query,
                                                                long position, long row_limit, int heap_full, float threshold,
                                                                float *upper, int *outcome) {
    const long groups = scan->groups;
    // The query's vectors live on the stack: past 1,024 dimensions the reference takes over (same bits).
    if (groups > 256) return duet_i8_screen_portable(scan, query, position, row_limit, heap_full, threshold, upper, outcome);
    // Each group's four query values, widened and repeated for four rows: built once per call.
    __m256i values[groups];
    for (long g = 0; g < groups; g++) {
        const signed char *q = query->q8 + g * 4;
        values[g] = _mm256_setr_epi16(q[0], q[1], q[2], q[3], q[0], q[1], q[2], q[3], q[0], q[1], q[2], q[3], q[0], q[1], q[2], q[3]);
    }
    for (; position < scan->count; position += 16) {
        if (heap_full && query->norm * scan->bounds[position] < threshold) { *outcome = DUET_I8_PROVEN; return position; }
        if (position >= row_limit) { *outcome = DUET_I8_ROW_LIMIT; return position; }
        const unsigned char *block = scan->blocks + (position / 16) * groups * 64;
        __m256i quarter[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (long g = 0; g < groups; g++) {
            for (int part = 0; part < 4; part++) {
                __m256i wide = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(block + g * 64 + part * 16)));
                quarter[part] = _mm256_add_epi32(quarter[part], _mm256_madd_epi16(wide, values[g]));
            }
        }
        // hadd works within 128-bit halves: rows 0, 1, 4, 5 | 2, 3, 6, 7; the permute restores the order.
        const __m256i restore = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
        int sums[16];
        _mm256_storeu_si256((__m256i *)sums, _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(quarter[0], quarter[1]), restore));
        _mm256_storeu_si256((__m256i *)(sums + 8), _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(quarter[2], quarter[3]), restore));
        if (duet_i8_raise_avx2(scan, query, position, sums, threshold, upper)) { *outcome = DUET_I8_CANDIDATES; return position; }
    }
    *outcome = DUET_I8_END;
    return position;
}

// Sixteen rows' 4-value runs against the query's 4 values in one instruction (vpdpbusd: unsigned
// bytes of the rows times signed bytes of the query, summed into 32-bit lanes, exactly).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) static long duet_i8_screen_vnni(
    const struct duet_i8_scan *scan, const struct duet_i8_query *query, long position, long row_limit, int heap_full, float threshold,
    float *upper, int *outcome) {
#pragma clang fp contract(off)
    const long groups = scan->groups;
    const __m512 bar = _mm512_set1_ps(threshold), queryScale = _mm512_set1_ps(query->scale);
    const __m512 errorWeight = _mm512_set1_ps(query->error_weight), lengthWeight = _mm512_set1_ps(query->length_weight);
    const __m512 relativeWeight = _mm512_set1_ps(query->relative_weight);
    const __m512i correction = _mm512_set1_epi32(query->correction);
    const __m512i signBit = _mm512_set1_epi32(0x7fffffff);
    for (; position < scan->count; position += 16) {
        if (heap_full && query->norm * scan->bounds[position] < threshold) { *outcome = DUET_I8_PROVEN; return position; }
        if (position >= row_limit) { *outcome = DUET_I8_ROW_LIMIT; return position; }
        const unsigned char *block = scan->blocks + (position / 16) * groups * 64;
        // Four accumulators: each vpdpbusd waits on the one before it in its chain.
        __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512(), c = _mm512_setzero_si512(), e = _mm512_setzero_si512();
        long g = 0;
        for (; g + 4 <= groups; g += 4) {
            int words[4];
            memcpy(words, query->q8 + g * 4, sizeof words);
            a = _mm512_dpbusd_epi32(a, _mm512_loadu_si512(block + g * 64), _mm512_set1_epi32(words[0]));
            b = _mm512_dpbusd_epi32(b, _mm512_loadu_si512(block + (g + 1) * 64), _mm512_set1_epi32(words[1]));
            c = _mm512_dpbusd_epi32(c, _mm512_loadu_si512(block + (g + 2) * 64), _mm512_set1_epi32(words[2]));
            e = _mm512_dpbusd_epi32(e, _mm512_loadu_si512(block + (g + 3) * 64), _mm512_set1_epi32(words[3]));
        }
        for (; g < groups; g++) {
            int word;
            memcpy(&word, query->q8 + g * 4, sizeof word);
            a = _mm512_dpbusd_epi32(a, _mm512_loadu_si512(block + g * 64), _mm512_set1_epi32(word));
        }
        __m512i sums = _mm512_sub_epi32(_mm512_add_epi32(_mm512_add_epi32(a, b), _mm512_add_epi32(c, e)), correction);
        __m512 screened = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(_mm512_loadu_ps(scan->scales + position), queryScale));
        __m512 magnitude = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(screened), signBit));
        __m512 margin = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(errorWeight, _mm512_loadu_ps(scan->errors + position)),
                                                    _mm512_mul_ps(lengthWeight, _mm512_loadu_ps(scan->bounds + position))),
                                      _mm512_mul_ps(relativeWeight, magnitude));
        __m512 raised = _mm512_add_ps(screened, margin);
        // Not below the bar, NaN included: a row the bound cannot rule out is a candidate.
        if (_mm512_cmp_ps_mask(raised, bar, _CMP_NLT_UQ)) {
            _mm512_storeu_ps(upper, raised);
            *outcome = DUET_I8_CANDIDATES;
            return position;
        }
    }
    *outcome = DUET_I8_END;
    return position;
}
#endif

// TopK's heap (DuetKernels): the worst kept pair at the root, ties to the smaller id.
static inline int duet_heap_worse(float s1, int i1, float s2, int i2) { return s1 < s2 || (s1 == s2 && i1 > i2); }

static inline void duet_heap_sift_down(float *scores, int *ids, long parent, long count) {
    for (;;) {
        long left = 2 * parent + 1, right = left + 1, worst = parent;
        if (left < count && duet_heap_worse(scores[left], ids[left], scores[worst], ids[worst])) worst = left;
        if (right < count && duet_heap_worse(scores[right], ids[right], scores[worst], ids[worst])) worst = right;
        if (worst == parent) return;
        float score = scores[parent];
        int id = ids[parent];
        scores[parent] = scores[worst], ids[parent] = ids[worst];
        scores[worst] = score, ids[worst] = id;
        parent = worst;
    }
}

static inline void duet_heap_push(float *scores, int *ids, long *count, long k, float score, int id) {
    if (score != score) return;
    if (*count < k) {
        long child = (*count)++;
        scores[child] = score, ids[child] = id;
        while (child > 0) {
            long parent = (child - 1) / 2;
            if (!duet_heap_worse(scores[child], ids[child], scores[parent], ids[parent])) return;
            float swapped = scores[parent];
            int swappedID = ids[parent];
            scores[parent] = scores[child], ids[parent] = ids[child];
            scores[child] = swapped, ids[child] = swappedID;
            child = parent;
        }
        return;
    }
    if (!duet_heap_worse(scores[0], ids[0], score, id)) return;
    scores[0] = score, ids[0] = id;
    duet_heap_sift_down(scores, ids, 0, *count);
}

long duet_i8_top_k(const struct duet_i8_scan *scan, const struct duet_i8_query *query, const struct duet_i8_rescore *rescore,
                   duet_i8_screen_fn screen, long k, long row_limit, float *scores, int *ids) {
    if (k <= 0) return 0;
    const long d = rescore->dimension;
    long count = 0, position = 0;
    float upper[16];
    while (position < scan->count) {
        int outcome = DUET_I8_CANDIDATES;
        position = screen(scan, query, position, row_limit, count == k, count < k ? -__builtin_inff() : scores[0], upper, &outcome);
        if (outcome == DUET_I8_ROW_LIMIT) return -1;
        if (outcome != DUET_I8_CANDIDATES) break;
        long lanes = scan->count - position < 16 ? scan->count - position : 16;
        for (long lane = 0; lane < lanes; lane++) {
            // The bar rises as candidates enter, within the block too.
            if (upper[lane] < (count < k ? -__builtin_inff() : scores[0])) continue;
            long row = position + lane;
            int id = rescore->order[row];
            unsigned long word = (unsigned long)id / 64;
            if (word < (unsigned long)rescore->excluded_words && (rescore->excluded[word] >> (id % 64)) & 1) continue;
            const float *start = row < rescore->prefix_rows ? rescore->prefix + row * d : rescore->rows + (long)id * d;
            duet_heap_push(scores, ids, &count, k, rescore->dot(start, rescore->query, d), id);
        }
        position += 16;
    }
    // Best first: the worst kept goes to the end, then the worst of the rest before it, and so on.
    for (long end = count - 1; end > 0; end--) {
        float score = scores[0];
        int id = ids[0];
        scores[0] = scores[end], ids[0] = ids[end];
        scores[end] = score, ids[end] = id;
        duet_heap_sift_down(scores, ids, 0, end);
    }
    return count;
}

duet_i8_screen_fn duet_i8_screen_variant(const char *name) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2");
    int vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni");
    if (!name) return vnni ? duet_i8_screen_vnni : avx2 ? duet_i8_screen_avx2 : duet_i8_screen_portable;
    if (strcmp(name, "vnni") == 0) return vnni ? duet_i8_screen_vnni : NULL;
    if (strcmp(name, "avx2") == 0) return avx2 ? duet_i8_screen_avx2 : NULL;
#else
    if (!name) return duet_i8_screen_portable;
#endif
    if (strcmp(name, "portable") == 0) return duet_i8_screen_portable;
    return NULL;
}
