/* lookup.h - stored documents decoded for use: an app version of the catalog, a device's
 * capabilities (deploy.c and api.c read them; nothing here writes). */
#ifndef MGO_MGR_LOOKUP_H
#define MGO_MGR_LOOKUP_H

#include "mgo/arena.h"
#include "mgo/margo.h"
#include "mgo/mgr_store.h"
#include "mgo/value.h"

/* Loads an app version (NULL = newest) from the store into arena. MGO_ERR_NOT_FOUND, store
 * errors, or the decoder's error when the stored document no longer validates. */
mgo_err mgo_lookup__app(struct mgo_mgr_store *store, const char *id, const char *version,
                        struct mgo_arena *arena, struct mgo_app_description *app,
                        struct mgo_value *tree) MGO_MUST_CHECK;
/* Loads a device's capabilities; MGO_ERR_NOT_FOUND when the device never sent any. */
mgo_err mgo_lookup__caps(struct mgo_mgr_store *store, const char *device_id,
                         struct mgo_arena *arena, struct mgo_capabilities *caps,
                         struct mgo_value *tree) MGO_MUST_CHECK;

#endif
