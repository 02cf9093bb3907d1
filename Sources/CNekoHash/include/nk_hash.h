// SHA-256 and SHA-1 (FIPS 180-4), streaming: what the Hub's etags are (a file's sha256, or git's
// blob sha1). Our own ~150 lines, because swift-crypto would compile a second copy of BoringSSL
// into every build (see Sources/NekoHub/README.md). Checked against Python's hashlib in the tests.
#ifndef NEKOCHAT_HASH_H
#define NEKOCHAT_HASH_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t length;      // bytes hashed so far
    uint8_t block[64];
    size_t used;          // bytes waiting in `block`
    int sha1;             // 1: SHA-1 (5 words of state), 0: SHA-256
} nk_hash;

void nk_hash_init(nk_hash *h, int sha1);
void nk_hash_update(nk_hash *h, const void *data, size_t size);
/// Writes the digest (32 bytes for SHA-256, 20 for SHA-1) to `out`.
void nk_hash_final(nk_hash *h, uint8_t *out);

#endif
