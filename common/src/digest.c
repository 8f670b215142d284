/* digest.c - sha256 digests in Margo's "sha256:<hex>" form (OpenSSL EVP). */
#include "mgo/digest.h"

#include <openssl/evp.h>
#include <string.h>

#include "mgo/log.h"

mgo_err mgo_digest_sha256(const void *data, size_t len, char out[MGO_DIGEST_STR_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
        MGO_LOGE("digest", "EVP_Digest(sha256) failed");
        return MGO_ERR_CRYPTO;
    }
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[MGO_DIGEST_STR_LEN] = '\0';
    return MGO_OK;
}

bool mgo_digest_is_wellformed(const char *d)
{
    const char *colon = strchr(d, ':');
    if (colon == NULL || colon == d || colon[1] == '\0')
        return false;
    for (const char *p = d; p < colon; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    for (const char *p = colon + 1; *p; p++) {
        char c = *p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

bool mgo_digest_is_sha256(const char *d)
{
    if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != MGO_DIGEST_STR_LEN)
        return false;
    for (const char *p = d + 7; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

bool mgo_digest_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}
