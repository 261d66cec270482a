// One instruction-set variant of Duet's dense kernels. kernels.c includes this file once per
// variant with KERNEL(name) (the variant's suffix), KERNEL_TARGET (a target attribute) and
// MULADD(a, b, c) (a·b + c, fused where the variant has FMA) defined.
//
// Sixteen float lanes at a time through the compiler's vector extension: one zmm register with
// AVX-512, two ymm with AVX2, four xmm or NEON registers on the baseline. Every kernel that scores
// a row uses KERNEL(dot_inline), so a row scores bit for bit the same through every entry point.

// KERNEL(v16) and KERNEL(widen16) come from the includer.

static inline __attribute__((always_inline)) KERNEL_TARGET KERNEL(v16) KERNEL(load)(const float *p) {
    KERNEL(v16) v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) KERNEL_TARGET void KERNEL(store)(float *p, KERNEL(v16) v) {
    __builtin_memcpy(p, &v, sizeof v);
}

static inline __attribute__((always_inline)) KERNEL_TARGET KERNEL(v16) KERNEL(splat)(float x) {
    KERNEL(v16) v = {x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
    return v;
}

// The lanes' sum as a tree of halves: four vector adds deep.
static inline __attribute__((always_inline)) KERNEL_TARGET float KERNEL(hsum)(KERNEL(v16) v) {
    typedef float v8 __attribute__((vector_size(32), aligned(4)));
    typedef float v4 __attribute__((vector_size(16), aligned(4)));
    typedef float v2 __attribute__((vector_size(8), aligned(4)));
    v8 eight = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 four = __builtin_shufflevector(eight, eight, 0, 1, 2, 3) + __builtin_shufflevector(eight, eight, 4, 5, 6, 7);
    v2 two = __builtin_shufflevector(four, four, 0, 1) + __builtin_shufflevector(four, four, 2, 3);
    return two[0] + two[1];
}

// The lanes' least and greatest, as trees of halves (__builtin_reduce_min/max go lane by lane).
#define DUET_HALVES(v, op)                                                                                            \
    typedef float v8 __attribute__((vector_size(32), aligned(4)));                                                    \
    typedef float v4 __attribute__((vector_size(16), aligned(4)));                                                    \
    typedef float v2 __attribute__((vector_size(8), aligned(4)));                                                     \
    v8 eight = op(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15)); \
    v4 four = op(__builtin_shufflevector(eight, eight, 0, 1, 2, 3), __builtin_shufflevector(eight, eight, 4, 5, 6, 7));  \
    v2 two = op(__builtin_shufflevector(four, four, 0, 1), __builtin_shufflevector(four, four, 2, 3));

static inline __attribute__((always_inline)) KERNEL_TARGET float KERNEL(hmin)(KERNEL(v16) v) {
    DUET_HALVES(v, __builtin_elementwise_min)
    return two[0] < two[1] ? two[0] : two[1];
}

static inline __attribute__((always_inline)) KERNEL_TARGET float KERNEL(hmax)(KERNEL(v16) v) {
    DUET_HALVES(v, __builtin_elementwise_max)
    return two[0] > two[1] ? two[0] : two[1];
}
#undef DUET_HALVES

static inline __attribute__((always_inline)) KERNEL_TARGET float KERNEL(dot_inline)(const float *a, const float *b, long n) {
    KERNEL(v16) first = KERNEL(splat)(0), second = KERNEL(splat)(0);
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        first = MULADD(KERNEL(load)(a + i), KERNEL(load)(b + i), first);
        second = MULADD(KERNEL(load)(a + i + 16), KERNEL(load)(b + i + 16), second);
    }
    if (i + 16 <= n) {
        first = MULADD(KERNEL(load)(a + i), KERNEL(load)(b + i), first);
        i += 16;
    }
    float total = KERNEL(hsum)(first + second);
    for (; i < n; i++) total = MULADD(a[i], b[i], total);
    return total;
}

static KERNEL_TARGET float KERNEL(dot)(const float *a, const float *b, long n) {
    return KERNEL(dot_inline)(a, b, n);
}

static inline __attribute__((always_inline)) KERNEL_TARGET void KERNEL(axpy_inline)(float alpha, const float *x, float *y, long n) {
    KERNEL(v16) scale = KERNEL(splat)(alpha);
    long i = 0;
    for (; i + 16 <= n; i += 16) KERNEL(store)(y + i, MULADD(scale, KERNEL(load)(x + i), KERNEL(load)(y + i)));
    for (; i < n; i++) y[i] = MULADD(alpha, x[i], y[i]);
}

static KERNEL_TARGET void KERNEL(axpy)(float alpha, const float *x, float *y, long n) {
    KERNEL(axpy_inline)(alpha, x, y, n);
}

