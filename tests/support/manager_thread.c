/* manager_thread.c - see manager_thread.h. */
#include "manager_thread.h"

#include <stdio.h>
#include <string.h>

#include "pg.h"

static void *run_manager(void *arg)
{
    mgo_err err = mgo_manager_run(arg);
    if (err != MGO_OK)
        fprintf(stderr, "test manager: loop ended: %s\n", mgo_strerror(err));
    return NULL;
}

void mgo_test_manager_init(struct mgo_test_manager *t, const char *broker_url,
                           const char *state_dir, const char *client_id, const char *token_file,
                           const char *log_level)
{
    memset(t, 0, sizeof *t);
    struct mgo_manager_config *cfg = &t->cfg;
    cfg->state_dir = (char *)state_dir;
    /* MGO_TEST_STORE=postgresql: the store in a database of its own (pg.h) */
    if (mgo_test_store_pg())
        cfg->store = (char *)mgo_test_store(state_dir);
    cfg->broker_url = (char *)broker_url;
    cfg->client_id = (char *)client_id;
    cfg->topic_prefix = (char *)"margo/v1";
    cfg->api_listen = (char *)"127.0.0.1:0";
    cfg->api_token_file = (char *)token_file;
    cfg->log_level = (char *)log_level;
    cfg->session_expiry_s = 600;
    cfg->keepalive_s = 30;
}

mgo_err mgo_test_manager_start(struct mgo_test_manager *t, bool run)
{
    mgo_err err = mgo_manager_new(&t->cfg, &t->m);
    if (err != MGO_OK) {
        fprintf(stderr, "test manager: %s\n", mgo_strerror(err));
        t->m = NULL;
        return err;
    }
    snprintf(t->api_base, sizeof t->api_base, "http://127.0.0.1:%u",
             (unsigned)mgo_manager_api_port(t->m));
    if (run) {
        if (pthread_create(&t->thread, NULL, run_manager, t->m) != 0) {
            fprintf(stderr, "test manager: no thread for the loop\n");
            return MGO_ERR_INTERNAL;
        }
        t->running = true;
    }
    return MGO_OK;
}

void mgo_test_manager_stop(struct mgo_test_manager *t)
{
    if (t->running) {
        mgo_manager_stop(t->m);
        pthread_join(t->thread, NULL);
        t->running = false;
    }
    if (t->m != NULL)
        mgo_manager_free(t->m);
    t->m = NULL;
}
