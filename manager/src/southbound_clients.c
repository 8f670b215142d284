/* southbound_clients.c - the accepted-client list on the northbound API (southbound.h,
 * docs/margo-http.md "Enrolling a device", docs/api.md): GET /api/v1/clients,
 * PUT /api/v1/clients/{id} (allow), DELETE /api/v1/clients/{id} (deny). Loop thread. */
#include <stdio.h>
#include <string.h>

#include "jw.h"
#include "southbound.h"
#include "southbound_id.h"
#include "mgo/log.h"

#define TAG "clients"
/* the northbound API's problem types (docs/api.md "Errors") */
#define NB_SEMANTIC_ERROR "https://docs.margo.org/specification/problem-types#semantic-error"

static mgo_err client_visit(const char *id, int64_t added_ms, void *c)
{
    struct mgo_jw *w = c;
    mgo_jw_obj(w);
    mgo_jw_kstr(w, "id", id);
    mgo_jw_ktime(w, "added", added_ms);
    mgo_jw_obj_end(w);
    return w->err;
}

static void reply_client(struct mgo_mgr_store *store, struct mgo_api_request *req, const char *id,
                         unsigned status)
{
    mgo_buf_reset(&req->reply);
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    mgo_err err = mgo_mgr_store_client_list(store, id, client_visit, &w);
    if (err || w.err) {
        MGO_LOGE(TAG, "%s %s: %s", req->method, req->path, mgo_strerror(err ? err : w.err));
        mgo_api__problem(req, 500, NULL, "Internal Server Error", mgo_strerror(err ? err : w.err),
                         NULL);
        return;
    }
    req->status = status;
    req->content_type = "application/json";
}

void mgo_southbound__clients_api(struct mgo_mgr_store *store, struct mgo_api_request *req,
                                 const char *id)
{
    if (id == NULL) {
        if (strcmp(req->method, "GET") != 0) {
            mgo_api__problem(req, 405, NULL, "Method Not Allowed",
                             "this method is not supported on this resource", NULL);
            return;
        }
        mgo_buf_reset(&req->reply);
        struct mgo_jw w;
        mgo_jw_init(&w, &req->reply);
        mgo_jw_obj(&w);
        mgo_jw_key(&w, "clients");
        mgo_jw_arr(&w);
        mgo_err err = mgo_mgr_store_client_list(store, NULL, client_visit, &w);
        mgo_jw_arr_end(&w);
        mgo_jw_obj_end(&w);
        if (err || w.err) {
            mgo_api__problem(req, 500, NULL, "Internal Server Error",
                             mgo_strerror(err ? err : w.err), NULL);
            return;
        }
        req->status = 200;
        req->content_type = "application/json";
        return;
    }
    if (!mgo_sb_segment_ok(id, MGO_MAX_DEVICE_ID_LEN)) {
        struct mgo_problems p;
        mgo_problems_init(&p);
        mgo_problems_add(&p, "id",
                         "a client id must be 1..%u of [A-Za-z0-9._~-], not \".\" or \"..\"",
                         MGO_MAX_DEVICE_ID_LEN);
        mgo_api__problem(req, 422, NB_SEMANTIC_ERROR, "Unprocessable Content", "not a client id",
                         &p);
        return;
    }
    if (strcmp(req->method, "PUT") == 0) {
        bool added = false;
        mgo_err err = mgo_mgr_store_client_allow(store, id, &added);
        if (err) {
            mgo_api__problem(req, 500, NULL, "Internal Server Error", mgo_strerror(err), NULL);
            return;
        }
        if (added)
            MGO_LOGI(TAG, "client %s accepted on the southbound Margo API", id);
        reply_client(store, req, id, added ? 201 : 200);
    } else if (strcmp(req->method, "GET") == 0) {
        mgo_err err = mgo_mgr_store_client_list(store, id, NULL, NULL);
        if (err == MGO_ERR_NOT_FOUND)
            mgo_api__problem(req, 404, NULL, "Not Found", "no such client on the list", NULL);
        else
            reply_client(store, req, id, 200);
    } else if (strcmp(req->method, "DELETE") == 0) {
        mgo_err err = mgo_mgr_store_client_deny(store, id);
        if (err == MGO_ERR_NOT_FOUND) {
            mgo_api__problem(req, 404, NULL, "Not Found", "no such client on the list", NULL);
            return;
        }
        if (err) {
            mgo_api__problem(req, 500, NULL, "Internal Server Error", mgo_strerror(err), NULL);
            return;
        }
        MGO_LOGI(TAG, "client %s removed from the accepted-client list", id);
        mgo_buf_reset(&req->reply);
        req->status = 204;
        req->content_type = NULL;
    } else {
        mgo_api__problem(req, 405, NULL, "Method Not Allowed",
                         "this method is not supported on this resource", NULL);
    }
}
