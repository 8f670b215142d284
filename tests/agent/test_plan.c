/* test_plan.c - plan computation: install / update / reconfigure / retry / remove / no-op,
 * anti-rollback, digest mismatch, missing documents. */
#include <stdio.h>
#include <string.h>

#include "mgo_test.h"
#include "mgo/plan.h"

#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
static const char *DA1 = H("a"), *DA2 = H("b"), *DB1 = H("c"), *DC1 = H("d");
static const char *P1 = H("1"), *P2 = H("2"), *F1 = H("5"), *F2 = H("6");

static struct mgo_desired_ref refs[4];
static struct mgo_desired_state manifest;

static void set_manifest(uint64_t version, size_t n, const char *const *ids,
                         const char *const *digests)
{
    memset(&manifest, 0, sizeof manifest);
    memset(refs, 0, sizeof refs);
    manifest.manifest_version = version;
    for (size_t i = 0; i < n; i++) {
        refs[i].deployment_id = ids[i];
        refs[i].digest = digests[i];
    }
    manifest.deployments = refs;
    manifest.deployments_len = n;
}

static struct mgo_plan_installed rec(const char *id, const char *digest, const char *params,
                                     const char *profile, bool ok)
{
    struct mgo_plan_installed r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.desired_digest, sizeof r.desired_digest, "%s", digest);
    snprintf(r.installed_digest, sizeof r.installed_digest, "%s", digest);
    (void)params; /* the planner decides on the profile; parameters follow the document */
    snprintf(r.profile_hash, sizeof r.profile_hash, "%s", profile);
    r.installed_ok = ok;
    return r;
}

static const struct mgo_plan_item *item(const struct mgo_plan *p, const char *id)
{
    for (size_t i = 0; i < p->len; i++)
        if (strcmp(p->items[i].deployment_id, id) == 0)
            return &p->items[i];
    return NULL;
}

static struct mgo_plan plan;