// out = A·v for a symmetric n×n A, as Σₖ v[k]·A[k, :] a strip at a time: no horizontal sums.
static inline __attribute__((always_inline)) KERNEL_TARGET void KERNEL(matvec_inline)(const float *m, const float *v, float *out, long n) {
    long strip = 0;
    for (; strip + 32 <= n; strip += 32) {
        KERNEL(v16) first = KERNEL(splat)(0), second = KERNEL(splat)(0);
        for (long k = 0; k < n; k++) {
            KERNEL(v16) scale = KERNEL(splat)(v[k]);
            const float *row = m + k * n + strip;
            first = MULADD(scale, KERNEL(load)(row), first);
            second = MULADD(scale, KERNEL(load)(row + 16), second);
        }
        KERNEL(store)(out + strip, first);
        KERNEL(store)(out + strip + 16, second);
    }
    for (; strip + 16 <= n; strip += 16) {
        KERNEL(v16) acc = KERNEL(splat)(0);
        for (long k = 0; k < n; k++) acc = MULADD(KERNEL(splat)(v[k]), KERNEL(load)(m + k * n + strip), acc);
        KERNEL(store)(out + strip, acc);
    }
    for (; strip < n; strip++) {
        float total = 0;
        for (long k = 0; k < n; k++) total = MULADD(v[k], m[k * n + strip], total);
        out[strip] = total;
    }
}

static KERNEL_TARGET void KERNEL(matvec)(const float *m, const float *v, float *out, long n) {
    KERNEL(matvec_inline)(m, v, out, n);
}

static KERNEL_TARGET void KERNEL(score_rows)(const float *rows, long row_count, long d, const float *q, float *scores) {
    for (long r = 0; r < row_count; r++) scores[r] = KERNEL(dot_inline)(rows + r * d, q, d);
}

// out[i] = q·row(ids[i]), where row(j) starts at base + j·stride bytes: one call per HNSW expansion.
static KERNEL_TARGET void KERNEL(score_gather)(const float *q, const unsigned char *base, long stride, const unsigned *ids,
                                               long count, long d, float *out) {
    for (long i = 0; i < count; i++) out[i] = KERNEL(dot_inline)(q, (const float *)(base + (long)ids[i] * stride), d);
}

// Sixteen rows' scores from a value-major block (block[j·16 + lane] is row lane's value j),
// four accumulators deep.
static inline __attribute__((always_inline)) KERNEL_TARGET KERNEL(v16) KERNEL(block_scores_inline)(const float *block, const float *q, long d) {
    KERNEL(v16) a = KERNEL(splat)(0), b = KERNEL(splat)(0), c = KERNEL(splat)(0), e = KERNEL(splat)(0);
    long j = 0;
    for (; j + 4 <= d; j += 4) {
        a = MULADD(KERNEL(splat)(q[j]), KERNEL(load)(block + j * 16), a);
        b = MULADD(KERNEL(splat)(q[j + 1]), KERNEL(load)(block + (j + 1) * 16), b);
        c = MULADD(KERNEL(splat)(q[j + 2]), KERNEL(load)(block + (j + 2) * 16), c);
        e = MULADD(KERNEL(splat)(q[j + 3]), KERNEL(load)(block + (j + 3) * 16), e);
    }
    for (; j < d; j++) a = MULADD(KERNEL(splat)(q[j]), KERNEL(load)(block + j * 16), a);
    return (a + b) + (c + e);
}

static KERNEL_TARGET void KERNEL(block_scores16)(const float *block, const float *q, long d, float *out) {
    KERNEL(store)(out, KERNEL(block_scores_inline)(block, q, d));
}

// Float16 rows (IEEE binary16 bits) against a float query.
static KERNEL_TARGET void KERNEL(score_rows_f16)(const unsigned short *rows, long row_count, long d, const float *q, float *scores) {
    for (long r = 0; r < row_count; r++) {
        const unsigned short *row = rows + r * d;
        KERNEL(v16) first = KERNEL(splat)(0), second = KERNEL(splat)(0);
        long i = 0;
        for (; i + 32 <= d; i += 32) {
            first = MULADD(KERNEL(widen16)(row + i), KERNEL(load)(q + i), first);
            second = MULADD(KERNEL(widen16)(row + i + 16), KERNEL(load)(q + i + 16), second);
        }
        if (i + 16 <= d) {
            first = MULADD(KERNEL(widen16)(row + i), KERNEL(load)(q + i), first);
            i += 16;
        }
        float total = KERNEL(hsum)(first + second);
        for (; i < d; i++) total = MULADD(duet_half_to_float(row[i]), q[i], total);
        scores[r] = total;
    }
}

