/* southbound_doc.c - deployment YAML and bundles of the southbound API (southbound_doc.h). */
#include "southbound_doc.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "mgo/limits.h"
#include "mgo/margo.h"
#include "mgo/value.h"

/* ---- YAML -------------------------------------------------------------------------------- */

struct emit {
    yaml_emitter_t e;
    struct mgo_buf *out;
    mgo_err err;
};

static int write_out(void *data, unsigned char *buffer, size_t size)
{
    struct emit *em = data;
    mgo_err err = mgo_buf_append(em->out, buffer, size);
    if (err && !em->err)
        em->err = err;
    return err ? 0 : 1;
}

static bool event(struct emit *em, yaml_event_t *ev, int init_ok)
{
    if (!init_ok) {
        em->err = MGO_ERR_NOMEM;
        return false;
    }
    if (!yaml_emitter_emit(&em->e, ev)) { /* the emitter frees the event either way */
        if (!em->err)
            em->err = MGO_ERR_INVALID;
        return false;
    }
    return true;
}

static bool scalar(struct emit *em, const char *text, size_t len, bool plain)
{
    yaml_event_t ev;
    /* a string that is not implicitly plain gets quoted by the emitter; numbers, booleans
     * and null are plain and read back as what they are */
    return event(em, &ev,
                 yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)len,
                                              plain ? 1 : 0, 1, YAML_ANY_SCALAR_STYLE));
}

/* A key that reads back as the same string without quotes (in YAML 1.1 and 1.2). */
static bool plain_word(const char *k)
{
    static const char *const special[] = {"y",   "n",    "yes",   "no",   "on",
                                          "off", "true", "false", "null", "~"};
    if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
        return false;
    for (const char *p = k; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/'))
            return false;
    }
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        if (strcasecmp(k, special[i]) == 0)
            return false;
    }
    return true;
}

static bool emit_value(struct emit *em, const struct mgo_value *v, unsigned depth)
{
    char num[MGO_DOUBLE_STR_SIZE + 8];
    yaml_event_t ev;
    if (depth > MGO_MAX_DEPTH) {
        em->err = MGO_ERR_LIMIT;
        return false;
    }
    switch (v->kind) {
    case MGO_V_NULL:
        return scalar(em, "null", 4, true);
    case MGO_V_BOOL:
        return v->as.b ? scalar(em, "true", 4, true) : scalar(em, "false", 5, true);
    case MGO_V_INT:
        snprintf(num, sizeof num, "%lld", (long long)v->as.i);
        return scalar(em, num, strlen(num), true);
    case MGO_V_UINT:
        snprintf(num, sizeof num, "%llu", (unsigned long long)v->as.u);
        return scalar(em, num, strlen(num), true);
    case MGO_V_FLOAT: {
        size_t n = mgo_format_double(v->as.f, num);
        if (strcmp(num, "inf") == 0 || strcmp(num, "-inf") == 0 || strcmp(num, "nan") == 0 ||
            strcmp(num, "-nan") == 0) {
            em->err = MGO_ERR_INVALID; /* never in a validated document */
            return false;
        }
        /* "24" would read back as an integer: keep it a float */
        if (!strpbrk(num, ".eE") && n + 2 < sizeof num)
            memcpy(num + n, ".0", 3);
        return scalar(em, num, strlen(num), true);
    }
    case MGO_V_STR:
        return scalar(em, v->as.str.ptr, v->as.str.len, false);
    case MGO_V_BIN:
        em->err = MGO_ERR_INVALID;
        return false;
    case MGO_V_ARRAY:
        if (!event(em, &ev,
                   yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                        YAML_BLOCK_SEQUENCE_STYLE)))
            return false;
        for (size_t i = 0; i < v->as.array.len; i++) {
            if (!emit_value(em, &v->as.array.items[i], depth + 1))
                return false;
        }
        return event(em, &ev, yaml_sequence_end_event_initialize(&ev));
    case MGO_V_MAP:
        if (!event(
                em, &ev,
                yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE)))
            return false;
        for (size_t i = 0; i < v->as.map.len; i++) {
            const struct mgo_member *m = &v->as.map.items[i];
            if (depth == 0 && strcmp(m->key, MGO_EXT_KEY) == 0)
                continue; /* the MQTT signature: not part of the served document */
            if (!scalar(em, m->key, m->key_len, plain_word(m->key)) ||
                !emit_value(em, &m->value, depth + 1))
                return false;
        }
        return event(em, &ev, yaml_mapping_end_event_initialize(&ev));
    }
    em->err = MGO_ERR_INVALID;
    return false;
}

mgo_err mgo_sb_deployment_yaml(const uint8_t *doc, size_t len, struct mgo_buf *out)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value tree;
    mgo_err err = mgo_value_from_msgpack(doc, len, &arena, &tree, &p);
    if (err) {
        mgo_arena_cleanup(&arena);
        return err;
    }
    struct emit em = {.out = out, .err = MGO_OK};
    if (!yaml_emitter_initialize(&em.e)) {
        mgo_arena_cleanup(&arena);
        return MGO_ERR_NOMEM;
    }
    yaml_emitter_set_output(&em.e, write_out, &em);
    yaml_emitter_set_unicode(&em.e, 1);
    yaml_emitter_set_width(&em.e, -1); /* no folding: one line per scalar */
    yaml_event_t ev;
    bool ok = event(&em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING)) &&
              event(&em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1)) &&
              emit_value(&em, &tree, 0) &&
              event(&em, &ev, yaml_document_end_event_initialize(&ev, 1)) &&
              event(&em, &ev, yaml_stream_end_event_initialize(&ev));
    if (ok && !yaml_emitter_flush(&em.e) && !em.err)
        em.err = MGO_ERR_IO;
    yaml_emitter_delete(&em.e);
    mgo_arena_cleanup(&arena);
    return em.err;
}

/* ---- bundles ------------------------------------------------------------------------------ */

static la_ssize_t archive_out(struct archive *a, void *ctx, const void *data, size_t len)
{
    (void)a;
    return mgo_buf_append(ctx, data, len) == MGO_OK ? (la_ssize_t)len : -1;
}

mgo_err mgo_sb_bundle(const struct mgo_sb_file *files, size_t n, struct mgo_buf *out)
{
    struct archive *a = archive_write_new();
    if (!a)
        return MGO_ERR_NOMEM;
    mgo_err err = MGO_OK;
    /* deterministic: no gzip timestamp; one block size for the last record */
    if (archive_write_set_format_ustar(a) != ARCHIVE_OK ||
        archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
        archive_write_set_filter_option(a, "gzip", "timestamp", NULL) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open2(a, out, NULL, archive_out, NULL, NULL) != ARCHIVE_OK) {
        err = MGO_ERR_IO;
        goto done;
    }
    for (size_t i = 0; !err && i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        if (!e) {
            err = MGO_ERR_NOMEM;
            break;
        }
        archive_entry_set_pathname(e, files[i].name);
        archive_entry_set_size(e, (la_int64_t)files[i].len);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, 0, 0);
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK ||
            archive_write_data(a, files[i].data, files[i].len) != (la_ssize_t)files[i].len)
            err = MGO_ERR_IO; /* libarchive's own failure, or out full */
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK && !err)
        err = MGO_ERR_IO;
done:
    archive_write_free(a);
    return err;
}
