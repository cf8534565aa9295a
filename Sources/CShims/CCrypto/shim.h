#ifndef HOTSPOTD_CCRYPTO_H
#define HOTSPOTD_CCRYPTO_H
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/cmac.h>
#include <openssl/aes.h>
#endif
