/* ctl.h - margoctl subcommands. Each takes argv starting at the subcommand name and returns
 * the process exit code (0 ok, 1 failure/invalid, 2 usage error; watch: 3 on timeout). */
#ifndef MGO_CTL_H
#define MGO_CTL_H

#define MGO_CTL_EXIT_OK 0
#define MGO_CTL_EXIT_FAIL 1
#define MGO_CTL_EXIT_USAGE 2
#define MGO_CTL_EXIT_TIMEOUT 3

/* The whole CLI: dispatches argv[1] to a command (margoctl_main.c calls only this). */
int mgo_ctl_main(int argc, char **argv);
int mgo_ctl_validate(int argc, char **argv);
int mgo_ctl_convert(int argc, char **argv);    /* convert FILE (document normaliser) */
int mgo_ctl_app(int argc, char **argv);        /* app add|list|show|rm */
int mgo_ctl_device(int argc, char **argv);     /* device list|show */
int mgo_ctl_deploy(int argc, char **argv);     /* deploy APP --device D... */
int mgo_ctl_deployment(int argc, char **argv); /* deployment list|show|update|rm */
int mgo_ctl_status(int argc, char **argv);     /* status */
int mgo_ctl_watch(int argc, char **argv);      /* watch DEPLOYMENT... */
int mgo_ctl_client(int argc, char **argv);     /* client allow|deny|list */
int mgo_ctl_rollout(int argc, char **argv);    /* rollout create|list|show|pause|... */

#endif
