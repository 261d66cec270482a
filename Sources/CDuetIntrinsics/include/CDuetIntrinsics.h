#ifndef CDUET_INTRINSICS_H
#define CDUET_INTRINSICS_H

#include <sched.h>

/// A read prefetch into all cache levels. Swift has no spelling for it; being static inline,
/// it compiles into the caller as one instruction.
static inline __attribute__((always_inline)) void duet_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// A one-byte test-and-test-and-set spinlock: one per HNSW node while building on several
/// threads, where a critical section is a link-list copy and a mutex per node would cost 40 bytes.
static inline __attribute__((always_inline)) void duet_spin_lock(unsigned char *lock) {
    unsigned spins = 0;
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(lock, __ATOMIC_RELAXED)) {
            // The holder may have been preempted: give the core away rather than spin on.
            if (++spins % 64 == 0) sched_yield();
#if defined(__x86_64__)
            __builtin_ia32_pause();
#elif defined(__aarch64__)
            __asm__ __volatile__("yield");
#endif
        }
    }
}

static inline __attribute__((always_inline)) void duet_spin_unlock(unsigned char *lock) {
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

/// One state byte per chunk of a file verified on first touch (see VerifiedPages): a reader that
/// sees "ready" with acquire ordering also sees the bytes the loader copied in before its release.
static inline __attribute__((always_inline)) unsigned char duet_load_acquire_u8(const unsigned char *state) {
    return __atomic_load_n(state, __ATOMIC_ACQUIRE);
}

static inline __attribute__((always_inline)) void duet_store_release_u8(unsigned char *state, unsigned char value) {
    __atomic_store_n(state, value, __ATOMIC_RELEASE);
}

/// Sets *state to `desired` if it holds `expected`; true when it did.
static inline __attribute__((always_inline)) int duet_compare_exchange_u8(unsigned char *state, unsigned char expected, unsigned char desired) {
    return __atomic_compare_exchange_n(state, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/// Duet's dense float32 kernels, in one variant per instruction set (AVX-512, AVX2 + FMA + F16C,
/// the baseline of the architecture). The variant is chosen once per process from what the CPU
/// reports, as faiss and hnswlib do, so one binary runs on any x86-64 or arm64 machine.
/// DUET_KERNELS=baseline|avx2|avx512 asks for a variant (one the CPU lacks is not used).
struct duet_kernel_table {
    const char *name;
    float (*dot)(const float *a, const float *b, long n);
    void (*axpy)(float alpha, const float *x, float *y, long n);
    void (*matvec)(const float *m, const float *v, float *out, long n);
    void (*score_rows)(const float *rows, long row_count, long d, const float *q, float *scores);
    void (*score_gather)(const float *q, const unsigned char *base, long stride, const unsigned *ids, long count, long d,
                         float *out);
    void (*block_scores16)(const float *block, const float *q, long d, float *out);
    void (*score_rows_f16)(const unsigned short *rows, long row_count, long d, const float *q, float *scores);
    void (*implicit_als_step)(float *x, const float *gram, const float *y, const unsigned *items, const float *confidences,
                              long count, long d, long steps, float *r, float *p, float *ap);
    /// 4-bit product-quantization scan of `blocks` blocks of 32 rows (see kernels.c for the layout):
    /// writes each row below `limit` whose 16-bit score sum exceeds `threshold`; returns how many.
    long (*pq4_scan)(const unsigned char *codes, long blocks, long pairs, const unsigned char *luts, int threshold, long limit,
                     unsigned *positions, unsigned short *sums);
    /// The per-query tables `pq4_scan` reads (see kernels_impl.h); returns their scale.
    float (*pq4_tables)(const float *q, const float *columns, long subspaces, long width, float ceiling, float *rows,
                        unsigned char *tables, float *bias);
};

/// Moves the `keep` highest of `count` scores (with their ids) to the front, in no particular
/// order, and returns the lowest of them. Needs 1 ≤ keep < count. Quickselect with a branch-free
/// partition: approximate scores come in no useful order, so a partition's branches would be
/// mispredicted about half the time.
float duet_select_highest(float *scores, unsigned *ids, long count, long keep);

/// What the int8 screening of the length-ordered scan reads (see NormOrderedScan). Rows are in
/// order of decreasing length, padded to whole blocks of 16. Block b holds `groups` runs of 64
/// bytes; run g holds, for each of the 16 rows, its values 4g..4g+3 as x8 + 128, where
/// x ≈ scales[row]·x8 with x8 in [-127, 127] and ‖x − scales[row]·x8‖ ≤ errors[row].
struct duet_i8_scan {
    const unsigned char *blocks;
    const float *scales;
    const float *errors;
    /// ≥ ‖x‖ for each row, not increasing: the length stop reads it.
    const float *bounds;
    long groups;
    long count;
};

/// One query for `duet_i8_scan`: q ≈ scale·q8, q8 in [-127, 127], padded with zeros to groups·4.
struct duet_i8_query {
    const signed char *q8;
    float scale;
    /// 128·Σ q8, which the stored offset of 128 adds to every row's integer sum.
    int correction;
    /// A row's screened score s̃ is raised by error_weight·errors[row] + length_weight·bounds[row]
    /// + relative_weight·|s̃|: then no computed exact score can lie above it.
    float error_weight;
    float length_weight;
    float relative_weight;
    float norm;
};

/// Where an int8 screening stopped (its *outcome).
enum {
    /// The block at the returned position holds a row whose raised score reaches the threshold.
    DUET_I8_CANDIDATES = 0,
    /// The rows' length bound proves the list.
    DUET_I8_PROVEN = 1,
    DUET_I8_ROW_LIMIT = 2,
    DUET_I8_END = 4,
};

/// From row `position` (a multiple of 16), block by block: stops at the first block holding a row
/// whose raised score is not below `threshold` (its 16 raised scores go to `upper`, CANDIDATES),
/// when `heap_full` and norm·bounds[position] < threshold proves the list (PROVEN), at `row_limit`
/// (ROW_LIMIT), or at the end (END). Returns that position. Integer sums are exact, so every variant
/// screens alike.
typedef long (*duet_i8_screen_fn)(const struct duet_i8_scan *scan, const struct duet_i8_query *query, long position, long row_limit,
                                  int heap_full, float threshold, float *upper, int *outcome);
/// What the exact top k of the length-ordered scan reads besides the int8 screening: where each
/// screened position's float32 row is, and which row ids are excluded.
struct duet_i8_rescore {
    const float *query;
    /// Row id at each scan position.
    const int *order;
    /// The first `prefix_rows` rows in scan order, row-major; later rows are read from `rows` by id.
    const float *prefix;
    long prefix_rows;
    const float *rows;
    long dimension;
    /// Bit id of word id / 64 set: that row is skipped. Ids past the last word are not excluded.
    const unsigned long long *excluded;
    long excluded_words;
    /// The dot product every other scan scores rows with, so the answer is theirs bit for bit.
    float (*dot)(const float *a, const float *b, long n);
};

/// The exact top k by inner product (ties to the smaller id), best first into `scores` and `ids`
/// (k entries each): screens with `screen`, scores each candidate that is not excluded with
/// `rescore->dot`. Returns how many were found, or -1 when proving the list needs more than
/// `row_limit` rows. One call per query: the candidate loop and its heap stay in C.
long duet_i8_top_k(const struct duet_i8_scan *scan, const struct duet_i8_query *query, const struct duet_i8_rescore *rescore,
                   duet_i8_screen_fn screen, long k, long row_limit, float *scores, int *ids);

/// The widest variant this CPU has (AVX-512 VNNI, AVX2, portable) for NULL, or a named one ("vnni",
/// "avx2", "portable"); NULL when this CPU or build lacks it.
duet_i8_screen_fn duet_i8_screen_variant(const char *name);

extern const struct duet_kernel_table *duet_kernels_active;
/// Chooses the variant (once) and returns it.
const struct duet_kernel_table *duet_kernels_load(void);
/// A named variant, or NULL when this CPU or build lacks it; the active one is not changed (for tests).
const struct duet_kernel_table *duet_kernels_variant(const char *name);

static inline __attribute__((always_inline)) const struct duet_kernel_table *duet_kernels(void) {
    const struct duet_kernel_table *table = __atomic_load_n(&duet_kernels_active, __ATOMIC_ACQUIRE);
    return table ? table : duet_kernels_load();
}

#endif
