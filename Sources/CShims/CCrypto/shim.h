#ifndef HOTSPOTD_CCRYPTO_H
#define HOTSPOTD_CCRYPTO_H

/*
 * libcrypto, and small inline helpers for the operations hotspotd needs, so that Swift does
 * not have to build OSSL_PARAM arrays: AES-128 in ECB mode (LoRaWAN's block operation),
 * AES-CMAC (RFC 4493, LoRaWAN's MIC), Ed25519 (RFC 8032) from a 32-byte seed, SHA-256 and
 * random bytes. Every helper returns 1 on success and 0 on failure.
 */

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/params.h>
#include <openssl/core_names.h>
#include <stddef.h>
#include <stdint.h>

static inline int hs_aes128_ecb_encrypt(const uint8_t key[16], const uint8_t *in, uint8_t *out, size_t blocks) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return 0;
    int ok = EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL) == 1
        && EVP_CIPHER_CTX_set_padding(ctx, 0) == 1;
    int written = 0;
    ok = ok && EVP_EncryptUpdate(ctx, out, &written, in, (int)(blocks * 16)) == 1 && written == (int)(blocks * 16);
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static inline int hs_aes128_ecb_decrypt(const uint8_t key[16], const uint8_t *in, uint8_t *out, size_t blocks) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return 0;
    int ok = EVP_DecryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL) == 1
        && EVP_CIPHER_CTX_set_padding(ctx, 0) == 1;
    int written = 0;
    ok = ok && EVP_DecryptUpdate(ctx, out, &written, in, (int)(blocks * 16)) == 1 && written == (int)(blocks * 16);
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static inline int hs_aes128_cmac(const uint8_t key[16], const uint8_t *message, size_t length, uint8_t out[16]) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    if (mac == NULL) return 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    char cipher[] = "AES-128-CBC";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t written = 0;
    int ok = ctx != NULL
        && EVP_MAC_init(ctx, key, 16, params) == 1
        && EVP_MAC_update(ctx, message, length) == 1
        && EVP_MAC_final(ctx, out, &written, 16) == 1
        && written == 16;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

/* The public key of a raw 32-byte private key of `type` (EVP_PKEY_ED25519, EVP_PKEY_X25519). */
static inline int hs_raw_public_key(int type, const uint8_t private_key[32], uint8_t public_key[32]) {
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(type, NULL, private_key, 32);
    if (key == NULL) return 0;
    size_t length = 32;
    int ok = EVP_PKEY_get_raw_public_key(key, public_key, &length) == 1 && length == 32;
    EVP_PKEY_free(key);
    return ok;
}

/* The public key of an Ed25519 seed (RFC 8032 §5.1.5). */
static inline int hs_ed25519_public_key(const uint8_t seed[32], uint8_t public_key[32]) {
    return hs_raw_public_key(EVP_PKEY_ED25519, seed, public_key);
}

static inline int hs_ed25519_sign(const uint8_t seed[32], const uint8_t *message, size_t length, uint8_t signature[64]) {
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t written = 64;
    int ok = key != NULL && ctx != NULL
        && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1
        && EVP_DigestSign(ctx, signature, &written, message, length) == 1
        && written == 64;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

static inline int hs_ed25519_verify(const uint8_t public_key[32], const uint8_t *message, size_t length, const uint8_t signature[64]) {
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, public_key, 32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = key != NULL && ctx != NULL
        && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1
        && EVP_DigestVerify(ctx, signature, 64, message, length) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

/* The X25519 public key of a private key (RFC 7748 §6.1). */
static inline int hs_x25519_public_key(const uint8_t private_key[32], uint8_t public_key[32]) {
    return hs_raw_public_key(EVP_PKEY_X25519, private_key, public_key);
}

/* X25519(private, peer): the shared secret; fails for a peer key of small order (all zero). */
static inline int hs_x25519(const uint8_t private_key[32], const uint8_t peer_public_key[32], uint8_t shared[32]) {
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, private_key, 32);
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_public_key, 32);
    EVP_PKEY_CTX *ctx = key != NULL ? EVP_PKEY_CTX_new(key, NULL) : NULL;
    size_t length = 32;
    int ok = key != NULL && peer != NULL && ctx != NULL
        && EVP_PKEY_derive_init(ctx) == 1
        && EVP_PKEY_derive_set_peer(ctx, peer) == 1
        && EVP_PKEY_derive(ctx, shared, &length) == 1
        && length == 32;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(key);
    return ok;
}

static inline int hs_sha256(const uint8_t *message, size_t length, uint8_t digest[32]) {
    return EVP_Digest(message, length, digest, NULL, EVP_sha256(), NULL) == 1;
}

static inline int hs_random_bytes(uint8_t *buffer, size_t length) {
    return RAND_bytes(buffer, (int)length) == 1;
}

