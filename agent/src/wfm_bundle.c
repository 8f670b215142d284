/* wfm_bundle.c - a Margo bundle (tar+gzip) unpacked in memory with libarchive (wfm.h). */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <string.h>

#include "wfm.h"

/* Whether name is a plain file name at the archive root ("x.yaml" or "./x.yaml"). */
static bool root_name(const char *name)
{
    if (strncmp(name, "./", 2) == 0)
        name += 2;
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

mgo_err mgo_wfm_bundle_extract(const void *tgz, size_t len, const struct mgo_wfm_manifest *m,
                               struct mgo_buf *yamls, char *why, size_t why_len)
{
    if (len > MGO_WFM_MAX_BUNDLE_BYTES) {
        snprintf(why, why_len, "bundle: %zu bytes, more than the %u allowed", len,
                 MGO_WFM_MAX_BUNDLE_BYTES);
        return MGO_ERR_LIMIT;
    }
    char got[MGO_DIGEST_STR_SIZE];
    mgo_err err = mgo_digest_sha256(tgz, len, got);
    if (err != MGO_OK) {
        snprintf(why, why_len, "bundle: sha256 not computed");
        return err;
    }
    if (!m->has_bundle || !mgo_digest_equal(got, m->bundle_digest)) {
        snprintf(why, why_len, "bundle: digest mismatch: the manifest says %s, the bytes are %s",
                 m->has_bundle ? m->bundle_digest : "(none)", got);
        return MGO_ERR_CRYPTO;
    }
    struct archive *a = archive_read_new();
    if (a == NULL)
        return MGO_ERR_NOMEM;
    if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_open_memory(a, tgz, len) != ARCHIVE_OK) {
        snprintf(why, why_len, "bundle: not a tar+gzip archive (%s)", archive_error_string(a));
        archive_read_free(a);
        return MGO_ERR_PARSE;
    }
    struct mgo_buf file;
    mgo_buf_init(&file, MGO_WFM_MAX_YAML_BYTES);
    size_t files = 0, unpacked = 0;
    struct archive_entry *e;
    int rc;
    while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (name == NULL)
            name = "";
        if (++files > MGO_WFM_MAX_BUNDLE_FILES) {
            snprintf(why, why_len, "bundle: more than %u entries", MGO_WFM_MAX_BUNDLE_FILES);
            err = MGO_ERR_LIMIT;
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG || !root_name(name)) {
            snprintf(why, why_len, "bundle: entry \"%.80s\" is not a regular file at the root",
                     name);
            err = MGO_ERR_INVALID;
            break;
        }
        la_int64_t size = archive_entry_size(e);
        if (size < 0 || (uint64_t)size > MGO_WFM_MAX_YAML_BYTES ||
            unpacked + (size_t)size > MGO_WFM_MAX_BUNDLE_UNPACKED) {
            snprintf(why, why_len, "bundle: entry \"%.80s\" too large", name);
            err = MGO_ERR_LIMIT;
            break;
        }
        mgo_buf_reset(&file);
        char block[16384];
        la_ssize_t n;
        while ((n = archive_read_data(a, block, sizeof block)) > 0 && err == MGO_OK)
            err = mgo_buf_append(&file, block, (size_t)n);
        if (n < 0) {
            snprintf(why, why_len, "bundle: entry \"%.80s\": %s", name, archive_error_string(a));
            err = MGO_ERR_PARSE;
        } else if (err != MGO_OK) {
            snprintf(why, why_len, "bundle: entry \"%.80s\" too large", name);
        }
        if (err != MGO_OK)
            break;
        unpacked += file.len;
        char d[MGO_DIGEST_STR_SIZE];
        err = mgo_digest_sha256(file.data ? (const void *)file.data : "", file.len, d);
        for (size_t i = 0; err == MGO_OK && i < m->len; i++)
            if (mgo_digest_equal(d, m->refs[i].digest) && yamls[i].len == 0 && file.len > 0)
                err = mgo_buf_append(&yamls[i], file.data, file.len);
        if (err != MGO_OK) {
            snprintf(why, why_len, "bundle: entry \"%.80s\": %s", name, mgo_strerror(err));
            break;
        }
    }
    if (err == MGO_OK && rc != ARCHIVE_EOF) {
        snprintf(why, why_len, "bundle: not a valid tar+gzip archive (%s)",
                 archive_error_string(a));
        err = MGO_ERR_PARSE;
    }
    for (size_t i = 0; err == MGO_OK && i < m->len; i++) {
        if (yamls[i].len == 0) {
            snprintf(why, why_len, "bundle: no file with the digest %s of deployment %s",
                     m->refs[i].digest, m->refs[i].id);
            err = MGO_ERR_INVALID;
        }
    }
    mgo_buf_cleanup(&file);
    archive_read_free(a);
    return err;
}
