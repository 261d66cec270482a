#include "CDuetDigest.h"
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotate_right(uint32_t value, int bits) { return (value >> bits) | (value << (32 - bits)); }

static inline uint32_t load_big_endian(const uint8_t *bytes) {
    return ((uint32_t)bytes[0] << 24) | ((uint32_t)bytes[1] << 16) | ((uint32_t)bytes[2] << 8) | bytes[3];
}

static void blocks_portable(uint32_t state[8], const uint8_t *data, size_t blocks) {
    uint32_t schedule[64];
    for (; blocks > 0; blocks--, data += 64) {
        for (int i = 0; i < 16; i++) schedule[i] = load_big_endian(data + 4 * i);
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = rotate_right(schedule[i - 15], 7) ^ rotate_right(schedule[i - 15], 18) ^ (schedule[i - 15] >> 3);
            uint32_t s1 = rotate_right(schedule[i - 2], 17) ^ rotate_right(schedule[i - 2], 19) ^ (schedule[i - 2] >> 10);
            schedule[i] = schedule[i - 16] + s0 + schedule[i - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int i = 0; i < 64; i++) {
            uint32_t sum1 = rotate_right(e, 6) ^ rotate_right(e, 11) ^ rotate_right(e, 25);
            uint32_t choose = (e & f) ^ (~e & g);
            uint32_t first = h + sum1 + choose + round_constants[i] + schedule[i];
            uint32_t sum0 = rotate_right(a, 2) ^ rotate_right(a, 13) ^ rotate_right(a, 22);
            uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
            h = g; g = f; f = e; e = d + first;
            d = c; c = b; b = a; a = first + sum0 + majority;
        }
        state[0] += a; state[1] += b; state[2] += c; state[3] += d;
        state[4] += e; state[5] += f; state[6] += g; state[7] += h;
    }
}

#if defined(__x86_64__)
// The SHA extensions keep the state as two registers, ABEF and CDGH, and take four rounds'
// message words plus constants per pair of sha256rnds2.
__attribute__((target("sha,sse4.1,ssse3")))
static void blocks_sha_extensions(uint32_t state[8], const uint8_t *data, size_t blocks) {
    const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);

    for (; blocks > 0; blocks--, data += 64) {
        __m128i abef_start = abef, cdgh_start = cdgh;
        __m128i words[4];
#pragma clang loop unroll(full)
        for (int group = 0; group < 16; group++) {
            __m128i current;
            if (group < 4) {
                current = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * group)), byte_swap);
            } else {
                // W[t] from W[t-16], W[t-15] (msg1), W[t-7] (the alignr) and W[t-2] (msg2).
                __m128i oldest = words[group & 3], next = words[(group + 1) & 3];
                __m128i previous = words[(group + 3) & 3], before_previous = words[(group + 2) & 3];
                current = _mm_sha256msg1_epu32(oldest, next);
                current = _mm_add_epi32(current, _mm_alignr_epi8(previous, before_previous, 4));
                current = _mm_sha256msg2_epu32(current, previous);
            }
            words[group & 3] = current;
            __m128i message = _mm_add_epi32(current, _mm_loadu_si128((const __m128i *)&round_constants[4 * group]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, message);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(message, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef_start);
        cdgh = _mm_add_epi32(cdgh, cdgh_start);
    }

    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
}

static int cpu_has_sha_extensions(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    int sse41 = (ecx >> 19) & 1, ssse3 = (ecx >> 9) & 1;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    return sse41 && ssse3 && ((ebx >> 29) & 1);
}
#endif

typedef void (*block_function)(uint32_t state[8], const uint8_t *data, size_t blocks);
static block_function selected_blocks = 0;

int duet_sha256_select(int allow_acceleration) {
    block_function chosen = blocks_portable;
#if defined(__x86_64__)
    if (allow_acceleration && cpu_has_sha_extensions()) chosen = blocks_sha_extensions;
#endif
    __atomic_store_n(&selected_blocks, chosen, __ATOMIC_RELEASE);
    return chosen != blocks_portable;
}

static inline block_function current_blocks(void) {
    block_function blocks = __atomic_load_n(&selected_blocks, __ATOMIC_ACQUIRE);
    if (blocks) return blocks;
    duet_sha256_select(1);
    return __atomic_load_n(&selected_blocks, __ATOMIC_ACQUIRE);
}

int duet_sha256_accelerated(void) { return current_blocks() != blocks_portable; }

void duet_sha256_init(duet_sha256_context *context) {
    static const uint32_t initial[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(context->state, initial, sizeof initial);
    context->total_bytes = 0;
    context->pending_bytes = 0;
}

void duet_sha256_update(duet_sha256_context *context, const void *bytes, size_t count) {
    const uint8_t *data = bytes;
    block_function blocks = current_blocks();
    context->total_bytes += count;
    if (context->pending_bytes > 0) {
        size_t take = 64 - context->pending_bytes;
        if (take > count) take = count;
        memcpy(context->pending + context->pending_bytes, data, take);
        context->pending_bytes += (uint32_t)take;
        data += take;
        count -= take;
        if (context->pending_bytes < 64) return;
        blocks(context->state, context->pending, 1);
        context->pending_bytes = 0;
    }
    size_t whole = count / 64;
    if (whole > 0) blocks(context->state, data, whole);
    data += whole * 64;
    count -= whole * 64;
    memcpy(context->pending, data, count);
    context->pending_bytes = (uint32_t)count;
}

void duet_sha256_final(duet_sha256_context *context, uint8_t digest[32]) {
    uint64_t bit_length = context->total_bytes * 8;
    uint8_t padding[72] = {0x80};
    // One 0x80 byte, zeros to 56 mod 64, then the bit length as a big-endian 64-bit number.
    size_t padding_bytes = (context->pending_bytes < 56 ? 56 : 120) - context->pending_bytes;
    for (int i = 0; i < 8; i++) padding[padding_bytes + i] = (uint8_t)(bit_length >> (56 - 8 * i));
    uint64_t total = context->total_bytes;
    duet_sha256_update(context, padding, padding_bytes + 8);
    context->total_bytes = total;
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(context->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(context->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(context->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)context->state[i];
    }
}
