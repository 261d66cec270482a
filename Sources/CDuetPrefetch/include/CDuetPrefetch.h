#ifndef CDUET_PREFETCH_H
#define CDUET_PREFETCH_H

/// A read prefetch into all cache levels. Swift has no spelling for it; being static inline,
/// it compiles into the caller as one instruction.
static inline __attribute__((always_inline)) void duet_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
