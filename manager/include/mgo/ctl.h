/* ctl.h - margoctl subcommands. Each takes argv starting at the subcommand name and returns
 * the process exit code (0 ok, 1 failure/invalid, 2 usage error). */
#ifndef MGO_CTL_H
#define MGO_CTL_H

int mgo_ctl_validate(int argc, char **argv);

#endif
