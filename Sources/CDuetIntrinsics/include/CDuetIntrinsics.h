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

#endif
