/* ctl_validate.c - `margoctl validate FILE...`: checks Margo documents (YAML, JSON or
 * MessagePack), detects their kind and prints every problem with its field path and rule. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mgo/ctl.h"
#include "mgo/limits.h"
#include "mgo/margo.h"

static void usage(FILE *out)
{
    fputs("usage: margoctl validate [--json] [--format auto|yaml|json|msgpack] FILE...\n"
          "\n"
          "Checks each Margo document (ApplicationDescription, ApplicationDeployment,\n"
          "DesiredStateManifest, DeploymentStatusManifest, DeviceCapabilitiesManifest,\n"
          "ProblemDetail, and margo-mqtt presence/event messages). The kind is detected from\n"
          "the document's fields. '-' reads standard input. With --format auto, files ending in\n"
          ".msgpack or .mpk are read as MessagePack, everything else as YAML/JSON.\n"
          "\n"
          "Exit status: 0 all valid, 1 any invalid or unreadable, 2 usage error.\n",
          out);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Validates one file; fills kind/problems. Returns true when valid. */
static bool check_file(const char *path, const char *format, struct mgo_arena *arena,
                       enum mgo_doc_kind *kind, struct mgo_problems *problems)
{
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_FILE_BYTES);
    mgo_err err;
    if (strcmp(path, "-") == 0) {
        err = MGO_OK;
        char chunk[8192];
        size_t n;
        while (err == MGO_OK && (n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
            err = mgo_buf_append(&buf, chunk, n);
    } else {
        err = mgo_buf_read_file(&buf, path);
    }
    *kind = MGO_DOC_UNKNOWN;
    if (err != MGO_OK) {
        mgo_problems_add(problems, "$", "cannot read: %s",
                         err == MGO_ERR_LIMIT ? "larger than MGO_MAX_FILE_BYTES (1 MiB)"
                                              : mgo_strerror(err));
        mgo_buf_cleanup(&buf);
        return false;
    }
    enum mgo_format fmt = MGO_FORMAT_YAML;
    if (strcmp(format, "msgpack") == 0 ||
        (strcmp(format, "auto") == 0 && (ends_with(path, ".msgpack") || ends_with(path, ".mpk"))))
        fmt = MGO_FORMAT_MSGPACK;
    err = mgo_doc_validate(buf.data ? buf.data : (const uint8_t *)"", buf.len, fmt, arena, kind,
                           NULL, problems);
    mgo_buf_cleanup(&buf);
    return err == MGO_OK;
}

static int print_json(struct mgo_arena *arena, struct mgo_value *results)
{
    struct mgo_buf out;
    mgo_buf_init(&out, 64u * 1024u * 1024u);
    mgo_err err = mgo_value_to_json(results, true, &out);
    if (err == MGO_OK) {
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
    } else {
        fprintf(stderr, "margoctl validate: cannot write JSON: %s\n", mgo_strerror(err));
    }
    mgo_buf_cleanup(&out);
    (void)arena;
    return err == MGO_OK ? 0 : 1;
}

int mgo_ctl_validate(int argc, char **argv)
{
    bool json = false;
    const char *format = "auto";
    int first = 1;
    for (; first < argc; first++) {
        const char *a = argv[first];
        if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--format") == 0 && first + 1 < argc) {
            format = argv[++first];
            if (strcmp(format, "auto") && strcmp(format, "yaml") && strcmp(format, "json") &&
                strcmp(format, "msgpack")) {
                fprintf(stderr, "margoctl validate: --format must be auto, yaml, json or msgpack\n");
                return 2;
            }
        } else if (strcmp(a, "--") == 0) {
            first++;
            break;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "margoctl validate: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (first >= argc) {
        usage(stderr);
        return 2;
    }

    struct mgo_arena out_arena; /* holds the JSON result tree */
    mgo_arena_init(&out_arena, 256u * 1024u * 1024u);
    size_t nfiles = (size_t)(argc - first);
    struct mgo_value results;
    if (mgo_value_array_new(&out_arena, nfiles, &results) != MGO_OK) {
        fprintf(stderr, "margoctl validate: out of memory\n");
        return 1;
    }
    int status = 0;
    for (size_t i = 0; i < nfiles; i++) {
        const char *path = argv[first + (int)i];
        struct mgo_arena arena;
        mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
        struct mgo_problems problems;
        mgo_problems_init(&problems);
        enum mgo_doc_kind kind;
        bool ok = check_file(path, format, &arena, &kind, &problems);
        if (!ok)
            status = 1;
        if (json) {
            struct mgo_value list;
            if (mgo_value_array_new(&out_arena, problems.count, &list) != MGO_OK) {
                mgo_arena_cleanup(&arena);
                status = 1;
                break;
            }
            for (size_t k = 0; k < problems.count; k++) {
                struct mgo_map_builder pb;
                mgo_map_builder_init(&pb, &out_arena);
                mgo_map_put_str(&pb, "field", mgo_arena_strdup(&out_arena, problems.items[k].field));
                mgo_map_put_str(&pb, "rule", mgo_arena_strdup(&out_arena, problems.items[k].rule));
                if (mgo_map_builder_finish(&pb, &list.as.array.items[k]) != MGO_OK)
                    status = 1;
            }
            struct mgo_map_builder rb;
            mgo_map_builder_init(&rb, &out_arena);
            mgo_map_put_str(&rb, "file", path);
            mgo_map_put_str(&rb, "kind", mgo_doc_kind_name(kind));
            mgo_map_put_bool(&rb, "valid", ok);
            mgo_map_put(&rb, "problems", &list);
            if (problems.dropped > 0)
                mgo_map_put_uint(&rb, "moreProblems", problems.dropped);
            if (mgo_map_builder_finish(&rb, &results.as.array.items[i]) != MGO_OK)
                status = 1;
        } else {
            printf("%s: %s (%s)\n", path, ok ? "valid" : "INVALID", mgo_doc_kind_name(kind));
            for (size_t k = 0; k < problems.count; k++)
                printf("  %s: %s\n", problems.items[k].field, problems.items[k].rule);
            if (problems.dropped > 0)
                printf("  ... and %zu more problems\n", problems.dropped);
        }
        mgo_arena_cleanup(&arena);
    }
    if (json && print_json(&out_arena, &results) != 0)
        status = 1;
    mgo_arena_cleanup(&out_arena);
    return status;
}
