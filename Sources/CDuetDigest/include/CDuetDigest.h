#ifndef CDUET_DIGEST_H
#define CDUET_DIGEST_H

#include <stddef.h>
#include <stdint.h>

/// SHA-256 (FIPS 180-4). The block function uses the x86 SHA extensions where the CPU has them
/// and portable C elsewhere; both give the same digest, which the tests check against each other.
typedef struct {
    uint32_t state[8];
    uint64_t total_bytes;
    uint8_t pending[64];
    uint32_t pending_bytes;
} duet_sha256_context;

void duet_sha256_init(duet_sha256_context *context);
void duet_sha256_update(duet_sha256_context *context, const void *bytes, size_t count);
void duet_sha256_final(duet_sha256_context *context, uint8_t digest[32]);

/// Which block function runs: 1 for the SHA extensions, 0 for portable C.
int duet_sha256_accelerated(void);
/// For tests: 0 forces portable C; 1 restores the best the CPU has. Returns the one now in use.
int duet_sha256_select(int allow_acceleration);

#endif
