/* mgr_test_util.h - helpers of the manager tests only (header-only): the API with the
 * manager's Authorization header and its validation errors, margoctl on a pseudo-terminal,
 * and the deployment row the unit tests store. Everything else comes from the test kit
 * (tests/support). */
#ifndef MGR_TEST_UTIL_H
#define MGR_TEST_UTIL_H

#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "http.h"
#include "manager_thread.h"
#include "mgo/manager.h"
#include "mgo/margo.h"
#include "mgo/mgr_store.h"
#include "mgo/mqtt.h"
#include "mgo_test.h"
#include "mqtt_client.h"

/* A deployment row of the app hello 1.0 (compose, no parameters, desired present) as the
 * unit tests store it; the row points at the given strings and doc. */
static inline struct mgo_mgr_deployment_row mgr_test_dep_row(const char *id, const char *device,
                                                             const uint8_t *doc, size_t doc_len,
                                                             const char *digest,
                                                             uint64_t manifest_version)
{
    struct mgo_mgr_deployment_row r = {
        .id = id,
        .device_id = device,
        .app_id = "hello",
        .app_version = "1.0",
        .profile_type = "compose",
        .parameters_json = "{}",
        .doc = doc,
        .doc_len = doc_len,
        .digest = digest,
        .desired = MGO_MGR_DESIRED_PRESENT,
        .manifest_version = manifest_version,
    };
    return r;
}

/* method api_base+path with body (NULL = none) and auth as the Authorization header (NULL =
 * none); r receives the reply (status 0 when the request failed). */
static inline void mgr_test_http(const char *api_base, const char *method, const char *path,
                                 const char *body, const char *auth, struct mgo_test_reply *r)
{
    char line[256];
    const char *headers[2] = {NULL, NULL};
    if (auth) {
        snprintf(line, sizeof line, "Authorization: %s", auth);
        headers[0] = line;
    }
    mgo_test_request(api_base, method, path, headers, body, 30000L, r);
}

/* The reply's "errors" name field with a message containing text. */
static inline bool mgr_test_has_error(const struct mgo_test_reply *r, const char *field,
                                      const char *text)
{
    const struct mgo_value *e = mgo_value_get(&r->json, "errors");
    for (size_t i = 0; e && e->kind == MGO_V_ARRAY && i < e->as.array.len; i++) {
        if (strcmp(mgo_test_jstr(&e->as.array.items[i], "/field"), field) == 0 &&
            strstr(mgo_test_jstr(&e->as.array.items[i], "/message"), text))
            return true;
    }
    return false;
}

/* Starts `margoctl deploy <app> --device <device> --url <api_base> --token-file <token_file>`
 * on a new pseudo-terminal; *master receives the terminal's side. Returns the child's pid,
 * -1 when forkpty failed. */
static inline pid_t mgr_test_ctl_deploy_pty(const char *app, const char *device,
                                            const char *api_base, const char *token_file,
                                            int *master)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s/manager/margoctl", MGO_BINARY_DIR);
    pid_t pid = forkpty(master, NULL, NULL, NULL);
    if (pid == 0) {
        execl(bin, bin, "deploy", app, "--device", device, "--url", api_base, "--token-file",
              token_file, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Appends what the terminal master shows within timeout_ms to out (*used bytes so far; kept
 * NUL-terminated). Returns false when nothing came. */
static inline bool mgr_test_pty_read(int master, int timeout_ms, char *out, size_t size,
                                     size_t *used)
{
    struct pollfd pfd = {master, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return false;
    ssize_t n = read(master, out + *used, size - *used - 1);
    if (n <= 0)
        return false;
    *used += (size_t)n;
    out[*used] = '\0';
    return true;
}

/* Kills pid unless it exited already; *status receives its wait status. */
static inline void mgr_test_kill_unless_exited(pid_t pid, bool exited, int *status)
{
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, status, 0);
    }
}

#endif
