/* fuzz_config.c - libFuzzer harness for mgo_cfg_load_text (the `key value` config parser).
 *
 * The input is a whole config file under a small table with one option of each type.
 * Invariants checked (abort() on violation, so libFuzzer reports a crash):
 *   - the result is one of the documented classes;
 *   - a file refused as invalid or unparsable names at least one problem;
 *   - after success every value respects its table bounds;
 *   - mgo_cfg_cleanup frees everything (libFuzzer's leak check runs on every input). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/config.h"
#include "mgo/log.h"
#include "mgo/problems.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: invariant failed: %s (line %d)\n", #cond, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fuzz_cfg {
    char *broker_url;
    char *device_id;
    int64_t port;
    int64_t retries;
    bool tls;
    struct mgo_strlist subscribe;
};

#define URL_MAX 256
#define DEVICE_MAX 128

static const struct mgo_cfg_option OPTIONS[] = {
    {"broker-url", MGO_CFG_STR, offsetof(struct fuzz_cfg, broker_url), 0, URL_MAX,
     "mqtt://127.0.0.1:1883", "broker URL"},
    {"device-id", MGO_CFG_STR, offsetof(struct fuzz_cfg, device_id), 0, DEVICE_MAX, NULL,
     "device id"},
    {"port", MGO_CFG_INT, offsetof(struct fuzz_cfg, port), 1, 65535, "1883", "TCP port"},
    {"retries", MGO_CFG_INT, offsetof(struct fuzz_cfg, retries), -1, 1000, "3",
     "retries (-1 = forever)"},
    {"tls", MGO_CFG_BOOL, offsetof(struct fuzz_cfg, tls), 0, 0, "false", "use TLS"},
    {"subscribe", MGO_CFG_LIST, offsetof(struct fuzz_cfg, subscribe), 0, 0, NULL,
     "extra filter (repeatable)"},
};
#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Refusals are expected on most inputs; keep the fuzzer's output readable. */
    mgo_log_set_level(MGO_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_cfg cfg;
    struct mgo_problems problems;

    memset(&cfg, 0, sizeof cfg);
    mgo_problems_init(&problems);
    if (mgo_cfg_defaults(OPTIONS, N_OPTIONS, &cfg) != MGO_OK) {
        mgo_cfg_cleanup(OPTIONS, N_OPTIONS, &cfg);
        return 0;
    }

    mgo_err err = mgo_cfg_load_text(OPTIONS, N_OPTIONS, &cfg, (const char *)data, size, "fuzz.conf",
                                    &problems);
    CHECK(err == MGO_OK || err == MGO_ERR_INVALID || err == MGO_ERR_PARSE || err == MGO_ERR_LIMIT ||
          err == MGO_ERR_NOMEM);
    if (err == MGO_ERR_INVALID || err == MGO_ERR_PARSE)
        CHECK(mgo_problems_total(&problems) > 0);
    if (err == MGO_OK) {
        CHECK(cfg.broker_url == NULL || strlen(cfg.broker_url) <= URL_MAX);
        CHECK(cfg.device_id == NULL || strlen(cfg.device_id) <= DEVICE_MAX);
        CHECK(cfg.port >= 1 && cfg.port <= 65535);
        CHECK(cfg.retries >= -1 && cfg.retries <= 1000);
        CHECK(cfg.subscribe.len == 0 || cfg.subscribe.items != NULL);
        for (size_t i = 0; i < cfg.subscribe.len; i++)
            CHECK(cfg.subscribe.items[i] != NULL);
    }
    char text[1024];
    mgo_problems_format(&problems, text, sizeof text);
    CHECK(strlen(text) < sizeof text);

    mgo_cfg_cleanup(OPTIONS, N_OPTIONS, &cfg);
    return 0;
}
