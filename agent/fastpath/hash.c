/* The hash mask's token (masking.hash_token): "h_" + the first 24 hex digits of
 * HMAC-SHA256(key, UTF-8 text).  The key's inner and outer states (one block each, RFC 2104)
 * are computed once per key; each value then costs SHA256_Transform calls on stack blocks it
 * pads itself (usually two: one inner, one outer), with none of SHA256_Update/Final's
 * buffering, copying and cleansing, which took as long as the compressions for short
 * values.  Both data paths' masks (masking.c, copy.c, mysql.c) take their tokens here. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: a context copied by value per value */
#include <openssl/sha.h>

#include "fastpath.h"

static struct {
    PyObject *key; /* the bytes object these states are of (strong ref) */
    SHA256_CTX inner, outer;
} hmac_state;

/* "00" to "ff": a byte's two hex digits in one copy. */
static char hex_pairs[2 * 256];

static void hex_pairs_fill(void) {
    static const char hex[] = "0123456789abcdef";
    for (int byte = 0; byte < 256; byte++) {
        hex_pairs[2 * byte] = hex[byte >> 4];
        hex_pairs[2 * byte + 1] = hex[byte & 15];
    }
}

int hmac_prepare(PyObject *key) {
    if (hmac_state.key == key) return 0;
    if (!PyBytes_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "the masking key must be bytes");
        return -1;
    }
    unsigned char block[SHA256_CBLOCK] = {0}, pad[SHA256_CBLOCK];
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(key);
    Py_ssize_t len = PyBytes_GET_SIZE(key);
    if (len > SHA256_CBLOCK)
        SHA256(raw, (size_t)len, block); /* a long key is hashed first (RFC 2104) */
    else
        memcpy(block, raw, (size_t)len);
    for (int i = 0; i < SHA256_CBLOCK; i++) pad[i] = block[i] ^ 0x36;
    SHA256_Init(&hmac_state.inner);
    SHA256_Update(&hmac_state.inner, pad, sizeof pad);
    for (int i = 0; i < SHA256_CBLOCK; i++) pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&hmac_state.outer);
    SHA256_Update(&hmac_state.outer, pad, sizeof pad);
    Py_XSETREF(hmac_state.key, Py_NewRef(key));
    if (hex_pairs[0] == 0) hex_pairs_fill();
    return 0;
}

/* `context` (one key block already hashed) advanced over `data` to the end of the message,
 * SHA-256 padding included: FIPS 180-4 section 5.1.1, a 0x80 byte, zeros, and the bit
 * length of the whole message (key block and all) in the last 8 bytes of a block. */
static void sha256_finish_blocks(SHA256_CTX *context, const unsigned char *data, size_t len) {
    uint64_t bits = __builtin_bswap64(((uint64_t)SHA256_CBLOCK + len) * 8);
    for (; len >= SHA256_CBLOCK; data += SHA256_CBLOCK, len -= SHA256_CBLOCK)
        SHA256_Transform(context, data);
    unsigned char tail[2 * SHA256_CBLOCK];
    size_t size = len < SHA256_CBLOCK - 8 ? SHA256_CBLOCK : 2 * SHA256_CBLOCK;
    memcpy(tail, data, len);
    tail[len] = 0x80;
    memset(tail + len + 1, 0, size - 8 - len - 1);
    memcpy(tail + size - 8, &bits, 8);
    SHA256_Transform(context, tail);
    if (size > SHA256_CBLOCK) SHA256_Transform(context, tail + SHA256_CBLOCK);
}

/* The outer hash's one block after the inner digest: its padding, for a message of the
 * key block and a 32-byte digest (768 bits). */
static const unsigned char outer_padding[SHA256_CBLOCK - SHA256_DIGEST_LENGTH] = {
    0x80, [SHA256_CBLOCK - SHA256_DIGEST_LENGTH - 2] = 0x03 /* 768 = 0x0300, big-endian */};

void hash_token(const char *text, Py_ssize_t len, char *token) {
    SHA256_CTX context; /* SHA256_Transform reads and writes only its state words, h */
    unsigned char block[SHA256_CBLOCK];
    memcpy(context.h, hmac_state.inner.h, sizeof context.h);
    sha256_finish_blocks(&context, (const unsigned char *)text, (size_t)len);
    for (int i = 0; i < 8; i++) { /* the inner digest: the state words, big-endian */
        uint32_t word = __builtin_bswap32(context.h[i]);
        memcpy(block + 4 * i, &word, 4);
    }
    memcpy(block + SHA256_DIGEST_LENGTH, outer_padding, sizeof outer_padding);
    memcpy(context.h, hmac_state.outer.h, sizeof context.h);
    SHA256_Transform(&context, block);
    token[0] = 'h';
    token[1] = '_';
    char *digits = token + 2; /* 24 hex digits: the first 12 bytes of the outer digest */
    for (int w = 0; w < 3; w++)
        for (int shift = 24; shift >= 0; shift -= 8, digits += 2)
            memcpy(digits, hex_pairs + 2 * ((context.h[w] >> shift) & 255), 2);
}
