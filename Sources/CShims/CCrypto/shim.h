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

#endif
