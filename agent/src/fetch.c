/* fetch.c - downloads and OCI artifacts (through common's mgo/oci.h), safe tar.gz
 * extraction (zlib). */
#include "fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

mgo_err mgo_fetch_url(const char *url, const struct mgo_fetch_opts *opts, struct mgo_buf *out,
                      char *why, size_t why_len)
{
    return mgo_http_fetch(url, NULL, opts, true, out, why, why_len);
}

mgo_err mgo_fetch_oci(const char *repository, const char *revision,
                      const struct mgo_fetch_opts *opts, struct mgo_buf *out, char *media_type,
                      char *why, size_t why_len)
{
    return mgo_oci_fetch(repository, revision, opts, NULL, out, media_type, why, why_len);
}

/* ---- tar.gz ------------------------------------------------------------------------ */

bool mgo_fetch_is_gzip(const void *data, size_t len)
{
    const uint8_t *p = data;
    return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

static mgo_err gunzip(const void *data, size_t len, struct mgo_buf *out, char *why, size_t why_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return MGO_ERR_NOMEM;
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    uint8_t chunk[16384];
    mgo_err err = MGO_OK;
    for (;;) {
        zs.next_out = chunk;
        zs.avail_out = sizeof chunk;
        int rc = inflate(&zs, Z_NO_FLUSH);
        size_t got = sizeof chunk - zs.avail_out;
        if (got > 0 && mgo_buf_append(out, chunk, got) != MGO_OK) {
            snprintf(why, why_len, "unpacked size over %zu bytes", out->max);
            err = MGO_ERR_LIMIT;
            break;
        }
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && got > 0)) {
            snprintf(why, why_len, "not a valid gzip stream (%s)", zs.msg ? zs.msg : "truncated");
            err = MGO_ERR_PARSE;
            break;
        }
    }
    inflateEnd(&zs);
    return err;
}

static uint64_t octal(const uint8_t *p, size_t n, bool *ok)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && p[i] == ' ')
        i++;
    bool any = false;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
        v = (v << 3) | (uint64_t)(p[i] - '0');
        any = true;
    }
    for (; i < n; i++)
        if (p[i] != ' ' && p[i] != '\0')
            *ok = false;
    if (!any)
        *ok = false;
    return v;
}

