/* margoctl - command-line client of margo-manager. main() only dispatches. */
#include <stdio.h>
#include <string.h>

#include "mgo/ctl.h"

static void usage(FILE *out)
{
    fputs("usage: margoctl <command> [options]\n"
          "\n"
          "commands:\n"
          "  validate FILE...   check Margo documents (YAML, JSON, MessagePack); --json output\n"
          "  convert FILE       write a document normalised as JSON or canonical MessagePack\n"
          "\n"
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
    fprintf(stderr, "margoctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