/*
 * NIST P-256 (prime256v1): points travel as 65-byte uncompressed SEC 1 encodings
 * (0x04 ‖ X ‖ Y), private keys as 32 big-endian bytes, signatures as DER ECDSA-Sig-Value.
 * Signing and verifying take the 32-byte SHA-256 digest, as the ATECC608 does.
 */
#include <openssl/ec.h>
#include <openssl/bn.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

/* The uncompressed point whose X is `x` and whose Y is odd when `y_odd`; 0 when X is not on the curve. */
static inline int hs_p256_decompress(const uint8_t x[32], int y_odd, uint8_t point[65]) {
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = group != NULL ? EC_POINT_new(group) : NULL;
    uint8_t compressed[33];
    compressed[0] = y_odd ? 0x03 : 0x02;
    for (int i = 0; i < 32; i++) compressed[i + 1] = x[i];
    int ok = p != NULL
        && EC_POINT_oct2point(group, p, compressed, 33, NULL) == 1
        && EC_POINT_point2oct(group, p, POINT_CONVERSION_UNCOMPRESSED, point, 65, NULL) == 65;
    EC_POINT_free(p);
    EC_GROUP_free(group);
    return ok;
}

/* Whether `point` (65 bytes, uncompressed) is a point of the curve other than infinity. */
static inline int hs_p256_is_on_curve(const uint8_t point[65]) {
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = group != NULL ? EC_POINT_new(group) : NULL;
    int ok = p != NULL && EC_POINT_oct2point(group, p, point, 65, NULL) == 1
        && EC_POINT_is_at_infinity(group, p) == 0 && EC_POINT_is_on_curve(group, p, NULL) == 1;
    EC_POINT_free(p);
    EC_GROUP_free(group);
    return ok;
}

/* The public point of a private scalar; 0 for a scalar that is 0 or not below the order. */
static inline int hs_p256_public_key(const uint8_t private_key[32], uint8_t point[65]) {
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = group != NULL ? EC_POINT_new(group) : NULL;
    BIGNUM *d = BN_bin2bn(private_key, 32, NULL);
    int ok = p != NULL && d != NULL && !BN_is_zero(d)
        && BN_cmp(d, EC_GROUP_get0_order(group)) < 0
        && EC_POINT_mul(group, p, d, NULL, NULL, NULL) == 1
        && EC_POINT_point2oct(group, p, POINT_CONVERSION_UNCOMPRESSED, point, 65, NULL) == 65;
    BN_clear_free(d);
    EC_POINT_free(p);
    EC_GROUP_free(group);
    return ok;
}

/* An EVP_PKEY for the point, with the private scalar when `private_key` is not NULL. */
static inline EVP_PKEY *hs_p256_pkey(const uint8_t point[65], const uint8_t *private_key) {
    OSSL_PARAM_BLD *build = OSSL_PARAM_BLD_new();
    BIGNUM *d = private_key != NULL ? BN_bin2bn(private_key, 32, NULL) : NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    int ok = build != NULL && ctx != NULL
        && OSSL_PARAM_BLD_push_utf8_string(build, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1
        && OSSL_PARAM_BLD_push_octet_string(build, OSSL_PKEY_PARAM_PUB_KEY, point, 65) == 1
        && (private_key == NULL || (d != NULL && OSSL_PARAM_BLD_push_BN(build, OSSL_PKEY_PARAM_PRIV_KEY, d) == 1));
    if (ok) params = OSSL_PARAM_BLD_to_param(build);
    ok = ok && params != NULL && EVP_PKEY_fromdata_init(ctx) == 1
        && EVP_PKEY_fromdata(ctx, &key, private_key != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) == 1;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(build);
    BN_clear_free(d);
    EVP_PKEY_CTX_free(ctx);
    if (!ok) { EVP_PKEY_free(key); return NULL; }
    return key;
}

/* ECDSA over a 32-byte digest: the DER signature in `der` (at most 72 bytes), its length in `length`. */
static inline int hs_p256_sign_digest(const uint8_t private_key[32], const uint8_t digest[32], uint8_t der[72], size_t *length) {
    uint8_t point[65];
    if (!hs_p256_public_key(private_key, point)) return 0;
    EVP_PKEY *key = hs_p256_pkey(point, private_key);
    EVP_PKEY_CTX *ctx = key != NULL ? EVP_PKEY_CTX_new(key, NULL) : NULL;
    *length = 72;
    int ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_sign(ctx, der, length, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}

/* Whether `der` is a valid ECDSA signature of the 32-byte digest by the point. */
static inline int hs_p256_verify_digest(const uint8_t point[65], const uint8_t digest[32], const uint8_t *der, size_t length) {
    EVP_PKEY *key = hs_p256_pkey(point, NULL);
    EVP_PKEY_CTX *ctx = key != NULL ? EVP_PKEY_CTX_new(key, NULL) : NULL;
    int ok = ctx != NULL && EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_verify(ctx, der, length, digest, 32) == 1;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

#endif
