/* ctl_client.c - margoctl client allow|deny|list: the southbound Margo API's accepted-client
 * list (docs/margo-http.md "Enrolling a device"; northbound /api/v1/clients). */
#include <stdio.h>
#include <string.h>

#include "ctl_internal.h"
#include "mgo/ctl.h"

static const char CLIENT_USAGE[] =
    "usage: margoctl client allow CLIENT-ID   accept the client's X.509-SVID (its device id)\n"
    "       margoctl client deny CLIENT-ID    refuse it again (403 not-authorized)\n"
    "       margoctl client list\n"
    "options: --json  --url URL (MARGO_URL)  --token-file FILE (MARGO_TOKEN_FILE)\n";

/* One request; prints the problem of an unexpected status. 0 on success. */
static int call(struct mgo_ctl_conn *c, const char *method, const char *path, long want, long want2,
                struct mgo_ctl_reply *r)
{
    if (mgo_ctl__request(c, method, path, NULL, NULL, 0, r) != 0)
        return MGO_CTL_EXIT_FAIL;
    if (r->status != want && r->status != want2)
        return mgo_ctl__print_problem(c, r);
    return MGO_CTL_EXIT_OK;
}

static int client_list(struct mgo_ctl_conn *c)
{
    struct mgo_ctl_reply r;
    int rc = call(c, "GET", "/api/v1/clients", 200, 200, &r);
    if (rc == 0 && c->json) {
        mgo_ctl__print_json(&r.tree);
    } else if (rc == 0) {
        struct mgo_ctl_table t;
        mgo_ctl__table_init(&t, 2);
        const char *head[2] = {"CLIENT", "ADDED"};
        mgo_ctl__table_add(&t, head);
        const struct mgo_value *cs = mgo_value_get(&r.tree, "clients");
        for (size_t i = 0; cs && cs->kind == MGO_V_ARRAY && i < cs->as.array.len; i++) {
            const struct mgo_value *e = &cs->as.array.items[i];
            const char *row[2] = {mgo_ctl__str(e, "id"), mgo_ctl__str(e, "added")};
            mgo_ctl__table_add(&t, row);
        }
        mgo_ctl__table_print(&t, stdout);
        mgo_ctl__table_cleanup(&t);
    }
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

static int client_change(struct mgo_ctl_conn *c, bool allow, const char *id)
{
    char path[1024], esc[512];
    mgo_ctl__escape(id, esc, sizeof esc);
    snprintf(path, sizeof path, "/api/v1/clients/%s", esc);
    struct mgo_ctl_reply r;
    int rc = allow ? call(c, "PUT", path, 201, 200, &r) : call(c, "DELETE", path, 204, 204, &r);
    if (rc == 0 && c->json && allow)
        mgo_ctl__print_json(&r.tree);
    else if (rc == 0)
        printf(allow ? (r.status == 201 ? "client %s allowed\n" : "client %s was already allowed\n")
                     : "client %s denied\n",
               id);
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

int mgo_ctl_client(int argc, char **argv)
{
    struct mgo_ctl_conn c = {0};
    argc--;
    argv++;
    int help = mgo_ctl__common_opts(&c, &argc, argv);
    if (help == 1) {
        fputs(CLIENT_USAGE, stdout);
        return MGO_CTL_EXIT_OK;
    }
    bool list = help == 0 && argc == 1 && strcmp(argv[0], "list") == 0;
    bool allow = help == 0 && argc == 2 && strcmp(argv[0], "allow") == 0;
    bool deny = help == 0 && argc == 2 && strcmp(argv[0], "deny") == 0;
    if (!list && !allow && !deny) {
        fputs(CLIENT_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    if (mgo_ctl__conn_ready(&c) != 0)
        return MGO_CTL_EXIT_FAIL;
    return list ? client_list(&c) : client_change(&c, allow, argv[1]);
}