static void test_install_noop_remove(void)
{
    const char *ids[] = {"a", "b"};
    const char *dg[] = {DA1, DB1};
    set_manifest(3, 2, ids, dg);
    struct mgo_plan_doc docs[] = {{"a", DA1, P1, F1}, {"b", DB1, P1, F1}};
    struct mgo_plan_installed recs[] = {rec("a", DA1, P1, F1, true), rec("c", DC1, P1, F1, true)};
    CU_ASSERT_FATAL(mgo_plan_compute(2, &manifest, docs, 2, recs, 2, &plan) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(plan.len, 3);
    /* removal first */
    CU_ASSERT_STRING_EQUAL(plan.items[0].deployment_id, "c");
    CU_ASSERT_EQUAL(plan.items[0].action, MGO_PLAN_REMOVE);
    CU_ASSERT_EQUAL(item(&plan, "a")->action, MGO_PLAN_NOOP);
    CU_ASSERT_EQUAL(item(&plan, "b")->action, MGO_PLAN_INSTALL);
    CU_ASSERT_PTR_EQUAL(item(&plan, "b")->doc, &docs[1]);
    CU_ASSERT_EQUAL(plan.manifest_version, 3);
}

static void test_update_vs_reconfigure(void)
{
    const char *ids[] = {"a"};
    const char *dg[] = {DA2};
    set_manifest(5, 1, ids, dg);
    struct mgo_plan_installed recs[] = {rec("a", DA1, P1, F1, true)};
    /* only the parameters changed */
    struct mgo_plan_doc reconf[] = {{"a", DA2, P2, F1}};
    CU_ASSERT_FATAL(mgo_plan_compute(4, &manifest, reconf, 1, recs, 1, &plan) == MGO_OK);
    CU_ASSERT_EQUAL(item(&plan, "a")->action, MGO_PLAN_RECONFIGURE);
    /* the profile changed (new application version) */
    struct mgo_plan_doc upd[] = {{"a", DA2, P1, F2}};
    CU_ASSERT_FATAL(mgo_plan_compute(4, &manifest, upd, 1, recs, 1, &plan) == MGO_OK);
    CU_ASSERT_EQUAL(item(&plan, "a")->action, MGO_PLAN_UPDATE);
}

static void test_retry_after_failure_or_interruption(void)
{
    const char *ids[] = {"a"};
    const char *dg[] = {DA1};
    set_manifest(8, 1, ids, dg);
    struct mgo_plan_doc docs[] = {{"a", DA1, P1, F1}};
    struct mgo_plan_installed failed = rec("a", DA1, P1, F1, false);
    CU_ASSERT_FATAL(mgo_plan_compute(7, &manifest, docs, 1, &failed, 1, &plan) == MGO_OK);
    CU_ASSERT_EQUAL(item(&plan, "a")->action, MGO_PLAN_RETRY);
    /* an update to DA2 was interrupted; the new manifest goes back to DA1 */
    struct mgo_plan_installed moving = rec("a", DA1, P1, F1, true);
    snprintf(moving.desired_digest, sizeof moving.desired_digest, "%s", DA2);
    CU_ASSERT_FATAL(mgo_plan_compute(7, &manifest, docs, 1, &moving, 1, &plan) == MGO_OK);
    CU_ASSERT_EQUAL(item(&plan, "a")->action, MGO_PLAN_RETRY);
    /* a removal was pending but the deployment is back */
    struct mgo_plan_installed removing = rec("a", DA1, P1, F1, true);
    removing.remove = true;
    CU_ASSERT_FATAL(mgo_plan_compute(7, &manifest, docs, 1, &removing, 1, &plan) == MGO_OK);
    CU_ASSERT_EQUAL(item(&plan, "a")->action, MGO_PLAN_RETRY);
}

static void test_anti_rollback(void)
{
    const char *ids[] = {"a"};
    const char *dg[] = {DA1};
    struct mgo_plan_doc docs[] = {{"a", DA1, P1, F1}};
    set_manifest(4, 1, ids, dg);
    CU_ASSERT(mgo_plan_compute(5, &manifest, docs, 1, NULL, 0, &plan) == MGO_ERR_STALE);
    CU_ASSERT_EQUAL(plan.len, 0);
    CU_ASSERT(strstr(plan.why, "not greater") != NULL);
    CU_ASSERT(mgo_plan_compute(4, &manifest, docs, 1, NULL, 0, &plan) == MGO_ERR_STALE);
    CU_ASSERT(mgo_plan_compute(3, &manifest, docs, 1, NULL, 0, &plan) == MGO_OK);
    set_manifest(UINT64_MAX, 1, ids, dg);
    CU_ASSERT(mgo_plan_compute(UINT64_MAX - 1, &manifest, docs, 1, NULL, 0, &plan) == MGO_OK);
}

static void test_digest_mismatch_and_missing(void)
{
    const char *ids[] = {"a", "b"};
    const char *dg[] = {DA2, DB1};
    set_manifest(2, 2, ids, dg);
    struct mgo_plan_installed recs[] = {rec("x", DC1, P1, F1, true)};
    struct mgo_plan_doc stale[] = {{"a", DA1, P1, F1}, {"b", DB1, P1, F1}};
    CU_ASSERT(mgo_plan_compute(1, &manifest, stale, 2, recs, 1, &plan) == MGO_ERR_CRYPTO);
    CU_ASSERT_STRING_EQUAL(plan.why_deployment, "a");
    CU_ASSERT_EQUAL(plan.len, 0); /* nothing, not even the removal of x, is planned */
    struct mgo_plan_doc partial[] = {{"a", DA2, P1, F1}};
    CU_ASSERT(mgo_plan_compute(1, &manifest, partial, 1, recs, 1, &plan) == MGO_ERR_NOT_FOUND);
    CU_ASSERT_STRING_EQUAL(plan.why_deployment, "b");
    CU_ASSERT_EQUAL(plan.len, 0);
    /* both versions of a present: the matching one is used */
    struct mgo_plan_doc both[] = {{"a", DA1, P1, F1}, {"a", DA2, P1, F1}, {"b", DB1, P1, F1}};
    CU_ASSERT(mgo_plan_compute(1, &manifest, both, 3, recs, 1, &plan) == MGO_OK);
    CU_ASSERT_PTR_EQUAL(item(&plan, "a")->doc, &both[1]);
}

static void test_invalid_manifest(void)
{
    const char *ids[] = {"a", "a"};
    const char *dg[] = {DA1, DA1};
    struct mgo_plan_doc docs[] = {{"a", DA1, P1, F1}};
    set_manifest(2, 2, ids, dg);
    CU_ASSERT(mgo_plan_compute(1, &manifest, docs, 1, NULL, 0, &plan) == MGO_ERR_INVALID);
    const char *bad_ids[] = {"a/b"};
    set_manifest(2, 1, bad_ids, dg);
    CU_ASSERT(mgo_plan_compute(1, &manifest, docs, 1, NULL, 0, &plan) == MGO_ERR_INVALID);
    const char *bad_dg[] = {"md5:abc"};
    set_manifest(2, 1, ids, bad_dg);
    CU_ASSERT(mgo_plan_compute(1, &manifest, docs, 1, NULL, 0, &plan) == MGO_ERR_INVALID);
}

static void test_empty_manifest_removes_all(void)
{
    set_manifest(9, 0, NULL, NULL);
    struct mgo_plan_installed recs[] = {rec("a", DA1, P1, F1, true), rec("b", DB1, P1, F1, false)};
    CU_ASSERT_FATAL(mgo_plan_compute(1, &manifest, NULL, 0, recs, 2, &plan) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(plan.len, 2);
    CU_ASSERT_EQUAL(plan.items[0].action, MGO_PLAN_REMOVE);
    CU_ASSERT_EQUAL(plan.items[1].action, MGO_PLAN_REMOVE);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"install, no-op, remove", test_install_noop_remove},
        {"update vs reconfigure", test_update_vs_reconfigure},
        {"retry after failure or interruption", test_retry_after_failure_or_interruption},
        {"anti-rollback", test_anti_rollback},
        {"digest mismatch and missing documents", test_digest_mismatch_and_missing},
        {"invalid manifest", test_invalid_manifest},
        {"empty manifest removes everything", test_empty_manifest_removes_all},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.plan", cases);
}
