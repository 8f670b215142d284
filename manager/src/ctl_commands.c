/* ctl_commands.c - margoctl's commands and options as one table. The top-level --help (and
 * so the man page, help2man reads it), the bash completion (`margoctl completion bash`) and
 * the check that every command's own --help names the same options
 * (tests/scripts/margoctl_cli.sh) all read this table, so they cannot drift apart. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "ctl_internal.h"
#include "mgo/ctl.h"

#ifndef MGO_VERSION
#define MGO_VERSION "unknown"
#endif

/* Options of every command that talks to the manager (mgo_ctl__common_opts). */
static const struct mgo_ctl_option remote_opts[] = {
    {"--url", NULL, "URL", NULL, "the manager's API (MARGO_URL; default http://127.0.0.1:8080)"},
    {"--token-file", NULL, "FILE", NULL, "the API bearer token (MARGO_TOKEN_FILE)"},
    {"--output", "-o", "FORMAT", "table wide json yaml",
     "table (default), wide, json or yaml (Output formats below)"},
    {"--json", NULL, NULL, NULL, "the same as --output json"},
    {"--help", "-h", NULL, NULL, "the command's usage"},
    {NULL, NULL, NULL, NULL, NULL},
};

static const struct mgo_ctl_option validate_opts[] = {
    {"--format", NULL, "FORMAT", "auto yaml json msgpack", "the input format (default auto)"},
    {"--json", NULL, NULL, NULL, "the result as JSON"},
    {"--help", "-h", NULL, NULL, "the command's usage"},
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option convert_opts[] = {
    {"--to", NULL, "FORMAT", "json msgpack", "the output format (default json)"},
    {"--format", NULL, "FORMAT", "auto yaml json msgpack", "the input format (default auto)"},
    {"--help", "-h", NULL, NULL, "the command's usage"},
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option app_opts[] = {
    {"--version", NULL, "V", NULL, "show, rm: one version of the app (default newest / all)"},
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option device_opts[] = {
    {"--compatible", NULL, "APP", NULL, "list: whether each device can run APP, and why not"},
    {"--version", NULL, "V", NULL, "list --compatible: that version of APP"},
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option deploy_opts[] = {
    {"--device", NULL, "D", NULL, "a device to deploy to (repeatable, at least one)"},
    {"--version", NULL, "V", NULL, "the app version (default the newest)"},
    {"--set", NULL, "NAME=VALUE", NULL, "an answer to a configuration question (repeatable)"},
    {"--values", NULL, "FILE", NULL, "answers from a YAML or JSON file of name: value"},
    {"--no-prompt", NULL, NULL, NULL, "never ask; unanswered questions keep their default"},
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option deployment_opts[] = {
    {"--device", NULL, "D", NULL, "list: only this device's"},
    {"--app", NULL, "APP", NULL, "list: only this app's"},
    {"--all", NULL, NULL, NULL, "list: also the removed ones"},
    {"--version", NULL, "V", NULL, "update: move to this app version"},
    {"--set", NULL, "NAME=VALUE", NULL, "update: change an answer (repeatable)"},
    {"--values", NULL, "FILE", NULL, "update: answers from a YAML or JSON file"},
    {"--no-prompt", NULL, NULL, NULL, "update: never ask"},
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option status_opts[] = {
    {"--device", NULL, "D", NULL, "only this device's deployments"},
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option watch_opts[] = {
    {"--timeout", NULL, "SECONDS", NULL, "give up after SECONDS (exit 3)"},
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option rollout_opts[] = {
    {"--version", NULL, "V", NULL, "create: the app version (default the newest)"},
    {"--selector", NULL, "S", NULL, "create: the devices, by label selector (docs/rollouts.md)"},
    {"--device", NULL, "D", NULL, "create: a device (repeatable; instead of --selector)"},
    {"--mode", NULL, "MODE", "upgrade deploy", "create: upgrade deployments or deploy anew"},
    {"--set", NULL, "NAME=VALUE", NULL, "create: an answer to a configuration question"},
    {"--canary", NULL, "N", NULL, "create: devices in the first batch"},
    {"--batch-size", NULL, "N", NULL, "create: devices per batch"},
    {"--batch-percent", NULL, "P", NULL, "create: devices per batch, percent of the targets"},
    {"--max-in-flight", NULL, "N", NULL, "create: devices changing at once"},
    {"--timeout", NULL, "SECONDS", NULL, "create: a device's time to report installed"},
    {"--soak", NULL, "SECONDS", NULL, "create: wait after a batch before the next"},
    {"--max-failures-batch", NULL, "N|P%", NULL, "create: failures that abort, per batch"},
    {"--max-failures-total", NULL, "N|P%", NULL, "create: failures that abort, overall"},
    {"--app-failures-only", NULL, NULL, NULL, "create: count app-class failures only"},
    {"--on-abort", NULL, "WHAT", "stop rollback", "create: what an abort does"},
    {"--offline-grace", NULL, "SECONDS", NULL, "create: how long an offline device may lag"},
    {"--offline-count", NULL, "HOW", "skipped failed", "create: how a lagging device counts"},
    {"--dry-run", NULL, NULL, NULL, "create: the plan only (targets, batches, exclusions)"},
    {"--active", NULL, NULL, NULL, "list: running and paused rollouts only"},
    {"--watch", NULL, NULL, NULL, "show: follow the rollout until it ends"},
    {"--targets", NULL, NULL, NULL, "show: every target device with its state"},
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option client_opts[] = {
    {NULL, NULL, NULL, NULL, NULL},
};
static const struct mgo_ctl_option completion_opts[] = {
    {"--help", "-h", NULL, NULL, "the command's usage"},
    {NULL, NULL, NULL, NULL, NULL},
};

static int run_completion(int argc, char **argv);

static const struct mgo_ctl_command commands[] = {
    {"validate", "", "validate FILE...", "check Margo documents (YAML, JSON, MessagePack)",
     validate_opts, false, true, mgo_ctl_validate},
    {"convert", "", "convert FILE", "a document normalised as JSON or MessagePack", convert_opts,
     false, true, mgo_ctl_convert},
    {"app", "add list show rm", "app add|list|show|rm", "the application catalog", app_opts, true,
     true, mgo_ctl_app},
    {"device", "list show label", "device list|show|label",
     "devices; list --compatible APP for an app; label DEVICE KEY=VALUE KEY-", device_opts, true,
     false, mgo_ctl_device},
    {"deploy", "", "deploy APP --device D...", "deploy an app with answers (--set, --values)",
     deploy_opts, true, false, mgo_ctl_deploy},
    {"deployment", "list show update rm", "deployment list|show|update|rm", "deployments",
     deployment_opts, true, false, mgo_ctl_deployment},
    {"status", "", "status", "last reported state of every deployment", status_opts, true, false,
     mgo_ctl_status},
    {"watch", "", "watch DEPLOYMENT...", "follow deployments until done (exit 0/1/3)", watch_opts,
     true, false, mgo_ctl_watch},
    {"rollout", "create list show pause resume cancel rollback",
     "rollout create|list|show|pause|resume|cancel|rollback", "staged rollouts (docs/rollouts.md)",
     rollout_opts, true, false, mgo_ctl_rollout},
    {"client", "allow deny list", "client allow|deny|list",
     "Margo HTTP clients accepted (docs/margo-http.md)", client_opts, true, false, mgo_ctl_client},
    {"completion", "bash", "completion bash", "print the bash completion script", completion_opts,
     false, false, run_completion},
};

const struct mgo_ctl_command *mgo_ctl__commands(size_t *len)
{
    *len = sizeof commands / sizeof commands[0];
    return commands;
}

const struct mgo_ctl_option *mgo_ctl__remote_options(void)
{
    return remote_opts;
}

static void option_line(const struct mgo_ctl_option *o, FILE *out)
{
    char left[64];
    snprintf(left, sizeof left, "%s%s%s%s%s", o->short_name ? o->short_name : "",
             o->short_name ? ", " : "", o->name, o->value ? " " : "", o->value ? o->value : "");
    fprintf(out, "  %-32s %s\n", left, o->help);
}

void mgo_ctl__usage(FILE *out)
{
    fputs("Usage: margoctl COMMAND [ARGUMENT]... [OPTION]...\n"
          "Command-line client of margo-manager: the application catalog, devices, deployments\n"
          "and their status through the manager's HTTP API, and offline checks of Margo\n"
          "documents.\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-32s %s\n", commands[i].synopsis, commands[i].summary);
    fputs("\nOptions of the commands that talk to the manager:\n"
          "  (app, device, deploy, deployment, status and watch)\n",
          out);
    for (const struct mgo_ctl_option *o = remote_opts; o->name; o++)
        option_line(o, out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct mgo_ctl_command *c = &commands[i];
        if (!c->options[0].name)
            continue;
        fprintf(out, "\nOptions of %s:\n", c->name);
        for (const struct mgo_ctl_option *o = c->options; o->name; o++)
            option_line(o, out);
    }
    fputs("\nOutput formats:\n"
          "  --output applies to app list|show, device list|show, deployment list|show, status,\n"
          "  and the replies of app add, deploy and deployment update|rm.\n"
          "  table    the human text: a table for listings, labelled fields for a show\n"
          "  wide     listings with more columns (the same as table for a show)\n"
          "  json     the API's JSON reply unchanged (docs/openapi.yaml)\n"
          "  yaml     the same data as YAML (keys sorted)\n"
          "watch prints one JSON event per line with json; yaml is refused there.\n"
          "\n"
          "Environment:\n"
          "  MARGO_URL          the manager's API, for --url\n"
          "  MARGO_TOKEN_FILE   the token file, for --token-file\n"
          "  MARGO_CA_FILE      a private CA for an HTTPS API\n"
          "\n"
          "Exit status:\n"
          "  0 success, 1 failure (or invalid documents), 2 usage error, 3 watch timed out.\n"
          "\n"
          "Run 'margoctl COMMAND --help' for the usage of one command.\n",
          out);
}

void mgo_ctl__version(FILE *out)
{
    fputs("margoctl (margo-mqtt) " MGO_VERSION "\n", out);
}

/* The words completed for a command's options: its own, and the remote ones when it
 * talks to the manager. */
static void option_words(const struct mgo_ctl_command *c, FILE *out)
{
    const char *sep = "";
    for (int pass = 0; pass < 2; pass++) {
        const struct mgo_ctl_option *o = pass == 0 ? c->options : remote_opts;
        if (pass == 1 && !c->remote)
            break;
        for (; o->name; o++) {
            fprintf(out, "%s%s", sep, o->name);
            sep = " ";
            if (o->short_name)
                fprintf(out, " %s", o->short_name);
        }
    }
}

/* Every option that takes a value, with how to complete it. */
static void value_cases(FILE *out)
{
    const struct mgo_ctl_option *lists[1 + sizeof commands / sizeof commands[0]];
    lists[0] = remote_opts;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        lists[i + 1] = commands[i].options;
    const char *seen[64];
    size_t seen_len = 0;
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        for (const struct mgo_ctl_option *o = lists[l]; o->name; o++) {
            if (!o->value)
                continue;
            bool dup = false;
            for (size_t s = 0; s < seen_len; s++)
                dup |= strcmp(seen[s], o->name) == 0;
            if (dup || seen_len == sizeof seen / sizeof seen[0])
                continue;
            seen[seen_len++] = o->name;
            fprintf(out, "    %s%s%s)\n", o->name, o->short_name ? "|" : "",
                    o->short_name ? o->short_name : "");
            if (o->choices)
                fprintf(out, "        COMPREPLY=($(compgen -W \"%s\" -- \"$cur\"))\n", o->choices);
            else if (strcmp(o->value, "FILE") == 0)
                fputs("        COMPREPLY=($(compgen -f -- \"$cur\"))\n", out);
            else
                fputs("        COMPREPLY=()\n", out);
            fputs("        return ;;\n", out);
        }
    }
}

void mgo_ctl__completion_bash(FILE *out)
{
    fputs("# bash completion for margoctl - generated by `margoctl completion bash` from its\n"
          "# command table (manager/src/ctl_commands.c), the table --help is printed from.\n"
          "_margoctl() {\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    local cmd=${COMP_WORDS[1]} subs='' opts='' files=0\n"
          "    COMPREPLY=()\n"
          "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
          "        COMPREPLY=($(compgen -W \"",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "%s ", commands[i].name);
    fputs("--help --version\" -- \"$cur\"))\n"
          "        return\n"
          "    fi\n"
          "    case \"$prev\" in\n",
          out);
    value_cases(out);
    fputs("    esac\n"
          "    case \"$cmd\" in\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct mgo_ctl_command *c = &commands[i];
        fprintf(out, "    %s) subs='%s' files=%d opts='", c->name, c->subcommands,
                c->file_args ? 1 : 0);
        option_words(c, out);
        fputs("' ;;\n", out);
    }
    fputs("    *) return ;;\n"
          "    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
          "    elif [ \"$COMP_CWORD\" -eq 2 ] && [ -n \"$subs\" ]; then\n"
          "        COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n"
          "    elif [ \"$files\" -eq 1 ]; then\n"
          "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "    fi\n"
          "}\n"
          "complete -F _margoctl margoctl\n",
          out);
}

static int run_completion(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "bash") == 0) {
        mgo_ctl__completion_bash(stdout);
        return MGO_CTL_EXIT_OK;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: margoctl completion bash\n"
              "  Prints the bash completion script (installed as\n"
              "  /usr/share/bash-completion/completions/margoctl). Try it with:\n"
              "  source <(margoctl completion bash)\n"
              "options: -h, --help\n",
              stdout);
        return MGO_CTL_EXIT_OK;
    }
    fputs("usage: margoctl completion bash\n", stderr);
    return MGO_CTL_EXIT_USAGE;
}

int mgo_ctl_main(int argc, char **argv)
{
    if (argc < 2) {
        mgo_ctl__usage(stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        mgo_ctl__usage(stdout);
        return MGO_CTL_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        mgo_ctl__version(stdout);
        return MGO_CTL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(cmd, commands[i].name) != 0)
            continue;
        if (!commands[i].remote)
            return commands[i].run(argc - 1, argv + 1);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = commands[i].run(argc - 1, argv + 1);
        curl_global_cleanup();
        return rc;
    }
    fprintf(stderr, "margoctl: unknown command '%s'\n", cmd);
    mgo_ctl__usage(stderr);
    return MGO_CTL_EXIT_USAGE;
}
