/* ids.h — random identifiers and the hashes that name Redis keys.
 *
 * An id is 256 bits of libsodium randomness written as 43 characters of unpadded
 * base64url.  Redis never sees an id itself, only name_hash() of it: BLAKE2b-128 with a
 * fixed per-purpose label, so key names never depend on the (rotating) secret key. */
#ifndef FBC_IDS_H
#define FBC_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_BYTES 32
#define ID_TEXT_LEN 43

typedef char id_text[ID_TEXT_LEN + 1];

/* n bytes of libsodium randomness, from a per-thread pool filled 4 KB at a time (one
 * getrandom call instead of one per id); handed-out bytes are wiped from the pool. */
void random_bytes(void *out, size_t n);

/* A fresh random id. */
void id_new(id_text out);
/* True when s is exactly a well-formed id (43 base64url characters that decode to 32
 * bytes). */
bool id_valid(const char *s);
#define NAME_BYTES 16
#define NAME_TEXT_LEN 22

/* A name inside a Redis key: 128 bits as 22 base64url characters. */
typedef char name_text[NAME_TEXT_LEN + 1];

/* BLAKE2b-128 of purpose, a NUL and data, as base64url: purpose ("session", "conn", …)
 * separates the domains.  128 bits name things (keys, log tags); they protect nothing. */
void name_hash(const char *purpose, const void *data, size_t len, name_text out);
/* A fresh random name. */
void name_new(name_text out);

/* Unpadded base64url.  encode: out must hold b64url_len(n) + 1 bytes. */
size_t b64url_len(size_t n);
void b64url_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly all of s[0..len); returns 0 and the length in *outlen, or -1. */
int b64url_decode(const char *s, size_t len, uint8_t *out, size_t maxout, size_t *outlen);

#endif