// One row of implicit-feedback ALS by conjugate gradient, warm-started from x (Takács, Pilászy &
// Tikk, RecSys 2011, as implicit's CPU solver does it): solves (YᵀY + λI + Yᵀ(Cᵤ − I)Y)·x = YᵀCᵤp(u)
// without forming the row's matrix; gram is YᵀY + λI.
static KERNEL_TARGET void KERNEL(implicit_als_step)(float *x, const float *gram, const float *y, const unsigned *items,
                                                    const float *confidences, long count, long d, long steps,
                                                    float *r, float *p, float *ap) {
    // No data: the exact solution is zero, which a few CG steps from the random start do not reach.
    if (count == 0) {
        for (long j = 0; j < d; j++) x[j] = 0;
        return;
    }
    KERNEL(matvec_inline)(gram, x, r, d);
    for (long j = 0; j < d; j++) r[j] = -r[j];
    for (long entry = 0; entry < count; entry++) {
        float c = confidences[entry];
        const float *row = y + (long)items[entry] * d;
        KERNEL(axpy_inline)(c - (c - 1) * KERNEL(dot_inline)(row, x, d), row, r, d);
    }
    for (long j = 0; j < d; j++) p[j] = r[j];
    float rs_old = KERNEL(dot_inline)(r, r, d);
    if (rs_old < 1e-20f) return;
    for (long step = 0; step < steps; step++) {
        KERNEL(matvec_inline)(gram, p, ap, d);
        for (long entry = 0; entry < count; entry++) {
            float c = confidences[entry];
            const float *row = y + (long)items[entry] * d;
            KERNEL(axpy_inline)((c - 1) * KERNEL(dot_inline)(row, p, d), row, ap, d);
        }
        float alpha = rs_old / KERNEL(dot_inline)(p, ap, d);
        KERNEL(axpy_inline)(alpha, p, x, d);
        KERNEL(axpy_inline)(-alpha, ap, r, d);
        float rs_new = KERNEL(dot_inline)(r, r, d);
        if (rs_new < 1e-20f) break;
        float beta = rs_new / rs_old;
        for (long j = 0; j < d; j++) p[j] = r[j] + beta * p[j];
        rs_old = rs_new;
    }
}

// Per-query lookup tables of a partitioned index. Subspace s scores the query against its 16
// centres (columns[(s·width + t)·16 + centre], t < width); each row is shifted so its lowest entry
// is 0 (the shifts summed into *bias), all are scaled by one factor so the widest spans `ceiling`,
// rounded to bytes and stored twice, filling both 16-byte lanes of a 32-byte table for the scan.
// `rows` (subspaces × 16 floats) holds the shifted scores. Returns the scale (1 if every row is flat).
static KERNEL_TARGET float KERNEL(pq4_tables)(const float *q, const float *columns, long subspaces, long width, float ceiling,
                                              float *rows, unsigned char *tables, float *bias) {
    typedef unsigned char u8x16 __attribute__((vector_size(16), aligned(1)));
    float low_total = 0, widest = 0;
    for (long s = 0; s < subspaces; s++) {
        KERNEL(v16) row = KERNEL(splat)(0);
        for (long t = 0; t < width; t++) row = MULADD(KERNEL(splat)(q[s * width + t]), KERNEL(load)(columns + (s * width + t) * 16), row);
        float low = KERNEL(hmin)(row);
        row -= KERNEL(splat)(low);
        float high = KERNEL(hmax)(row);
        if (high > widest) widest = high;
        low_total += low;
        KERNEL(store)(rows + s * 16, row);
    }
    float scale = widest > 0 ? ceiling / widest : 1;
    // Entries are ≥ 0, so adding ½ and truncating rounds.
    KERNEL(v16) factor = KERNEL(splat)(scale), half = KERNEL(splat)(0.5f), top = KERNEL(splat)(255);
    for (long s = 0; s < subspaces; s++) {
        KERNEL(v16) entry = __builtin_elementwise_min(KERNEL(load)(rows + s * 16) * factor + half, top);
        u8x16 bytes = __builtin_convertvector(entry, u8x16);
        __builtin_memcpy(tables + s * 32, &bytes, 16);
        __builtin_memcpy(tables + s * 32 + 16, &bytes, 16);
    }
    *bias = low_total;
    return scale;
}

static const struct duet_kernel_table KERNEL(table) = {
    .name = KERNEL_NAME,
    .dot = KERNEL(dot),
    .axpy = KERNEL(axpy),
    .matvec = KERNEL(matvec),
    .score_rows = KERNEL(score_rows),
    .score_gather = KERNEL(score_gather),
    .block_scores16 = KERNEL(block_scores16),
    .score_rows_f16 = KERNEL(score_rows_f16),
    .implicit_als_step = KERNEL(implicit_als_step),
    .pq4_scan = PQ4_SCAN,
    .pq4_tables = KERNEL(pq4_tables),
};
