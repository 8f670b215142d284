/* margoctl - command-line client of margo-manager. main() only calls mgo_ctl_main(); the
 * commands, their options and --help are the table of manager/src/ctl_commands.c. */
#include "mgo/ctl.h"

int main(int argc, char **argv)
{
    return mgo_ctl_main(argc, argv);
}
