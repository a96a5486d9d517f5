/*
 * sha256.h — SHA-256 (FIPS 180-4), our own.
 *
 * persistor needs exactly one hash (content digests of snapshots), and a
 * dependency on OpenSSL or another crypto library for it would cost more
 * (a link-time dependency for libpersistor and every static build, plus
 * version skew across distributions) than the hundred lines below.  This is
 * for integrity and identity, not for keys or passwords: nothing here is
 * constant-time and there is no HMAC.
 */
#ifndef PERSISTOR_CORE_SHA256_H
#define PERSISTOR_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE 65 /* 64 hex digits and a NUL */

/* Streaming state.  Initialise with sha256_init; opaque to callers. */
typedef struct sha256_ctx {
    uint32_t state[8];
    uint64_t total;    /* bytes fed so far */
    uint8_t block[64]; /* a partial block waiting for more input */
    size_t used;       /* bytes of `block` in use */
} sha256_ctx;

/* Start a new digest. */
void sha256_init(sha256_ctx *ctx);

/* Feed `len` bytes; any split of the input gives the same digest. */
void sha256_update(sha256_ctx *ctx, const void *data, size_t len);

/* Finish: write the 32-byte digest.  The context must be re-initialised
 * before it is used again. */
void sha256_final(sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_SIZE]);

/* Lower-case hex of a digest, NUL-terminated. */
void sha256_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE]);

/* The hex digest of an id's input as persistor builds them: each of the
 * `n` strings with its NUL (a separator no string contains; the first is
 * a domain tag such as "persistor-snapshot-v1"), then `tail_len` bytes. */
void sha256_hex_of(const char *const *strings, size_t n, const void *tail, size_t tail_len,
                   char out[SHA256_HEX_SIZE]);

#endif
