/* api_rollout.h - the API's rollout routes, device labels and the paged, selector-filtered
 * device list (docs/api.md "Rollouts", docs/rollouts.md). Called by api.c's router on the
 * loop thread; uses rollout.c, labels.c and the store. */
#ifndef MGO_MGR_API_ROLLOUT_H
#define MGO_MGR_API_ROLLOUT_H

#include "api.h"

/* Devices in a list at most per page (?limit=); the default page. */
#define MGO_API_PAGE_MAX 1000u
#define MGO_API_PAGE_DEFAULT 100u
/* Rows one request with a label selector examines at most (GET /devices and GET /deployments):
 * their devices' labels are read on the loop thread, so a selector that matches few rows
 * answers a short (even empty) page whose `next` says where to go on, instead of reading the
 * whole fleet in one go. */
#define MGO_API_SELECTOR_SCAN 1000u
/* Rollout summaries per page of GET /rollouts at most; the default page. */
#define MGO_API_ROLLOUTS_PAGE_MAX 100u
#define MGO_API_ROLLOUTS_PAGE_DEFAULT 20u

/* /api/v1/rollouts[/{id}[/{action}]]: id and action may be NULL. */
void mgo_api_rollout__route(struct mgo_api *api, struct mgo_api_request *req, const char *id,
                            const char *action);
/* /api/v1/devices/{id}/{sub}: sub "labels" (GET, PUT, PATCH). */
void mgo_api_rollout__device_sub(struct mgo_api *api, struct mgo_api_request *req, const char *id,
                                 const char *sub);
/* Whether GET /api/v1/devices asks for the paged form (selector, limit or after given). */
bool mgo_api_rollout__wants_page(const struct mgo_api_request *req);
/* GET /api/v1/devices?selector=&compatible=&version=&limit=&after= */
void mgo_api_rollout__devices_page(struct mgo_api *api, struct mgo_api_request *req);

#endif
