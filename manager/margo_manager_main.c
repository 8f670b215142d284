/* margo-manager - the Margo fleet manager daemon. main() parses arguments and the config
 * file, installs signal handlers (SIGTERM/SIGINT stop, SIGHUP reloads) and calls
 * mgo_manager_run(). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "mgo/log.h"
#include "mgo/manager.h"

static struct mgo_manager *volatile g_manager;

static void on_signal(int sig)
{
    if (g_manager == NULL)
        return;
    /* both an atomic store and an eventfd write: async-signal-safe; the loop does the rest */
    if (sig == SIGHUP)
        mgo_manager_reload(g_manager);
    else
        mgo_manager_stop(g_manager);
}

int main(int argc, char **argv)
{
    struct mgo_manager_config cfg;
    memset(&cfg, 0, sizeof cfg);
    struct mgo_problems problems;
    mgo_problems_init(&problems);
    bool help = false;
    int rc = 1;
    if (mgo_cfg_parse_args(mgo_manager_options, mgo_manager_options_len, &cfg, argc, argv, &help,
                           &problems) != MGO_OK) {
        for (size_t i = 0; i < problems.count; i++)
            fprintf(stderr, "margo-manager: %s: %s\n", problems.items[i].field,
                    problems.items[i].rule);
        fprintf(stderr, "Run 'margo-manager --help' for the options.\n");
        rc = 2;
        goto cleanup;
    }
    if (help) {
        mgo_cfg_print_help(mgo_manager_options, mgo_manager_options_len,
                           "Usage: margo-manager [--config FILE] [--option value]...\n"
                           "Margo fleet manager: catalog, devices, deployments over MQTT, and a\n"
                           "bearer-token HTTP API for margoctl.",
                           stdout);
        rc = 0;
        goto cleanup;
    }
    mgo_log_set_ident("margo-manager");
    /* SIGHUP before the loop runs would end the process: ignored until the handler is in */
    signal(SIGHUP, SIG_IGN);
    struct mgo_manager *m = NULL;
    if (mgo_manager_new(&cfg, &m) != MGO_OK)
        goto cleanup;
    mgo_manager_set_reload_args(m, argc, argv);
    g_manager = m;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = mgo_manager_run(m) == MGO_OK ? 0 : 1;
    g_manager = NULL;
    mgo_manager_free(m);
cleanup:
    mgo_cfg_cleanup(mgo_manager_options, mgo_manager_options_len, &cfg);
    return rc;
}
