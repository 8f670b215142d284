/* sign.c - ES256 document signatures (see mgo/sign.h): OpenSSL EVP over the canonical
 * MessagePack that mgo_doc_digest() hashes. */
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/limits.h"
#include "mgo/log.h"
#include "mgo/margo.h"
#include "mgo/sign.h"

#define TAG "sign"
#define MAX_PEM_BYTES (64u * 1024u)

struct mgo_sign_key {
    EVP_PKEY *pkey;
    char id[MGO_DIGEST_STR_SIZE];
};

struct mgo_verify_key {
    EVP_PKEY *pkey;
    char id[MGO_DIGEST_STR_SIZE];
};

static void set_why(char *why, const char *fmt, ...) MGO_PRINTF(2, 3);
static void set_why(char *why, const char *fmt, ...)
{
    if (why == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, MGO_SIGN_WHY_SIZE, fmt, ap);
    va_end(ap);
}

/* The first queued OpenSSL error as text, and the queue emptied. */
static const char *ossl_reason(char *buf, size_t size)
{
    unsigned long e = ERR_peek_error();
    if (e == 0)
        snprintf(buf, size, "no detail");
    else
        ERR_error_string_n(e, buf, size);
    ERR_clear_error();
    return buf;
}

/* Never prompt on a terminal for a passphrase: encrypted keys are refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static bool is_p256(EVP_PKEY *pkey)
{
    if (EVP_PKEY_is_a(pkey, "EC") != 1)
        return false;
    char group[64];
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1)
        return false;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* keyId = "sha256:" + hex SHA-256 of the DER SubjectPublicKeyInfo. */
static mgo_err key_id(EVP_PKEY *pkey, char out[MGO_DIGEST_STR_SIZE])
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(pkey, &der);
    if (len <= 0)
        return MGO_ERR_CRYPTO;
    mgo_err err = mgo_digest_sha256(der, (size_t)len, out);
    OPENSSL_free(der);
    return err;
}

static mgo_err read_pem(const char *what, const char *path, struct mgo_buf *buf)
{
    mgo_buf_init(buf, MAX_PEM_BYTES);
    mgo_err err = mgo_buf_read_file(buf, path);
    if (err == MGO_ERR_LIMIT)
        MGO_LOGE(TAG, "%s %s: larger than %u bytes; not a PEM key", what, path, MAX_PEM_BYTES);
    else if (err)
        MGO_LOGE(TAG, "%s %s: cannot read: %s", what, path, mgo_strerror(err));
    return err;
}

