/* margo_agent_main.c - parses arguments, loads configuration, runs the agent. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "mgo/agent.h"
#include "mgo/log.h"

static struct mgo_agent *volatile g_agent;

static void on_signal(int sig)
{
    if (g_agent == NULL) /* being freed */
        return;
    /* an atomic store and an eventfd write: async-signal-safe; the loop does the rest */
    if (sig == SIGHUP)
        mgo_agent_reload(g_agent);
    else
        mgo_agent_stop(g_agent);
}

int main(int argc, char **argv)
{
    struct mgo_agent_config cfg;
    memset(&cfg, 0, sizeof cfg);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    bool help = false;
    mgo_err err = mgo_cfg_parse_args(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &cfg, argc, argv,
                                     &help, &probs);
    if (help) {
        mgo_cfg_print_help(mgo_agent_cfg_table, mgo_agent_cfg_table_len,
                           "Usage: margo-agent [--config FILE] [--option value ...]\n"
                           "Margo device agent over MQTT: applies the desired state published "
                           "for this device\nwith Compose or Helm and reports status.",
                           stdout);
        mgo_cfg_cleanup(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &cfg);
        return 0;
    }
    if (err == MGO_OK)
        err = mgo_agent_config_check(&cfg, &probs);
    if (err != MGO_OK) {
        for (size_t i = 0; i < probs.count; i++)
            fprintf(stderr, "margo-agent: %s: %s\n", probs.items[i].field, probs.items[i].rule);
        fprintf(stderr, "margo-agent: see --help\n");
        mgo_cfg_cleanup(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &cfg);
        return 2;
    }
    enum mgo_log_level level = MGO_LOG_INFO;
    if (cfg.log_level != NULL && mgo_log_level_parse(cfg.log_level, &level) == MGO_OK)
        mgo_log_set_level(level);
    enum mgo_log_format format = MGO_LOG_TEXT;
    if (cfg.log_format != NULL && mgo_log_format_parse(cfg.log_format, &format) == MGO_OK)
        mgo_log_set_format(format);
    mgo_log_set_ident("margo-agent");
    /* SIGHUP before the loop runs would end the process: ignored until the handler is in */
    signal(SIGHUP, SIG_IGN);

    struct mgo_agent *agent = NULL;
    err = mgo_agent_new(&cfg, &agent);
    if (err == MGO_OK) {
        mgo_agent_set_reload_args(agent, argc, argv);
        g_agent = agent;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        err = mgo_agent_run(agent);
        g_agent = NULL; /* the handler leaves the agent alone from here on */
        mgo_agent_free(agent);
    }
    mgo_cfg_cleanup(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &cfg);
    if (err != MGO_OK) {
        fprintf(stderr, "margo-agent: %s\n", mgo_strerror(err));
        return 1;
    }
    return 0;
}
