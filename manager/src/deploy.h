/* deploy.h - deploy, update/reconfigure and remove. Each operation validates everything
 * first and adds problems (field, rule); store changes happen in one transaction, then
 * publishing (publish.c). Loop thread only. */
#ifndef MGO_MGR_DEPLOY_H
#define MGO_MGR_DEPLOY_H

#include <stddef.h>

#include "mgr_internal.h"
#include "publish.h"
#include "mgo/limits.h"
#include "mgo/mgr_store.h"
#include "mgo/problems.h"
#include "mgo/value.h"

struct mgo_deploy_request {
    const char *app_id;
    const char *version;        /* NULL = newest */
    const char *const *devices; /* 1..MGO_MAX_DEPLOY_DEVICES */
    size_t devices_len;
    const struct mgo_value *answers; /* map or NULL */
};

/* ids_out receives devices_len deployment ids. MGO_ERR_INVALID (problems), store errors. */
mgo_err mgo_deploy__create(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                           const struct mgo_deploy_request *req, char (*ids_out)[MGO_UUID_STR_SIZE],
                           struct mgo_problems *problems) MGO_MUST_CHECK;
/* version NULL = keep; answers NULL = keep. MGO_ERR_NOT_FOUND, MGO_ERR_CONFLICT (being
 * removed), MGO_ERR_INVALID (problems), store errors. */
mgo_err mgo_deploy__update(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                           const char *deployment_id, const char *version,
                           const struct mgo_value *answers,
                           struct mgo_problems *problems) MGO_MUST_CHECK;
/* MGO_ERR_NOT_FOUND, store errors; MGO_OK when it is already on its way out. */
mgo_err mgo_deploy__remove(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                           const char *deployment_id) MGO_MUST_CHECK;

/* The _quiet forms store the same change (in a savepoint, so inside the caller's transaction
 * when one is open) but publish nothing: the caller publishes once its own transaction is
 * committed (mgo_publish__device for a create or update, mgo_deploy__publish_removed for a
 * removal). Used by rollouts (rollout.c), whose progress is stored with the change. */
mgo_err mgo_deploy__create_quiet(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                                 const struct mgo_deploy_request *req,
                                 char (*ids_out)[MGO_UUID_STR_SIZE],
                                 struct mgo_problems *problems) MGO_MUST_CHECK;
mgo_err mgo_deploy__update_quiet(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                                 const char *deployment_id, const char *version,
                                 const struct mgo_value *answers,
                                 struct mgo_problems *problems) MGO_MUST_CHECK;
mgo_err mgo_deploy__remove_quiet(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                                 const char *deployment_id) MGO_MUST_CHECK;
/* Publishes a device's manifest after a removal and clears the removed deployment's document
 * when its device never reported it. */
void mgo_deploy__publish_removed(struct mgo_publisher *pub, const char *device_id,
                                 const char *deployment_id);

#endif
