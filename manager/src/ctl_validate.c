/* ctl_validate.c - document commands of margoctl that need no manager:
 *   validate FILE...  checks Margo documents (YAML, JSON or MessagePack), detects their kind
 *                     and prints every problem with its field path and rule;
 *   convert FILE      validates one document and writes it normalised as canonical
 *                     MessagePack or as JSON (what goes on the wire / what monitors see). */
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
          "Exit status: 0 all valid, 1 any invalid or unreadable, 2 usage error.\n"
          "options: --json  --format FORMAT  -h, --help\n",
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
                fprintf(stderr,
                        "margoctl validate: --format must be auto, yaml, json or msgpack\n");
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
                mgo_map_put_str(&pb, "field",
                                mgo_arena_strdup(&out_arena, problems.items[k].field));
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

static void convert_usage(FILE *out)
{
    fputs("usage: margoctl convert [--to json|msgpack] [--format auto|yaml|json|msgpack] FILE\n"
          "\n"
          "Validates one Margo document and writes it normalised (drift between Margo drafts\n"
          "resolved, keys sorted) to standard output: canonical MessagePack as published on\n"
          "the MQTT topics, or JSON (default). Exit status: 0 ok, 1 invalid, 2 usage error.\n"
          "options: --to FORMAT  --format FORMAT  -h, --help\n",
          out);
}

/* Re-encodes a validated tree through its typed codec (normalisation happens there). */
static mgo_err normalise(enum mgo_doc_kind kind, const struct mgo_value *root,
                         struct mgo_arena *arena, struct mgo_value *out,
                         struct mgo_problems *problems)
{
    mgo_err err = MGO_ERR_INVALID;
#define NORMALISE(doc, type)                                                                       \
    do {                                                                                           \
        struct type d;                                                                             \
        err = mgo_##doc##_from_value(root, arena, &d, problems);                                   \
        if (err == MGO_OK)                                                                         \
            err = mgo_##doc##_to_value(&d, arena, out);                                            \
    } while (0)
    switch (kind) {
    case MGO_DOC_APP_DESCRIPTION:
        NORMALISE(app_description, mgo_app_description);
        break;
    case MGO_DOC_APP_DEPLOYMENT:
        NORMALISE(app_deployment, mgo_app_deployment);
        break;
    case MGO_DOC_DESIRED_STATE:
        NORMALISE(desired_state, mgo_desired_state);
        break;
    case MGO_DOC_DEPLOYMENT_STATUS:
        NORMALISE(deployment_status, mgo_deployment_status);
        break;
    case MGO_DOC_CAPABILITIES:
        NORMALISE(capabilities, mgo_capabilities);
        break;
    case MGO_DOC_PRESENCE:
        NORMALISE(presence, mgo_presence);
        break;
    case MGO_DOC_EVENT:
        NORMALISE(event, mgo_event);
        break;
    case MGO_DOC_PROBLEM_DETAIL:
        *out = *root; /* no typed form: validated as is */
        err = MGO_OK;
        break;
    case MGO_DOC_UNKNOWN:
        break;
    }
#undef NORMALISE
    return err;
}

int mgo_ctl_convert(int argc, char **argv)
{
    const char *to = "json", *format = "auto", *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            convert_usage(stdout);
            return 0;
        } else if (strcmp(a, "--to") == 0 && i + 1 < argc) {
            to = argv[++i];
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            format = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "margoctl convert: unknown option '%s'\n", a);
            convert_usage(stderr);
            return 2;
        } else if (path == NULL) {
            path = a;
        } else {
            fprintf(stderr, "margoctl convert: one FILE only\n");
            return 2;
        }
    }
    if (path == NULL || (strcmp(to, "json") != 0 && strcmp(to, "msgpack") != 0) ||
        (strcmp(format, "auto") && strcmp(format, "yaml") && strcmp(format, "json") &&
         strcmp(format, "msgpack"))) {
        convert_usage(stderr);
        return 2;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems problems;
    mgo_problems_init(&problems);
    enum mgo_doc_kind kind;
    int status = 1;
    struct mgo_buf buf, out;
    mgo_buf_init(&buf, MGO_MAX_FILE_BYTES);
    mgo_buf_init(&out, MGO_MAX_FILE_BYTES * 4);
    mgo_err err = strcmp(path, "-") == 0 ? MGO_ERR_INVALID : mgo_buf_read_file(&buf, path);
    if (strcmp(path, "-") == 0) {
        char chunk[8192];
        size_t n;
        err = MGO_OK;
        while (err == MGO_OK && (n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
            err = mgo_buf_append(&buf, chunk, n);
    }
    if (err != MGO_OK) {
        fprintf(stderr, "margoctl convert: %s: %s\n", path, mgo_strerror(err));
        goto out;
    }
    enum mgo_format fmt = MGO_FORMAT_YAML;
    if (strcmp(format, "msgpack") == 0 ||
        (strcmp(format, "auto") == 0 && (ends_with(path, ".msgpack") || ends_with(path, ".mpk"))))
        fmt = MGO_FORMAT_MSGPACK;
    struct mgo_value root, norm;
    err = mgo_doc_validate(buf.data ? buf.data : (const uint8_t *)"", buf.len, fmt, &arena, &kind,
                           &root, &problems);
    if (err == MGO_OK)
        err = normalise(kind, &root, &arena, &norm, &problems);
    if (err != MGO_OK) {
        fprintf(stderr, "%s: INVALID (%s)\n", path, mgo_doc_kind_name(kind));
        for (size_t k = 0; k < problems.count; k++)
            fprintf(stderr, "  %s: %s\n", problems.items[k].field, problems.items[k].rule);
        goto out;
    }
    err = strcmp(to, "msgpack") == 0 ? mgo_value_to_msgpack(&norm, &out)
                                     : mgo_value_to_json(&norm, true, &out);
    if (err == MGO_OK && strcmp(to, "json") == 0)
        err = mgo_buf_append(&out, "\n", 1);
    if (err != MGO_OK) {
        fprintf(stderr, "margoctl convert: cannot encode: %s\n", mgo_strerror(err));
        goto out;
    }
    if (fwrite(out.data, 1, out.len, stdout) == out.len && fflush(stdout) == 0)
        status = 0;
out:
    mgo_buf_cleanup(&buf);
    mgo_buf_cleanup(&out);
    mgo_arena_cleanup(&arena);
    return status;
}