mgo_err mgo_sign_key_load(const char *path, struct mgo_sign_key **out)
{
    struct mgo_buf pem;
    mgo_err err = read_pem("signing key", path, &pem);
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    struct mgo_sign_key *k = NULL;
    char reason[256];
    if (err)
        goto cleanup;
    bio = BIO_new_mem_buf(pem.data, (int)pem.len);
    if (bio == NULL) {
        err = MGO_ERR_NOMEM;
        goto cleanup;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (pkey == NULL) {
        MGO_LOGE(TAG, "signing key %s: not an unencrypted PEM private key (%s)", path,
                 ossl_reason(reason, sizeof reason));
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    if (!is_p256(pkey)) {
        MGO_LOGE(TAG, "signing key %s: must be an EC P-256 key (ES256)", path);
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    k = calloc(1, sizeof *k);
    if (k == NULL) {
        err = MGO_ERR_NOMEM;
        goto cleanup;
    }
    err = key_id(pkey, k->id);
    if (err)
        goto cleanup;
    k->pkey = pkey;
    pkey = NULL;
    *out = k;
    k = NULL;
cleanup:
    free(k);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    if (pem.data != NULL)
        OPENSSL_cleanse(pem.data, pem.len);
    mgo_buf_cleanup(&pem);
    return err;
}

void mgo_sign_key_free(struct mgo_sign_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

const char *mgo_sign_key_id(const struct mgo_sign_key *key)
{
    return key->id;
}

mgo_err mgo_verify_key_from_pem(const void *pem, size_t len, struct mgo_verify_key **out)
{
    if (len == 0 || len > MAX_PEM_BYTES)
        return MGO_ERR_INVALID;
    mgo_err err = MGO_OK;
    EVP_PKEY *pkey = NULL;
    X509 *cert = NULL;
    struct mgo_verify_key *k = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return MGO_ERR_NOMEM;
    pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    if (pkey == NULL) {
        ERR_clear_error();
        if (BIO_reset(bio) != 1) {
            err = MGO_ERR_INTERNAL;
            goto cleanup;
        }
        cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
        if (cert != NULL)
            pkey = X509_get_pubkey(cert);
        ERR_clear_error();
    }
    if (pkey == NULL) {
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    if (!is_p256(pkey)) {
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    k = calloc(1, sizeof *k);
    if (k == NULL) {
        err = MGO_ERR_NOMEM;
        goto cleanup;
    }
    err = key_id(pkey, k->id);
    if (err)
        goto cleanup;
    k->pkey = pkey;
    pkey = NULL;
    *out = k;
    k = NULL;
cleanup:
    free(k);
    EVP_PKEY_free(pkey);
    X509_free(cert);
    BIO_free(bio);
    return err;
}

mgo_err mgo_verify_key_load(const char *path, struct mgo_verify_key **out)
{
    struct mgo_buf pem;
    mgo_err err = read_pem("verification key", path, &pem);
    if (err == MGO_OK) {
        err = mgo_verify_key_from_pem(pem.data, pem.len, out);
        if (err == MGO_ERR_INVALID)
            MGO_LOGE(TAG,
                     "verification key %s: must be a PEM EC P-256 public key or a "
                     "certificate holding one",
                     path);
    }
    mgo_buf_cleanup(&pem);
    return err;
}

void mgo_verify_key_free(struct mgo_verify_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

const char *mgo_verify_key_id(const struct mgo_verify_key *key)
{
    return key->id;
}

/* DER ECDSA-with-SHA-256 signature of data; *sig_len <= MGO_SIGN_MAX_DER. */
static mgo_err es256_sign(EVP_PKEY *pkey, const uint8_t *data, size_t len,
                          uint8_t sig[MGO_SIGN_MAX_DER], size_t *sig_len)
{
    char reason[256];
    mgo_err err = MGO_OK;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return MGO_ERR_NOMEM;
    size_t n = MGO_SIGN_MAX_DER;
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &n, data, len) != 1) {
        MGO_LOGE(TAG, "ES256 signing failed: %s", ossl_reason(reason, sizeof reason));
        err = MGO_ERR_CRYPTO;
    } else {
        *sig_len = n;
    }
    EVP_MD_CTX_free(ctx);
    return err;
}

mgo_err mgo_sign_document(const struct mgo_sign_key *key, const struct mgo_value *root,
                          struct mgo_arena *arena, struct mgo_value *out)
{
    if (root->kind != MGO_V_MAP)
        return MGO_ERR_INVALID;
    struct mgo_buf canon;
    mgo_buf_init(&canon, MGO_MAX_MESSAGE_BYTES);
    uint8_t sig[MGO_SIGN_MAX_DER];
    size_t sig_len = 0;
    mgo_err err = mgo_doc_canonical(root, &canon);
    if (err == MGO_OK)
        err = es256_sign(key->pkey, canon.data, canon.len, sig, &sig_len);
    mgo_buf_cleanup(&canon);
    if (err)
        return err;

    uint8_t *value_bytes = mgo_arena_alloc(arena, sig_len);
    char *kid = mgo_arena_strdup(arena, key->id);
    if (value_bytes == NULL || kid == NULL)
        return MGO_ERR_NOMEM;
    memcpy(value_bytes, sig, sig_len);

    struct mgo_map_builder sb;
    mgo_map_builder_init(&sb, arena);
    mgo_map_put_str(&sb, "alg", MGO_SIGN_ALG);
    mgo_map_put_str(&sb, "keyId", kid);
    struct mgo_value bin = {.kind = MGO_V_BIN};
    bin.as.str.ptr = (const char *)value_bytes;
    bin.as.str.len = sig_len;
    mgo_map_put(&sb, "value", &bin);
    struct mgo_value signature;
    if ((err = mgo_map_builder_finish(&sb, &signature)) != MGO_OK)
        return err;

    /* x-margo-mqtt-extensions: the old members but "signature", plus the new signature */
    struct mgo_map_builder eb;
    mgo_map_builder_init(&eb, arena);
    const struct mgo_value *old_ext = mgo_value_get(root, MGO_EXT_KEY);
    for (size_t i = 0; old_ext != NULL && old_ext->kind == MGO_V_MAP && i < old_ext->as.map.len;
         i++) {
        const struct mgo_member *m = &old_ext->as.map.items[i];
        if (strcmp(m->key, "signature") != 0)
            mgo_map_put(&eb, m->key, &m->value);
    }
    mgo_map_put(&eb, "signature", &signature);
    struct mgo_value ext;
    if ((err = mgo_map_builder_finish(&eb, &ext)) != MGO_OK)
        return err;

    struct mgo_map_builder rb;
    mgo_map_builder_init(&rb, arena);
    for (size_t i = 0; i < root->as.map.len; i++) {
        const struct mgo_member *m = &root->as.map.items[i];
        if (strcmp(m->key, MGO_EXT_KEY) != 0)
            mgo_map_put(&rb, m->key, &m->value);
    }
    mgo_map_put(&rb, MGO_EXT_KEY, &ext);
    return mgo_map_builder_finish(&rb, out);
}

#define SIG_FIELD MGO_EXT_KEY ".signature"

mgo_err mgo_sign_verify_document(const struct mgo_verify_key *const *keys, size_t n,
                                 const struct mgo_value *root, const char *device_id, char *why)
{
    set_why(why, "ok");
    if (root->kind != MGO_V_MAP) {
        set_why(why, "$: must be a map");
        return MGO_ERR_CRYPTO;
    }
    const struct mgo_value *ext = mgo_value_get(root, MGO_EXT_KEY);
    const struct mgo_value *sig = mgo_value_get(ext, "signature");
    if (sig == NULL) {
        set_why(why, SIG_FIELD ": missing (unsigned document)");
        return MGO_ERR_CRYPTO;
    }
    if (sig->kind != MGO_V_MAP) {
        set_why(why, SIG_FIELD ": must be a map, got %s", mgo_value_kind_name(sig->kind));
        return MGO_ERR_CRYPTO;
    }
    const struct mgo_value *alg = mgo_value_get(sig, "alg");
    if (alg == NULL || alg->kind != MGO_V_STR || strcmp(alg->as.str.ptr, MGO_SIGN_ALG) != 0) {
        set_why(why, SIG_FIELD ".alg: must be \"" MGO_SIGN_ALG "\", got %s%.32s%s",
                alg && alg->kind == MGO_V_STR ? "\"" : "",
                alg == NULL              ? "nothing"
                : alg->kind == MGO_V_STR ? alg->as.str.ptr
                                         : mgo_value_kind_name(alg->kind),
                alg && alg->kind == MGO_V_STR ? "\"" : "");
        return MGO_ERR_CRYPTO;
    }
    const struct mgo_value *kid = mgo_value_get(sig, "keyId");
    if (kid == NULL || kid->kind != MGO_V_STR) {
        set_why(why, SIG_FIELD ".keyId: required string");
        return MGO_ERR_CRYPTO;
    }
    const struct mgo_value *value = mgo_value_get(sig, "value");
    if (value == NULL || value->kind != MGO_V_BIN || value->as.str.len < 8 ||
        value->as.str.len > MGO_SIGN_MAX_DER) {
        set_why(why, SIG_FIELD ".value: required bin of 8..%d bytes (DER ECDSA signature)",
                MGO_SIGN_MAX_DER);
        return MGO_ERR_CRYPTO;
    }
    const struct mgo_verify_key *key = NULL;
    for (size_t i = 0; i < n && key == NULL; i++) {
        if (keys[i] != NULL && strcmp(keys[i]->id, kid->as.str.ptr) == 0)
            key = keys[i];
    }
    if (key == NULL) {
        set_why(why, SIG_FIELD ".keyId: \"%.80s\" is not a configured manager key",
                kid->as.str.ptr);
        return MGO_ERR_CRYPTO;
    }

    struct mgo_buf canon;
    mgo_buf_init(&canon, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = mgo_doc_canonical(root, &canon);
    if (err) {
        mgo_buf_cleanup(&canon);
        set_why(why, "$: cannot encode the canonical form: %s", mgo_strerror(err));
        return err == MGO_ERR_NOMEM ? err : MGO_ERR_CRYPTO;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        mgo_buf_cleanup(&canon);
        return MGO_ERR_NOMEM;
    }
    int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
             EVP_DigestVerify(ctx, (const unsigned char *)value->as.str.ptr, value->as.str.len,
                              canon.data, canon.len) == 1;
    EVP_MD_CTX_free(ctx);
    mgo_buf_cleanup(&canon);
    ERR_clear_error();
    if (!ok) {
        set_why(why, SIG_FIELD ".value: does not verify with key %s (forged or altered document)",
                key->id);
        return MGO_ERR_CRYPTO;
    }

    if (device_id != NULL) {
        const struct mgo_value *dev = mgo_value_get(root, "deviceId");
        const char *field = "deviceId";
        if (dev == NULL) {
            dev = mgo_value_get(mgo_value_get(root, "metadata"), "deviceId");
            field = "metadata.deviceId";
        }
        if (dev == NULL || dev->kind != MGO_V_STR) {
            set_why(why, "%s: a signed document must name its device (%s)", field, device_id);
            return MGO_ERR_CRYPTO;
        }
        if (strcmp(dev->as.str.ptr, device_id) != 0) {
            set_why(why,
                    "%s: signed for device \"%.64s\", not for \"%.64s\" (replayed from "
                    "another device)",
                    field, dev->as.str.ptr, device_id);
            return MGO_ERR_CRYPTO;
        }
    }
    return MGO_OK;
}

mgo_err mgo_sign_verify_msgpack(const struct mgo_verify_key *const *keys, size_t n,
                                const void *data, size_t len, const char *device_id,
                                struct mgo_arena *arena, char *why)
{
    struct mgo_problems problems;
    mgo_problems_init(&problems);
    struct mgo_value root;
    mgo_err err = mgo_value_from_msgpack(data, len, arena, &root, &problems);
    if (err) {
        char detail[160];
        mgo_problems_format(&problems, detail, sizeof detail);
        set_why(why, "not a decodable MessagePack document: %s", detail);
        return err;
    }
    return mgo_sign_verify_document(keys, n, &root, device_id, why);
}
