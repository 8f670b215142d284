/* test_caps.c - capability detection against a fake /sys + /dev tree, config overrides,
 * and the published document round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caps.h"
#include "mgo_test.h"
#include "state.h"

static char root[256];

static void touch(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    char d[512];
    snprintf(d, sizeof d, "%s", p);
    *strrchr(d, '/') = '\0';
    CU_ASSERT_FATAL(mgo_agent__mkdir_p(d) == MGO_OK);
    FILE *f = fopen(p, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("1\n", f);
    fclose(f);
}

static bool has_iface(const struct mgo_capabilities *c, enum mgo_interface_type t)
{
    for (size_t i = 0; i < c->interfaces_len; i++)
        if (c->interfaces[i] == t)
            return true;
    return false;
}

static void test_detect_fake_host(void)
{
    mgo_test_tmpdir("agent-caps", root);
    touch("sys/class/net/lo/type");
    touch("sys/class/net/eth0/type");
    touch("sys/class/net/wlp2s0/wireless/x");
    touch("sys/class/net/can0/type");
    touch("dev/dri/renderD128");
    char p[512];
    snprintf(p, sizeof p, "%s/sys/class/dmi/id", root);
    CU_ASSERT_FATAL(mgo_agent__mkdir_p(p) == MGO_OK);
    snprintf(p, sizeof p, "%s/sys/class/dmi/id/sys_vendor", root);
    FILE *f = fopen(p, "w");
    fputs("Acme Edge \n", f);
    fclose(f);

    const char *labels[] = {"site=plant-7", "example.com/line=3"};
    const char *periph[] = {"camera:Basler:ace2"};
    struct mgo_caps_config cfg = {
        .device_id = "dev-1",
        .storage_path = root,
        .otel_collector = true,
        .compose_available = true,
        .helm_available = false,
        .labels = labels,
        .labels_len = 2,
        .peripherals = periph,
        .peripherals_len = 1,
        .sys_root = root,
        .memory = "4Gi",
    };
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_capabilities caps;
    char why[256] = "";
    CU_ASSERT_FATAL(mgo_caps_detect(&cfg, &arena, &caps, why, sizeof why) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(caps.id, "dev-1");
    CU_ASSERT_STRING_EQUAL(caps.vendor, "Acme Edge");
    CU_ASSERT_STRING_EQUAL(caps.model_number, "unknown");
    CU_ASSERT(caps.cpus_len == 1 && caps.cpus[0].cores >= 1);
    CU_ASSERT(caps.cpus[0].archs != 0);
    CU_ASSERT_EQUAL(caps.memory_bytes, 4ull << 30);
    CU_ASSERT(caps.storage_bytes > 0);
    CU_ASSERT(has_iface(&caps, MGO_IFACE_ETHERNET));
    CU_ASSERT(has_iface(&caps, MGO_IFACE_WIFI));
    CU_ASSERT(has_iface(&caps, MGO_IFACE_CANBUS));
    CU_ASSERT_EQUAL(caps.interfaces_len, 3); /* lo skipped */
    CU_ASSERT_EQUAL_FATAL(caps.peripherals_len, 2);
    CU_ASSERT_EQUAL(caps.peripherals[0].type, MGO_PERIPH_GPU);
    CU_ASSERT_EQUAL(caps.peripherals[1].type, MGO_PERIPH_CAMERA);
    CU_ASSERT_STRING_EQUAL(caps.peripherals[1].manufacturer, "Basler");
    CU_ASSERT_EQUAL(caps.deployment_types, MGO_DTYPE_COMPOSE);
    CU_ASSERT(caps.otel_collector);
    const struct mgo_value *site = mgo_value_get(caps.labels, "site");
    CU_ASSERT(site != NULL && strcmp(site->as.str.ptr, "plant-7") == 0);

    /* the published document decodes back to the same facts */
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_capabilities_encode(&caps, &buf) == MGO_OK);
    struct mgo_arena a2;
    mgo_arena_init(&a2, 1u << 20);
    struct mgo_capabilities back;
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    mgo_err derr = mgo_capabilities_decode(buf.data, buf.len, &a2, &back, &probs);
    if (derr != MGO_OK) {
        char text[1024];
        mgo_problems_format(&probs, text, sizeof text);
        fprintf(stderr, "decode: %s\n", text);
    }
    CU_ASSERT_FATAL(derr == MGO_OK);
    CU_ASSERT_EQUAL(back.deployment_types, MGO_DTYPE_COMPOSE);
    CU_ASSERT_EQUAL(back.memory_bytes, 4ull << 30);
    CU_ASSERT_EQUAL(back.interfaces_len, 3);
    mgo_arena_cleanup(&a2);
    mgo_buf_cleanup(&buf);

    /* bad overrides are refused with the field named */
    cfg.memory = "4 Gi";
    CU_ASSERT(mgo_caps_detect(&cfg, &arena, &caps, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "memory") != NULL);
    cfg.memory = NULL;
    const char *bad_labels[] = {"novalue"};
    cfg.labels = bad_labels;
    cfg.labels_len = 1;
    CU_ASSERT(mgo_caps_detect(&cfg, &arena, &caps, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "label") != NULL);
    cfg.labels_len = 0;
    const char *bad_periph[] = {"toaster"};
    cfg.peripherals = bad_periph;
    CU_ASSERT(mgo_caps_detect(&cfg, &arena, &caps, why, sizeof why) == MGO_ERR_INVALID);
    mgo_arena_cleanup(&arena);
    CU_ASSERT(mgo_agent__rm_rf(root) == MGO_OK);
}

static void test_detect_real_host(void)
{
    struct mgo_caps_config cfg = {.device_id = "dev-2",
                                  .storage_path = "/tmp",
                                  .compose_available = true,
                                  .helm_available = true};
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_capabilities caps;
    char why[256];
    CU_ASSERT_FATAL(mgo_caps_detect(&cfg, &arena, &caps, why, sizeof why) == MGO_OK);
    CU_ASSERT(caps.memory_bytes > 0);
    CU_ASSERT(caps.storage_bytes > 0);
    CU_ASSERT(caps.cpus[0].cores >= 1);
    CU_ASSERT_EQUAL(caps.deployment_types, MGO_DTYPE_COMPOSE | MGO_DTYPE_HELM);
    mgo_arena_cleanup(&arena);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"detect on a fake host tree", test_detect_fake_host},
        {"detect on this host", test_detect_real_host},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.caps", cases);
}