/* Normalises and checks an entry name; returns false when it must be refused. */
static bool safe_name(char *name)
{
    while (name[0] == '.' && name[1] == '/')
        memmove(name, name + 2, strlen(name + 2) + 1);
    size_t l = strlen(name);
    while (l > 0 && name[l - 1] == '/')
        name[--l] = '\0';
    if (l == 0 || name[0] == '/' || strcmp(name, ".") == 0)
        return l == 0 || strcmp(name, ".") == 0 ? true : false;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t cl = slash ? (size_t)(slash - p) : strlen(p);
        if (cl == 0 || (cl == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += cl;
        if (*p == '/')
            p++;
    }
    return true;
}

static mgo_err make_parents(const char *dir, const char *name)
{
    char path[2048];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path)
        return MGO_ERR_LIMIT;
    size_t base = strlen(dir) + 1;
    for (size_t i = base; path[i]; i++) {
        if (path[i] != '/')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return MGO_ERR_IO;
        struct stat sb;
        if (lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return MGO_ERR_IO;
        path[i] = '/';
    }
    return MGO_OK;
}

mgo_err mgo_fetch_untar_gz(const void *data, size_t len, const char *dir, char *why, size_t why_len)
{
    struct mgo_buf tar;
    mgo_buf_init(&tar, MGO_FETCH_MAX_UNPACKED_BYTES);
    mgo_err err = gunzip(data, len, &tar, why, why_len);
    if (err != MGO_OK)
        goto cleanup;
    size_t pos = 0, entries = 0;
    char pax_path[1024] = "";
    while (pos + 512 <= tar.len) {
        const uint8_t *h = tar.data + pos;
        bool zero = true;
        for (size_t i = 0; i < 512 && zero; i++)
            zero = h[i] == 0;
        if (zero)
            break; /* end of archive */
        bool ok = true;
        uint64_t sum = octal(h + 148, 8, &ok);
        uint64_t calc = 0;
        for (size_t i = 0; i < 512; i++)
            calc += (i >= 148 && i < 156) ? (uint64_t)' ' : h[i];
        uint64_t size = octal(h + 124, 12, &ok);
        if (!ok || sum != calc) {
            snprintf(why, why_len, "entry %zu: bad tar header (checksum or size field)", entries);
            err = MGO_ERR_PARSE;
            goto cleanup;
        }
        size_t padded = (size_t)((size + 511u) & ~(uint64_t)511u);
        if (size > tar.len || pos + 512 + padded > tar.len) {
            snprintf(why, why_len, "entry %zu: truncated", entries);
            err = MGO_ERR_PARSE;
            goto cleanup;
        }
        if (++entries > MGO_FETCH_MAX_ENTRIES) {
            snprintf(why, why_len, "more than %u entries", MGO_FETCH_MAX_ENTRIES);
            err = MGO_ERR_LIMIT;
            goto cleanup;
        }
        const uint8_t *body = h + 512;
        char type = (char)h[156];
        char name[1024];
        if (pax_path[0] != '\0') {
            snprintf(name, sizeof name, "%s", pax_path);
            pax_path[0] = '\0';
        } else {
            bool ustar = memcmp(h + 257, "ustar", 5) == 0;
            size_t nl = strnlen((const char *)h, 100);
            size_t pl = ustar ? strnlen((const char *)h + 345, 155) : 0;
            if (pl > 0)
                snprintf(name, sizeof name, "%.*s/%.*s", (int)pl, (const char *)h + 345, (int)nl,
                         (const char *)h);
            else
                snprintf(name, sizeof name, "%.*s", (int)nl, (const char *)h);
        }
        if (type == 'x') {
            /* pax extended header: "len key=value\n" records; only path matters */
            size_t p = 0;
            while (p < size) {
                size_t rl = 0, q = p;
                while (q < size && body[q] >= '0' && body[q] <= '9')
                    rl = rl * 10 + (size_t)(body[q++] - '0');
                if (rl == 0 || p + rl > size || q >= size || body[q] != ' ')
                    break;
                const char *kv = (const char *)body + q + 1;
                size_t kvl = p + rl - (q + 1);
                if (kvl > 5 && memcmp(kv, "path=", 5) == 0 && kvl - 6 < sizeof pax_path) {
                    memcpy(pax_path, kv + 5, kvl - 6);
                    pax_path[kvl - 6] = '\0';
                }
                if (kvl > 9 && memcmp(kv, "linkpath=", 9) == 0) {
                    snprintf(why, why_len, "entry %zu: links are refused", entries);
                    err = MGO_ERR_INVALID;
                    goto cleanup;
                }
                p += rl;
            }
            pos += 512 + padded;
            continue;
        }
        if (type == 'g') {
            pos += 512 + padded;
            continue;
        }
        if (memchr(name, '\0', strlen(name)) != NULL || !safe_name(name)) {
            snprintf(why, why_len, "entry %zu (%.200s): absolute path or '..' refused", entries,
                     name);
            err = MGO_ERR_INVALID;
            goto cleanup;
        }
        if (type == '5') {
            if (name[0] != '\0') {
                err = make_parents(dir, name);
                char path[2048];
                snprintf(path, sizeof path, "%s/%s", dir, name);
                if (err == MGO_OK && mkdir(path, 0755) != 0 && errno != EEXIST)
                    err = MGO_ERR_IO;
                if (err != MGO_OK) {
                    snprintf(why, why_len, "entry %zu (%.200s): cannot create folder", entries,
                             name);
                    goto cleanup;
                }
            }
        } else if (type == '0' || type == '\0' || type == '7') {
            if (name[0] == '\0') {
                snprintf(why, why_len, "entry %zu: empty name", entries);
                err = MGO_ERR_INVALID;
                goto cleanup;
            }
            err = make_parents(dir, name);
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, name);
            int fd = err == MGO_OK
                         ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644)
                         : -1;
            if (fd < 0) {
                snprintf(why, why_len, "entry %zu (%.200s): cannot create file", entries, name);
                err = MGO_ERR_IO;
                goto cleanup;
            }
            size_t left = (size_t)size;
            const uint8_t *p = body;
            while (left > 0) {
                ssize_t w = write(fd, p, left);
                if (w <= 0 && errno != EINTR) {
                    close(fd);
                    snprintf(why, why_len, "entry %zu: write failed", entries);
                    err = MGO_ERR_IO;
                    goto cleanup;
                }
                if (w > 0) {
                    p += w;
                    left -= (size_t)w;
                }
            }
            close(fd);
        } else {
            snprintf(why, why_len,
                     "entry %zu (%.200s): type '%c' refused (links, devices and "
                     "other special files are not allowed)",
                     entries, name, type >= 0x20 && type < 0x7f ? type : '?');
            err = MGO_ERR_INVALID;
            goto cleanup;
        }
        pos += 512 + padded;
    }
cleanup:
    mgo_buf_cleanup(&tar);
    return err;
}
