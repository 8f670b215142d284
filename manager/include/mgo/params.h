/* params.h - parameter answers and ApplicationDeployment construction.
 *
 * Answers are a map parameter name -> value (from the API's JSON body). Rules:
 *   - every answer names a parameter of the application that has a configuration setting
 *     (unknown names and non-configurable parameters are refused);
 *   - every setting's value (answer, else the value already deployed, else the
 *     description's default) passes its schema (mgo_schema_check);
 *   - an immutable setting keeps the value it was first deployed with.
 * One problem per bad field, under "parameters.<name>". Pure: no I/O. */
#ifndef MGO_PARAMS_H
#define MGO_PARAMS_H

#include "mgo/limits.h"
#include "mgo/margo.h"

/* answers: map or NULL (no answers). previous: the map of values of the deployment being
 * changed, or NULL for a first deploy. On success *resolved receives the final map of
 * every parameter that has a value (allocated in arena). MGO_ERR_INVALID with problems
 * otherwise. */
mgo_err mgo_params_resolve(const struct mgo_app_description *app, const struct mgo_value *answers,
                           const struct mgo_value *previous, struct mgo_arena *arena,
                           struct mgo_value *resolved,
                           struct mgo_problems *problems) MGO_MUST_CHECK;

/* Fills *out (pointers into app, resolved and arena) with the ApplicationDeployment of
 * deployment_id for device_id using profile (one of app's profiles). Parameters keep only
 * the targets aimed at this profile's components; a parameter with none left, or without
 * a value, is left out. */
mgo_err mgo_params_build_deployment(const struct mgo_app_description *app,
                                    const struct mgo_profile *profile,
                                    const struct mgo_value *resolved, const char *deployment_id,
                                    const char *device_id, struct mgo_arena *arena,
                                    struct mgo_app_deployment *out) MGO_MUST_CHECK;

/* A random version-4 UUID (lowercase) from getrandom(). */
mgo_err mgo_params_new_uuid(char out[MGO_UUID_STR_SIZE]) MGO_MUST_CHECK;

#endif
