/* margoctl - command-line client of margo-manager. main() only dispatches. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "mgo/ctl.h"

static void usage(FILE *out)
{
    fputs("usage: margoctl <command> [options]\n"
          "\n"
          "commands:\n"
          "  validate FILE...                 check Margo documents (YAML, JSON, MessagePack)\n"
          "  convert FILE                     a document normalised as JSON or MessagePack\n"
          "  app add|list|show|rm             the application catalog\n"
          "  device list|show|label           devices; list --compatible APP for an app\n"
          "  deploy APP --device D...         deploy an app with answers (--set, --values)\n"
          "  deployment list|show|update|rm   deployments\n"
          "  status                           last reported state of every deployment\n"
          "  watch DEPLOYMENT...              follow deployments until done (exit 0/1/3)\n"
          "  rollout create|list|show|...     staged rollouts (docs/rollouts.md)\n"
          "\n"
          "Every command takes --help and --json. The manager is reached at --url URL\n"
          "(or MARGO_URL, default http://127.0.0.1:8080) with the bearer token in\n"
          "--token-file FILE (or MARGO_TOKEN_FILE).\n"
          "Run 'margoctl <command> --help' for the options of one command.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "validate") == 0)
        return mgo_ctl_validate(argc - 1, argv + 1);
    if (strcmp(cmd, "convert") == 0)
        return mgo_ctl_convert(argc - 1, argv + 1);
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"app", mgo_ctl_app},         {"device", mgo_ctl_device},
        {"deploy", mgo_ctl_deploy},   {"deployment", mgo_ctl_deployment},
        {"status", mgo_ctl_status},   {"watch", mgo_ctl_watch},
        {"rollout", mgo_ctl_rollout},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(cmd, cmds[i].name) == 0) {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            int rc = cmds[i].fn(argc - 1, argv + 1);
            curl_global_cleanup();
            return rc;
        }
    }
    fprintf(stderr, "margoctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
