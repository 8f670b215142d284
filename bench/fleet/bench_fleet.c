/* bench_fleet.c - the fleet benchmark controller (issue 8): starts its own Mosquitto and
 * margo-manager on free loopback ports, N simulated devices in ceil(N / per-proc) simulator
 * processes, then measures
 *
 *   registration   time until the manager has stored every device's capabilities, and the
 *                  manager's memory per registered device (RSS after - RSS before) / N;
 *   convergence    one app deployed to all N devices through the real HTTP API
 *                  (POST /api/v1/deployments, at most 256 devices per call); per device the
 *                  time from the first deploy call to the `installed` status *stored* by the
 *                  manager (status.received_ms in its SQLite store), and the time until the
 *                  device held the complete manifest (push latency);
 *   polling        (--poll) the cost of one Margo-style poll against the manager (new HTTP
 *                  connection, GET /api/v1/deployments?device=D) and the manager CPU per poll;
 *   storm          (--storm) broker restarted (SIGTERM, persistence saved, started again) with
 *                  every device connected: time until every device is reconnected and back in
 *                  sync with its desired state, and until the manager has stored every
 *                  device's fresh presence again;
 *   footprint      (--agent BIN) margo-agent's binary size and memory idle and during a deploy;
 *   rollout        (--rollout-fail PCT) after the convergence deploy of version 1.0 (the plain
 *                  deploy baseline), version 2.0 is added to the catalog and rolled out as an
 *                  upgrade to every device through POST /api/v1/rollouts in --rollout-batches
 *                  batches, with a threshold of --rollout-threshold % app-class failures per
 *                  batch and overall and onAbort rollback; the simulators fail the 2.0 install
 *                  (RUNTIME_FAILED, class app) on every (100 / PCT)-th device. Measured: wall
 *                  time from the create call to the final state (GET /api/v1/rollouts/{id}
 *                  polled every 250 ms), manager and broker CPU, and the devices' versions
 *                  in the store at the end.
 *
 * Scale-out (issue 16): --edges K starts K edge Mosquittos, each bridged to the core broker with
 * broker-config/bridge-edge.conf as shipped (TLS lines left out, client ids made unique per
 * edge); the simulators are spread evenly over the edges and the manager(s) stay on the core.
 * --managers M starts M margo-manager processes with --share-group (needs a shared store);
 * --store postgresql://URL gives them that store, and every count is then read from it with
 * psql, with the same SQL as from the SQLite file. Each run ends with one "SCALE key=value ..."
 * line (times, CPU, RSS of managers / brokers / simulators per device, sockets per broker,
 * ingest rate, load averages) that scripts/bench.sh --scale-only tabulates.
 *
 * Everything it starts is stopped at the end, also on SIGINT/SIGTERM (children also get
 * PR_SET_PDEATHSIG). Results: a markdown section appended to --out, and SUMMARY lines. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "mgo/buf.h"

#define MAX_PROCS 64
#define MAX_EDGES 16
#define MAX_MGRS 4
#define MAX_DEVICES 200000
#define MIB(kb) ((double)(kb) / 1024.0)
#define DEFAULT_TOKEN "bench-token-0123456789abcdef0123456789"

struct opts {
    const char *build_dir;
    const char *app_file;
    const char *out_file;
    const char *agent_bin;
    int devices;
    int per_proc;
    int delay_ms;
    int connect_rate; /* total initial connects per second */
    bool storm;
    bool poll;
    int poll_requests;
    int timeout_s;
    int ingest_seconds; /* 0 = no ingest benchmark */
    int ingest_publishers;
    int broker_inflight;     /* mosquitto max_inflight_messages (also its MQTT 5 receive maximum) */
    double rollout_fail_pct; /* < 0: no rollout step */
    int rollout_batches;
    double rollout_threshold_pct;
    int edges;               /* 0: devices on the core broker; K: K edge brokers bridged to it */
    const char *bridge_conf; /* broker-config/bridge-edge.conf (the shipped bridge section) */
    int managers;            /* margo-manager processes (> 1: --share-group) */
    const char *store;       /* NULL: SQLite in the state dir; else a postgresql:// URL */
    bool backlog;            /* with --ingest-seconds: also the backlog measurement */
    bool ingest_edge;        /* the ingest publisher on edge 1 (statuses cross a bridge) */
};

static struct opts o = {
    .build_dir = "build-bench",
    .app_file = "bench/fleet/bench-app.yaml",
    .out_file = NULL,
    .agent_bin = NULL,
    .devices = 1000,
    .per_proc = 2000,
    .delay_ms = 0,
    .connect_rate = 2000,
    .storm = false,
    .poll = false,
    .poll_requests = 1000,
    .timeout_s = 300,
    .broker_inflight = 0,
    .ingest_seconds = 0,
    .ingest_publishers = 8,
    .rollout_fail_pct = -1,
    .rollout_batches = 10,
    .rollout_threshold_pct = 2,
    .edges = 0,
    .bridge_conf = "broker-config/bridge-edge.conf",
    .managers = 1,
    .store = NULL,
    .backlog = true,
};

static volatile sig_atomic_t stop_flag;
static char work[128];
static int broker_port, api_port;
static pid_t broker_pid, manager_pid, agent_pid; /* manager_pid = mgr_pid[0] */
static pid_t mgr_pid[MAX_MGRS];
static int edge_port[MAX_EDGES];
static pid_t edge_pid[MAX_EDGES];
static int sim_edge[MAX_PROCS]; /* the edge (or -1: the core) each simulator connects to */
static int sim_count[MAX_PROCS];
static pid_t sim_pid[MAX_PROCS];
static int sim_fd[MAX_PROCS];
static int n_procs;
static char api_base[64], db_path[600], token[128];
static FILE *out;

/* per device, monotonic ns of the latest event of each kind (0 = none yet) */
struct dev_track {
    int64_t connect_ns, manifest_ns, installed_ns, resync_ns;
};
static struct dev_track *track;
static int n_ready_procs;
static int64_t n_installed, n_manifest, n_failed;

/* ---- small helpers -------------------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void outf(const char *fmt, ...) MGO_PRINTF(1, 2);
static void outf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (out) {
        va_start(ap, fmt);
        vfprintf(out, fmt, ap);
        va_end(ap);
    }
    fflush(stdout);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

static bool port_open(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0)
        close(s);
    return ok;
}

/* fork + exec with stdout/stderr to files (or stdout to a pipe when pipe_out != NULL). */
static pid_t spawn(char *const argv[], const char *log_path, int *pipe_out)
{
    int p[2] = {-1, -1};
    if (pipe_out && pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (log >= 0) {
            dup2(log, STDERR_FILENO);
            if (!pipe_out)
                dup2(log, STDOUT_FILENO);
        }
        if (pipe_out) {
            dup2(p[1], STDOUT_FILENO);
            close(p[0]);
            close(p[1]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (pipe_out) {
        close(p[1]);
        if (pid < 0) {
            close(p[0]);
            return -1;
        }
        fcntl(p[0], F_SETFL, O_NONBLOCK);
        *pipe_out = p[0];
    }
    return pid;
}

static void stop_child(pid_t *pid, int grace_ms)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    int64_t deadline = mgo_bench_now_ns() + (int64_t)grace_ms * 1000000;
    while (waitpid(*pid, NULL, WNOHANG) == 0) {
        if (mgo_bench_now_ns() > deadline) {
            kill(*pid, SIGKILL);
            waitpid(*pid, NULL, 0);
            break;
        }
        mgo_bench_sleep_ms(10);
    }
    *pid = 0;
}

static double ms_since(int64_t t0_ns)
{
    return (double)(mgo_bench_now_ns() - t0_ns) / 1e6;
}

/* ---- broker and manager ------------------------------------------------------------------- */

/* The broker settings every broker of the benchmark gets (core and edges). */
static void broker_conf_common(FILE *f, int port, const char *dir)
{
    fprintf(f,
            "listener %d 127.0.0.1\nallow_anonymous true\n"
            "persistence true\npersistence_location %s/\npersistence_file mosquitto.db\n"
            "autosave_interval 0\n"
            "max_queued_messages 1000000\nmax_inflight_messages %d\n"
            "message_size_limit 262144\nset_tcp_nodelay true\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n",
            port, dir, o.broker_inflight);
    /* as root, Mosquitto would switch to user "mosquitto", who cannot write our 0700 dir */
    if (geteuid() == 0)
        fprintf(f, "user root\n");
}

static int wait_port(int port, const char *what, const char *log)
{
    for (int i = 0; i < 500 && !stop_flag; i++) {
        if (port_open(port))
            return 0;
        mgo_bench_sleep_ms(10);
    }
    fprintf(stderr, "bench-fleet: %s did not start (see %s)\n", what, log);
    return -1;
}

static int start_broker(void)
{
    char conf[512], log[512];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", work);
    snprintf(log, sizeof log, "%s/mosquitto.log", work);
    if (broker_port == 0) {
        broker_port = free_port();
        FILE *f = fopen(conf, "w");
        if (!f)
            return -1;
        broker_conf_common(f, broker_port, work);
        fclose(f);
    }
    char *argv[] = {(char *)"/usr/sbin/mosquitto", (char *)"-c", conf, NULL};
    broker_pid = spawn(argv, log, NULL);
    return wait_port(broker_port, "mosquitto", log);
}

/* Edge broker i: the common settings plus broker-config/bridge-edge.conf as shipped, without
 * comments and TLS lines (as tests/reliability/test_bridge.c runs it), with the core's
 * loopback address and the client ids made unique per edge ("edge1" -> "edge<i+1>"). */
static int start_edge(int i)
{
    char dir[512], conf[600], log[600];
    snprintf(dir, sizeof dir, "%s/edge%d", work, i + 1);
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);
    snprintf(log, sizeof log, "%s/mosquitto.log", dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    FILE *in = fopen(o.bridge_conf, "r");
    if (!in) {
        fprintf(stderr, "bench-fleet: --bridge-conf: cannot open %s\n", o.bridge_conf);
        return -1;
    }
    FILE *f = fopen(conf, "w");
    if (!f) {
        fclose(in);
        return -1;
    }
    edge_port[i] = free_port();
    broker_conf_common(f, edge_port[i], dir);
    char line[1024];
    int n_topics = 0;
    while (fgets(line, sizeof line, in)) {
        if (line[0] == '#' || line[0] == '\n' || strncmp(line, "bridge_cafile", 13) == 0 ||
            strncmp(line, "bridge_certfile", 15) == 0 || strncmp(line, "bridge_keyfile", 14) == 0 ||
            strncmp(line, "bridge_tls", 10) == 0 || strncmp(line, "bridge_insecure", 15) == 0)
            continue;
        if (strncmp(line, "address ", 8) == 0) {
            fprintf(f, "address 127.0.0.1:%d\n", broker_port);
            continue;
        }
        n_topics += strncmp(line, "topic ", 6) == 0;
        char *e = strstr(line, "edge1");
        if (e && (strncmp(line, "remote_clientid", 15) == 0 ||
                  strncmp(line, "local_clientid", 14) == 0)) {
            *e = '\0';
            fprintf(f, "%sedge%d%s", line, i + 1, e + 5);
            continue;
        }
        fputs(line, f);
    }
    fclose(in);
    fclose(f);
    if (n_topics == 0) {
        fprintf(stderr, "bench-fleet: %s has no bridge topic lines\n", o.bridge_conf);
        return -1;
    }
    char *argv[] = {(char *)"/usr/sbin/mosquitto", (char *)"-c", conf, NULL};
    edge_pid[i] = spawn(argv, log, NULL);
    return wait_port(edge_port[i], "edge mosquitto", log);
}

/* Whether margo-manager's --help names an option (the store and share-group options come
 * from other branches; a clear refusal beats a manager that exits on an unknown flag). */
static bool manager_has_option(const char *opt)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "'%s/manager/margo-manager' --help 2>&1", o.build_dir);
    FILE *p = popen(cmd, "r");
    char line[512];
    bool found = false;
    size_t n = strlen(opt);
    while (p && fgets(line, sizeof line, p)) {
        const char *q = strstr(line, opt);
        if (q && (q[n] == ' ' || q[n] == '\n' || q[n] == '='))
            found = true;
    }
    if (p)
        pclose(p);
    return found;
}

/* Manager idx (0 answers the benchmark's API calls): own state dir and API port; with more
 * than one, own MQTT client id and --share-group; with --store, that store. */
static int start_manager_n(int idx)
{
    char bin[512], state[512], tok[512], broker[64], listen[64], log[512], cid[64];
    snprintf(bin, sizeof bin, "%s/manager/margo-manager", o.build_dir);
    snprintf(state, sizeof state, idx ? "%s/manager%d" : "%s/manager", work, idx + 1);
    snprintf(tok, sizeof tok, "%s/token", work);
    snprintf(log, sizeof log, idx ? "%s/manager%d.log" : "%s/manager.log", work, idx + 1);
    snprintf(cid, sizeof cid, "margo-manager-%d", idx + 1);
    if (idx == 0)
        snprintf(db_path, sizeof db_path, "%s/manager.db", state);
    snprintf(token, sizeof token, "%s", DEFAULT_TOKEN);
    FILE *f = fopen(tok, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", token);
    fclose(f);
    chmod(tok, 0600);
    int port = free_port();
    snprintf(broker, sizeof broker, "tcp://127.0.0.1:%d", broker_port);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    char *argv[24] = {bin, (char *)"--state-dir", state, (char *)"--broker-url", broker,
                      (char *)"--api-listen", listen, (char *)"--api-token-file", tok,
                      (char *)"--log-level", (char *)"warn",
                      /* every report kept: the ingest steps count history rows */
                      (char *)"--status-history", (char *)"0", NULL};
    int argc = 13;
    if (o.store) {
        argv[argc++] = (char *)"--store";
        argv[argc++] = (char *)o.store;
    }
    if (o.managers > 1) {
        argv[argc++] = (char *)"--client-id";
        argv[argc++] = cid;
        argv[argc++] = (char *)"--share-group";
        argv[argc++] = (char *)"bench";
    }
    argv[argc] = NULL;
    mgr_pid[idx] = spawn(argv, log, NULL);
    if (idx == 0) {
        manager_pid = mgr_pid[0];
        api_port = port;
        snprintf(api_base, sizeof api_base, "http://127.0.0.1:%d/api/v1", api_port);
    }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/apps", port);
    for (int i = 0; i < 1000 && !stop_flag; i++) {
        if (mgo_bench_http("GET", url, token, NULL, NULL) == 200)
            return 0;
        mgo_bench_sleep_ms(10);
    }
    fprintf(stderr, "bench-fleet: margo-manager did not answer (see %s)\n", log);
    return -1;
}

static int start_manager(void)
{
    return start_manager_n(0);
}

/* ---- the manager's store, read-only ----------------------------------------------------------
 * One way of counting per backend, the same SQL for both: SQLite is opened read-only (the
 * manager's file, WAL); PostgreSQL is asked through psql (-X -A -t, one row per line,
 * columns separated by '|'). */

static sqlite3 *db;

static bool db_open(void)
{
    if (!db && sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        db = NULL;
        return false;
    }
    sqlite3_busy_timeout(db, 2000);
    return true;
}

/* Calls row(ctx, cols, n) for every row of sql (at most 8 columns, as text); the number of
 * rows, or -1 when the query failed. */
typedef void (*db_row_fn)(void *ctx, const char *const *cols, int n);

static int64_t db_rows(const char *sql, db_row_fn row, void *ctx)
{
    int64_t rows = 0;
    const char *cols[8];
    if (!o.store) {
        if (!db_open())
            return -1;
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
            sqlite3_finalize(st);
            return -1;
        }
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int n = sqlite3_column_count(st) < 8 ? sqlite3_column_count(st) : 8;
            for (int i = 0; i < n; i++) {
                cols[i] = (const char *)sqlite3_column_text(st, i);
                if (!cols[i])
                    cols[i] = "";
            }
            row(ctx, cols, n);
            rows++;
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? rows : -1;
    }
    /* PostgreSQL: the SQL goes to psql on stdin (no shell quoting of the query) */
    char sqlf[600], cmd[2000];
    snprintf(sqlf, sizeof sqlf, "%s/query.sql", work);
    FILE *q = fopen(sqlf, "w");
    if (!q)
        return -1;
    fprintf(q, "%s;\n", sql);
    fclose(q);
    snprintf(cmd, sizeof cmd,
             "psql -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -d '%s' -f '%s' 2>>'%s/psql.log'", o.store,
             sqlf, work);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, p)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        int n = 0;
        char *c = line;
        cols[n++] = c;
        while (n < 8 && (c = strchr(c, '|')) != NULL) {
            *c++ = '\0';
            cols[n++] = c;
        }
        row(ctx, cols, n);
        rows++;
    }
    free(line);
    return pclose(p) == 0 ? rows : -1;
}

static void first_int(void *ctx, const char *const *cols, int n)
{
    if (n > 0)
        *(int64_t *)ctx = strtoll(cols[0], NULL, 10);
}

static int64_t db_count(const char *sql)
{
    int64_t v = -1;
    return db_rows(sql, first_int, &v) == 1 ? v : -1;
}

/* ---- simulator output ------------------------------------------------------------------------ */

static char line_buf[MAX_PROCS][4096];
static size_t line_len[MAX_PROCS];

static void parse_line(const char *l)
{
    if (strncmp(l, "READY", 5) == 0) {
        n_ready_procs++;
        return;
    }
    char kind = l[0];
    long idx = 0;
    long long ns = 0;
    if (sscanf(l + 1, "%ld %lld", &idx, &ns) != 2 || idx < 0 || idx >= o.devices)
        return;
    struct dev_track *t = &track[idx];
    switch (kind) {
    case 'C':
        t->connect_ns = ns;
        break;
    case 'M':
        if (!t->manifest_ns)
            n_manifest++;
        t->manifest_ns = ns;
        break;
    case 'I':
        if (!t->installed_ns)
            n_installed++;
        t->installed_ns = ns;
        break;
    case 'R':
        t->resync_ns = ns;
        break;
    case 'F':
        n_failed++;
        fprintf(stderr, "bench-fleet: device %ld: %s\n", idx, l);
        break;
    default:
        break;
    }
}

/* Reads what the simulators printed, waiting at most wait_ms. */
static void pump(int wait_ms)
{
    struct pollfd pfd[MAX_PROCS];
    for (int i = 0; i < n_procs; i++)
        pfd[i] = (struct pollfd){.fd = sim_fd[i], .events = POLLIN};
    if (poll(pfd, (nfds_t)n_procs, wait_ms) <= 0)
        return;
    for (int i = 0; i < n_procs; i++) {
        if (!(pfd[i].revents & (POLLIN | POLLHUP)))
            continue;
        for (;;) {
            ssize_t n =
                read(sim_fd[i], line_buf[i] + line_len[i], sizeof line_buf[i] - line_len[i] - 1);
            if (n <= 0)
                break;
            line_len[i] += (size_t)n;
            line_buf[i][line_len[i]] = '\0';
            char *start = line_buf[i], *nl;
            while ((nl = strchr(start, '\n')) != NULL) {
                *nl = '\0';
                parse_line(start);
                start = nl + 1;
            }
            line_len[i] = strlen(start);
            memmove(line_buf[i], start, line_len[i] + 1);
        }
    }
}

/* Whether device idx fails the 2.0 install in the rollout step: every (100 / PCT)-th device,
 * so each batch of a multiple of that stride holds exactly PCT % of them. */
static bool rollout_fails(int idx)
{
    if (o.rollout_fail_pct <= 0)
        return false;
    int stride = (int)(100.0 / o.rollout_fail_pct + 0.5);
    return idx % stride == stride / 2;
}

/* The --fail-ids list of the simulator of devices first..first+count-1 (may be empty), or
 * NULL without a rollout step (or without memory: the caller checks). */
static char *rollout_fail_ids(int first, int count)
{
    if (o.rollout_fail_pct < 0)
        return NULL;
    size_t cap = (size_t)count * 7 + 1, len = 0;
    char *ids = malloc(cap);
    if (!ids)
        return NULL;
    ids[0] = '\0';
    for (int i = first; i < first + count; i++) {
        if (rollout_fails(i))
            len += (size_t)snprintf(ids + len, cap - len, "%s%d", len ? "," : "", i);
    }
    return ids;
}

static int start_sims(void)
{
    char bin[512], url[64], log[512];
    snprintf(bin, sizeof bin, "%s/bench/mgo-fleet-sim", o.build_dir);
    snprintf(log, sizeof log, "%s/sim.log", work);
    n_procs = (o.devices + o.per_proc - 1) / o.per_proc;
    if (n_procs > MAX_PROCS) {
        fprintf(stderr, "bench-fleet: too many simulator processes (%d > %d)\n", n_procs,
                MAX_PROCS);
        return -1;
    }
    for (int i = 0; i < n_procs; i++) {
        int first = i * o.per_proc;
        int count = o.devices - first < o.per_proc ? o.devices - first : o.per_proc;
        /* simulator i on edge i % K: the edges get the same number of processes (+-1) */
        sim_edge[i] = o.edges > 0 ? i % o.edges : -1;
        sim_count[i] = count;
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d",
                 sim_edge[i] >= 0 ? edge_port[sim_edge[i]] : broker_port);
        char a_first[16], a_count[16], a_delay[16], a_rate[16];
        snprintf(a_first, sizeof a_first, "%d", first);
        snprintf(a_count, sizeof a_count, "%d", count);
        snprintf(a_delay, sizeof a_delay, "%d", o.delay_ms);
        snprintf(a_rate, sizeof a_rate, "%d",
                 o.connect_rate / n_procs > 0 ? o.connect_rate / n_procs : 1);
        char *fail_ids = rollout_fail_ids(first, count);
        if (o.rollout_fail_pct >= 0 && !fail_ids)
            return -1;
        char *argv[] = {bin,
                        (char *)"--url",
                        url,
                        (char *)"--first",
                        a_first,
                        (char *)"--count",
                        a_count,
                        (char *)"--delay-ms",
                        a_delay,
                        (char *)"--connect-rate",
                        a_rate,
                        (char *)"--backoff-min-ms",
                        (char *)"500",
                        (char *)"--backoff-max-ms",
                        (char *)"5000",
                        fail_ids ? (char *)"--fail-version" : NULL,
                        (char *)"2.0",
                        (char *)"--fail-ids",
                        fail_ids,
                        NULL};
        sim_pid[i] = spawn(argv, log, &sim_fd[i]);
        free(fail_ids);
        if (sim_pid[i] <= 0)
            return -1;
    }
    return 0;
}

/* ---- measurements ------------------------------------------------------------------------------
 */

/* CPU seconds of every manager / of every edge broker. */
static double mgrs_cpu_s(void)
{
    double t = 0;
    for (int i = 0; i < o.managers; i++)
        t += mgr_pid[i] > 0 ? mgo_bench_cpu_s(mgr_pid[i]) : 0;
    return t;
}

static double sims_cpu_s(void)
{
    double t = 0;
    for (int i = 0; i < n_procs; i++)
        t += sim_pid[i] > 0 ? mgo_bench_cpu_s(sim_pid[i]) : 0;
    return t;
}

/* CPU seconds of the PostgreSQL backends serving the --store database (their command line is
 * "postgres: USER DB HOST(PORT) STATE"); 0 with SQLite, where the store runs in the manager. */
static double store_cpu_s(void)
{
    if (!o.store)
        return 0;
    const char *dbn = strrchr(o.store, '/');
    char pat[160];
    snprintf(pat, sizeof pat, " %.*s ", dbn ? (int)strcspn(dbn + 1, "?") : 0, dbn ? dbn + 1 : "");
    double t = 0;
    DIR *proc = opendir("/proc");
    struct dirent *de;
    while (proc && (de = readdir(proc)) != NULL) {
        int pid = atoi(de->d_name);
        if (pid <= 0)
            continue;
        char path[300], cmd[256];
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, cmd, sizeof cmd - 1);
        close(fd);
        if (n <= 0)
            continue;
        cmd[n] = '\0';
        if (strncmp(cmd, "postgres: ", 10) == 0 && strstr(cmd, pat))
            t += mgo_bench_cpu_s(pid);
    }
    if (proc)
        closedir(proc);
    return t;
}

static double edges_cpu_s(void)
{
    double t = 0;
    for (int i = 0; i < o.edges; i++)
        t += edge_pid[i] > 0 ? mgo_bench_cpu_s(edge_pid[i]) : 0;
    return t;
}

/* VmRSS (KiB) summed over pids (0 entries skipped); -1 when one is unreadable. */
static double rss_sum(const pid_t *pids, int n)
{
    double kb = 0;
    for (int i = 0; i < n; i++) {
        struct mgo_bench_mem m;
        if (pids[i] <= 0)
            continue;
        if (mgo_bench_mem_read(pids[i], &m) != MGO_OK)
            return -1;
        kb += (double)m.rss_kb;
    }
    return kb;
}

/* Open sockets of a process (its /proc/PID/fd entries that are sockets): a broker's client
 * connections plus its listeners and bridges. */
static int count_sockets(pid_t pid)
{
    char dir[64], path[128], target[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    int n = 0;
    for (int fd = 0; fd < 65536; fd++) {
        snprintf(path, sizeof path, "%s/%d", dir, fd);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        n += strncmp(target, "socket:", 7) == 0;
    }
    return n;
}

struct stats {
    double p50, p99, max;
    size_t n;
};

static struct stats stats_of(double *v, size_t n)
{
    struct stats s = {0};
    s.n = n;
    if (n == 0)
        return s;
    s.max = mgo_bench_percentile(v, n, 100);
    s.p50 = mgo_bench_percentile(v, n, 50);
    s.p99 = mgo_bench_percentile(v, n, 99);
    return s;
}

/* "0.42 0.30 0.20" -> "0.42/0.30/0.20" in place (one token for key=value lines). */
static const char *dashes(char *load)
{
    for (char *p = load; *p; p++)
        if (*p == ' ')
            *p = '/';
    return load;
}

static const char *met(bool ok)
{
    return ok ? "met" : "**missed**";
}

struct conv_result {
    bool ok;
    double api_ms;
    struct stats stored; /* deploy call -> installed stored by the manager, ms */
    struct stats push;   /* deploy call -> device holds the complete manifest, ms */
    double mgr_cpu_s, broker_cpu_s, edge_cpu_s, sims_cpu_s, store_cpu_s, wall_s;
};

static int deploy_all(int64_t *t0_wall, int64_t *t0_ns, double *api_ms)
{
    size_t cap = (size_t)o.devices * 16 + 256;
    char *body = malloc(cap < 8192 ? 8192 : cap);
    if (!body)
        return -1;
    char url[128];
    snprintf(url, sizeof url, "%s/deployments", api_base);
    *t0_wall = mgo_bench_wall_ms();
    *t0_ns = mgo_bench_now_ns();
    for (int first = 0; first < o.devices; first += 256) {
        size_t len = (size_t)snprintf(body, 64, "{\"app\":\"bench-app\",\"devices\":[");
        for (int i = first; i < o.devices && i < first + 256; i++)
            len += (size_t)snprintf(body + len, 32, "%s\"sim-%05d\"", i > first ? "," : "", i);
        snprintf(body + len, 8, "]}");
        struct mgo_buf reply;
        mgo_buf_init(&reply, 64u << 20);
        long status = mgo_bench_http("POST", url, token, body, &reply);
        if (status != 201) {
            fprintf(stderr, "bench-fleet: deploy call for devices %d.. answered %ld: %.300s\n",
                    first, status, reply.data ? (const char *)reply.data : "");
            mgo_buf_cleanup(&reply);
            free(body);
            return -1;
        }
        mgo_buf_cleanup(&reply);
        pump(0);
    }
    *api_ms = ms_since(*t0_ns);
    free(body);
    return 0;
}

struct lat_ctx {
    double *v;
    size_t n, cap;
    int64_t t0;
};

static void lat_row(void *ctx, const char *const *cols, int n)
{
    struct lat_ctx *c = ctx;
    if (n > 0 && c->n < c->cap)
        c->v[c->n++] = (double)(strtoll(cols[0], NULL, 10) - c->t0);
}

static int run_convergence(struct conv_result *r)
{
    memset(r, 0, sizeof *r);
    int64_t t0_wall = 0, t0_ns = 0;
    double cpu_m0 = mgrs_cpu_s(), cpu_b0 = mgo_bench_cpu_s(broker_pid), cpu_e0 = edges_cpu_s(),
           cpu_s0 = sims_cpu_s(), cpu_p0 = store_cpu_s();
    if (deploy_all(&t0_wall, &t0_ns, &r->api_ms) != 0)
        return -1;
    int64_t deadline = mgo_bench_now_ns() + (int64_t)o.timeout_s * 1000000000;
    int64_t stored = 0;
    while (!stop_flag && mgo_bench_now_ns() < deadline) {
        pump(20);
        if (n_installed < o.devices)
            continue;
        stored = db_count("SELECT count(*) FROM status s JOIN deployments d ON d.id = "
                          "s.deployment_id WHERE d.app_id = 'bench-app' AND s.state = 'installed'");
        if (stored >= o.devices)
            break;
        mgo_bench_sleep_ms(20);
    }
    r->wall_s = ms_since(t0_ns) / 1000;
    r->mgr_cpu_s = mgrs_cpu_s() - cpu_m0;
    r->broker_cpu_s = mgo_bench_cpu_s(broker_pid) - cpu_b0;
    r->edge_cpu_s = edges_cpu_s() - cpu_e0;
    r->sims_cpu_s = sims_cpu_s() - cpu_s0;
    r->store_cpu_s = store_cpu_s() - cpu_p0;
    if (stored < o.devices) {
        fprintf(stderr,
                "bench-fleet: convergence incomplete: %" PRId64
                " devices hold the manifest, %" PRId64 " published installed, %" PRId64
                " stored by the manager, of %d (failures %" PRId64 ")\n",
                n_manifest, n_installed, stored, o.devices, n_failed);
        return -1;
    }
    /* per-device stored latency from the manager's own timestamps */
    double *lat = calloc((size_t)o.devices, sizeof *lat);
    double *push = calloc((size_t)o.devices, sizeof *push);
    size_t n = 0, np = 0;
    struct lat_ctx lc = {.v = lat, .n = 0, .cap = lat ? (size_t)o.devices : 0, .t0 = t0_wall};
    db_rows("SELECT s.received_ms FROM status s JOIN deployments d ON d.id = s.deployment_id "
            "WHERE d.app_id = 'bench-app' AND s.state = 'installed'",
            lat_row, &lc);
    n = lc.n;
    for (int i = 0; push && i < o.devices; i++) {
        if (track[i].manifest_ns)
            push[np++] = (double)(track[i].manifest_ns - t0_ns) / 1e6;
    }
    r->stored = stats_of(lat, n);
    r->push = stats_of(push, np);
    r->ok = n == (size_t)o.devices;
    free(lat);
    free(push);
    return 0;
}

/* ---- rollout ----------------------------------------------------------------------------- */

struct rollout_result {
    char state[32]; /* the final state (or the last seen one) */
    double final_s; /* create call -> final state seen */
    double abort_s; /* create call -> rolling-back first seen (-1: never) */
    double mgr_cpu_s, broker_cpu_s;
    long targets, succeeded, failed, rolled_back, rollback_failed, fail_app, fail_device;
    int64_t on_v1, on_v2; /* deployments of bench-app stored with that version and installed */
    int polls;
};

/* The number after "key": in the first object that follows "section": (or at the top when
 * section is NULL); -1 when absent. The summary is written by the manager in the order
 * docs/rollouts.md documents, so the first "counts" is the rollout's own. */
static long json_num(const char *doc, const char *section, const char *key)
{
    const char *p = doc;
    if (section) {
        char s[64];
        snprintf(s, sizeof s, "\"%s\":{", section);
        if (!(p = strstr(doc, s)))
            return -1;
        const char *end = strchr(p + strlen(s), '}');
        char k[64];
        snprintf(k, sizeof k, "\"%s\":", key);
        const char *q = strstr(p, k);
        return q && end && q < end ? strtol(q + strlen(k), NULL, 10) : 0;
    }
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *q = strstr(p, k);
    return q ? strtol(q + strlen(k), NULL, 10) : -1;
}

/* The string value of the first "key":"..." in doc into out ("" when absent). */
static void json_str(const char *doc, const char *key, char *dst, size_t size)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char *q = strstr(doc, k);
    size_t n = 0;
    if (q) {
        q += strlen(k);
        while (q[n] && q[n] != '"' && n + 1 < size)
            n++;
        memcpy(dst, q, n);
    }
    dst[n] = '\0';
}

static bool rollout_final(const char *state)
{
    return strcmp(state, "succeeded") == 0 || strcmp(state, "aborted") == 0 ||
           strcmp(state, "cancelled") == 0 || strcmp(state, "rolled-back") == 0;
}

/* Adds version 2.0 of the app: the --app file with its `version: "1.0"` made "2.0". */
static int add_app_v2(void)
{
    struct mgo_buf app;
    mgo_buf_init(&app, 1u << 20);
    long st = -1;
    if (mgo_buf_read_file(&app, o.app_file) == MGO_OK && mgo_buf_append(&app, "", 1) == MGO_OK) {
        char *v = strstr((char *)app.data, "version: \"1.0\"");
        if (v) {
            v[10] = '2'; /* "1.0" -> "2.0" */
            char url[128];
            snprintf(url, sizeof url, "%s/apps", api_base);
            st = mgo_bench_http("POST", url, token, (const char *)app.data, NULL);
        }
    }
    mgo_buf_cleanup(&app);
    if (st != 201) {
        fprintf(stderr, "bench-fleet: POST /apps of version 2.0 answered %ld\n", st);
        return -1;
    }
    return 0;
}

static int run_rollout(struct rollout_result *r)
{
    memset(r, 0, sizeof *r);
    r->abort_s = -1;
    if (add_app_v2() != 0)
        return -1;
    char url[160], body[512];
    snprintf(url, sizeof url, "%s/rollouts", api_base);
    snprintf(body, sizeof body,
             "{\"app\":\"bench-app\",\"version\":\"2.0\",\"mode\":\"upgrade\",\"selector\":\"\","
             "\"strategy\":{\"batchPercent\":%d,\"maxFailures\":{\"batch\":{\"percent\":%g},"
             "\"total\":{\"percent\":%g},\"appFailuresOnly\":true},\"onAbort\":\"rollback\"}}",
             (100 + o.rollout_batches - 1) / o.rollout_batches, o.rollout_threshold_pct,
             o.rollout_threshold_pct);
    double cpu_m0 = mgo_bench_cpu_s(manager_pid), cpu_b0 = mgo_bench_cpu_s(broker_pid);
    int64_t t0 = mgo_bench_now_ns();
    struct mgo_buf reply;
    mgo_buf_init(&reply, 16u << 20);
    long st = mgo_bench_http("POST", url, token, body, &reply);
    char id[128] = "";
    if (st == 201 && mgo_buf_append(&reply, "", 1) == MGO_OK)
        json_str((const char *)reply.data, "id", id, sizeof id);
    if (st != 201 || !id[0]) {
        fprintf(stderr, "bench-fleet: POST /rollouts answered %ld: %.300s\n", st,
                reply.data ? (const char *)reply.data : "");
        mgo_buf_cleanup(&reply);
        return -1;
    }
    mgo_buf_cleanup(&reply);
    snprintf(url, sizeof url, "%s/rollouts/%s", api_base, id);
    int64_t deadline = t0 + (int64_t)o.timeout_s * 1000000000;
    char *last = NULL;
    while (!stop_flag && mgo_bench_now_ns() < deadline) {
        pump(0);
        mgo_buf_init(&reply, 16u << 20);
        st = mgo_bench_http("GET", url, token, NULL, &reply);
        double t = ms_since(t0) / 1000;
        r->polls++;
        if (st == 200 && mgo_buf_append(&reply, "", 1) == MGO_OK) {
            json_str((const char *)reply.data, "state", r->state, sizeof r->state);
            if (r->abort_s < 0 && strcmp(r->state, "rolling-back") == 0)
                r->abort_s = t;
            if (rollout_final(r->state)) {
                r->final_s = t;
                free(last);
                last = strdup((const char *)reply.data);
                mgo_buf_cleanup(&reply);
                break;
            }
        }
        mgo_buf_cleanup(&reply);
        /* pump what the simulators print while waiting (their pipes must not fill) */
        int64_t next = mgo_bench_now_ns() + 250 * 1000000LL;
        while (mgo_bench_now_ns() < next)
            pump(20);
    }
    r->mgr_cpu_s = mgo_bench_cpu_s(manager_pid) - cpu_m0;
    r->broker_cpu_s = mgo_bench_cpu_s(broker_pid) - cpu_b0;
    if (!last) {
        fprintf(stderr, "bench-fleet: rollout %s not final within %d s (state %s)\n", id,
                o.timeout_s, r->state);
        return -1;
    }
    r->targets = json_num(last, NULL, "targetCount");
    r->succeeded = json_num(last, "counts", "succeeded");
    r->failed = json_num(last, "counts", "failed");
    r->rolled_back = json_num(last, "counts", "rolled-back");
    r->rollback_failed = json_num(last, "counts", "rollback-failed");
    r->fail_app = json_num(last, "failures", "app");
    r->fail_device = json_num(last, "failures", "device");
    free(last);
    /* the rolled-back state already waited for every device's `installed` of the rollback */
    r->on_v1 = db_count("SELECT count(*) FROM status s JOIN deployments d ON d.id = "
                        "s.deployment_id WHERE d.app_id = 'bench-app' AND d.app_version = '1.0' "
                        "AND s.state = 'installed'");
    r->on_v2 = db_count("SELECT count(*) FROM status s JOIN deployments d ON d.id = "
                        "s.deployment_id WHERE d.app_id = 'bench-app' AND d.app_version = '2.0' "
                        "AND s.state = 'installed'");
    return 0;
}

struct poll_result {
    struct stats lat; /* ms per poll */
    double mgr_cpu_us_per_req;
};

static int run_polling(struct poll_result *r)
{
    double *lat = calloc((size_t)o.poll_requests, sizeof *lat);
    if (!lat)
        return -1;
    double cpu0 = mgo_bench_cpu_s(manager_pid);
    int64_t t0 = mgo_bench_now_ns();
    int ok = 0;
    for (int i = 0; i < o.poll_requests && !stop_flag; i++) {
        char url[160];
        snprintf(url, sizeof url, "%s/deployments?device=sim-%05d", api_base,
                 (int)(((unsigned)i * 7919u) % (unsigned)o.devices));
        int64_t a = mgo_bench_now_ns();
        struct mgo_buf reply;
        mgo_buf_init(&reply, 16u << 20);
        long status = mgo_bench_http("GET", url, token, NULL, &reply);
        mgo_buf_cleanup(&reply);
        if (status == 200)
            lat[ok++] = ms_since(a);
    }
    double wall = ms_since(t0);
    (void)wall;
    r->mgr_cpu_us_per_req = (mgo_bench_cpu_s(manager_pid) - cpu0) * 1e6 / (ok ? ok : 1);
    r->lat = stats_of(lat, (size_t)ok);
    free(lat);
    return ok == o.poll_requests ? 0 : -1;
}

struct storm_result {
    bool ok;
    double restart_ms;    /* kill -> restarted broker accepts connections */
    struct stats connect; /* broker up -> device CONNACK, ms */
    struct stats resync;  /* broker up -> device back in sync, ms */
    double presence_ms;   /* broker up -> manager stored every device's fresh presence */
    size_t n_connected, n_resynced;
    double broker_cpu_s, mgr_cpu_s;
};

static int run_storm(struct storm_result *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < o.devices; i++)
        track[i].connect_ns = track[i].resync_ns = 0;
    int64_t t_kill = mgo_bench_now_ns();
    stop_child(&broker_pid, 30000); /* SIGTERM: mosquitto writes its persistence file */
    if (start_broker() != 0)
        return -1;
    int64_t t_up = mgo_bench_now_ns();
    int64_t t_up_wall = mgo_bench_wall_ms();
    r->restart_ms = (double)(t_up - t_kill) / 1e6;
    double cpu_m0 = mgo_bench_cpu_s(manager_pid);
    int64_t deadline = t_up + (int64_t)o.timeout_s * 1000000000;
    int64_t presence = 0;
    bool presence_done = false;
    while (!stop_flag && mgo_bench_now_ns() < deadline) {
        pump(20);
        size_t nc = 0, nr = 0;
        for (int i = 0; i < o.devices; i++) {
            nc += track[i].connect_ns > t_kill;
            nr += track[i].resync_ns > t_kill;
        }
        r->n_connected = nc;
        r->n_resynced = nr;
        if (!presence_done) {
            char sql[256];
            snprintf(
                sql, sizeof sql,
                "SELECT count(*) FROM devices WHERE id LIKE 'sim-%%' AND last_seen_ms >= %" PRId64,
                t_up_wall);
            presence = db_count(sql);
            if (presence >= o.devices) {
                presence_done = true;
                r->presence_ms = ms_since(t_up);
            }
        }
        if (nr == (size_t)o.devices && presence_done)
            break;
    }
    r->mgr_cpu_s = mgo_bench_cpu_s(manager_pid) - cpu_m0;
    r->broker_cpu_s = mgo_bench_cpu_s(broker_pid);
    double *c = calloc((size_t)o.devices, sizeof *c), *s = calloc((size_t)o.devices, sizeof *s);
    size_t nc = 0, ns = 0;
    for (int i = 0; c && s && i < o.devices; i++) {
        if (track[i].connect_ns > t_kill)
            c[nc++] = (double)(track[i].connect_ns - t_up) / 1e6;
        if (track[i].resync_ns > t_kill)
            s[ns++] = (double)(track[i].resync_ns - t_up) / 1e6;
    }
    r->connect = stats_of(c, nc);
    r->resync = stats_of(s, ns);
    r->ok = ns == (size_t)o.devices && presence_done;
    free(c);
    free(s);
    if (!r->ok)
        fprintf(stderr,
                "bench-fleet: storm incomplete: %zu connected, %zu in sync, %" PRId64
                " presences stored, of %d\n",
                nc, ns, presence, o.devices);
    return 0;
}

/* ---- status ingest ------------------------------------------------------------------------ */

struct ingest_result {
    bool ok;
    long published;
    double publish_s;
    double rate_window;  /* stored per second while the publishers ran */
    double rate_overall; /* published / (first publish -> last stored) */
    double drain_s;      /* publishers done -> everything stored */
    double mgr_cpu_share, broker_cpu_share;
    int64_t stored;
};

/* Reads one line from fd (blocking up to timeout_ms); 0 on success. */
static int read_line(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t n = 0;
    int64_t deadline = mgo_bench_now_ns() + (int64_t)timeout_ms * 1000000;
    while (n + 1 < size && !stop_flag && mgo_bench_now_ns() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        pump(0);
        if (poll(&p, 1, 50) <= 0)
            continue;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r == 0)
            return -1;
        if (r < 0)
            continue;
        if (c == '\n') {
            buf[n] = '\0';
            return 0;
        }
        buf[n++] = c;
    }
    return -1;
}

/* Writes the "device deployment" pairs the manager knows and starts the status publisher
 * (bench/ingest) for `seconds`, with journal positions (boot, 1), (boot, 2), ... (each run
 * needs a boot above the last one, or the manager rightly refuses its statuses as already
 * seen); returns its pid with its stdout in *fd once it printed
 * CONNECTED, or -1. */
static void pair_row(void *ctx, const char *const *cols, int n)
{
    if (n >= 2)
        fprintf((FILE *)ctx, "%s %s\n", cols[0], cols[1]);
}

static pid_t start_publisher(int seconds, int boot, int *fd)
{
    char pairs[512], bin[512], url[64], log[512], a_pub[16], a_sec[16], a_boot[16];
    snprintf(pairs, sizeof pairs, "%s/pairs.txt", work);
    snprintf(bin, sizeof bin, "%s/bench/mgo-bench-ingest", o.build_dir);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d",
             o.ingest_edge && o.edges > 0 ? edge_port[0] : broker_port);
    snprintf(log, sizeof log, "%s/ingest.log", work);
    snprintf(a_pub, sizeof a_pub, "%d", o.ingest_publishers);
    snprintf(a_sec, sizeof a_sec, "%d", seconds);
    snprintf(a_boot, sizeof a_boot, "%d", boot);
    FILE *f = fopen(pairs, "w");
    if (!f)
        return -1;
    /* mgo-bench-ingest takes at most 20,000 pairs: the rate does not need every device */
    int64_t np = db_rows("SELECT device_id, id FROM deployments WHERE app_id = 'bench-app' AND "
                         "device_id LIKE 'sim-%' ORDER BY device_id LIMIT 20000",
                         pair_row, f);
    fclose(f);
    if (np <= 0)
        return -1;
    char *argv[] = {bin,   (char *)"--url",        url,    (char *)"--pairs",
                    pairs, (char *)"--publishers", a_pub,  (char *)"--seconds",
                    a_sec, (char *)"--boot",       a_boot, NULL};
    pid_t pid = spawn(argv, log, fd);
    if (pid <= 0)
        return -1;
    fcntl(*fd, F_SETFL, 0);
    char line[256];
    if (read_line(*fd, line, sizeof line, 20000) != 0 || strncmp(line, "CONNECTED", 9) != 0) {
        stop_child(&pid, 5000);
        close(*fd);
        return -1;
    }
    return pid;
}

/* The publisher's statuses in the history: those of its journal boot (the simulated devices
 * report with boot 1, each publisher run with a boot of its own). Counted by boot, not as
 * new rows since a count taken after the publisher started: that count raced the publisher,
 * which publishes as soon as it printed CONNECTED, and a status the manager stored before
 * it (psql's count came back up to a second later on a loaded machine) was missing from the
 * difference; the ingest step once reported one of 30,316 statuses "not stored" that way. */
static int64_t ingest_count(int boot)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM status_history WHERE device_id LIKE 'sim-%%' AND "
             "has_journal = 1 AND boot = %d",
             boot);
    return db_count(sql);
}

/* A test hook (tests/manager/bench_ingest_count.sh): a pause after the publisher connected,
 * before the measurement starts, as long as a slow count's start can be. */
static void ingest_start_pause(void)
{
    const char *v = getenv("MGO_BENCH_INGEST_PAUSE_MS");
    int ms = v ? atoi(v) : 0;
    if (ms > 0 && ms <= 10000)
        mgo_bench_sleep_ms(ms);
}

/* After a shortfall: up to 10 devices whose stored seqs have gaps (the publisher sends each
 * device's seqs 1, 2, 3, ... over one connection), for the log. */
static void gap_row(void *ctx, const char *const *cols, int n)
{
    (void)ctx;
    if (n >= 3)
        fprintf(stderr, "bench-fleet: ingest: device %s: %s statuses stored, highest seq %s\n",
                cols[0], cols[1], cols[2]);
}

static void log_ingest_gaps(int boot)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT device_id, count(*), max(seq) FROM status_history WHERE device_id LIKE "
             "'sim-%%' AND has_journal = 1 AND boot = %d GROUP BY device_id HAVING count(*) <> "
             "max(seq) ORDER BY device_id LIMIT 10",
             boot);
    db_rows(sql, gap_row, NULL);
}

/* How long the managers may take to store the backlog after the publishers ended: long enough
 * that a status not stored by then is lost, not slow (a drain of 60 s and more was seen with
 * PostgreSQL on a loaded machine). */
#define INGEST_DRAIN_S 300

static int run_ingest(struct ingest_result *r)
{
    memset(r, 0, sizeof *r);
    int fd = -1;
    /* 0 unless an earlier run of the same boot left rows (then they are not counted) */
    int64_t c0 = ingest_count(2);
    if (c0 < 0)
        return -1;
    pid_t pid = start_publisher(o.ingest_seconds, 2, &fd);
    if (pid <= 0)
        return -1;
    ingest_start_pause();
    char line[256];
    int rc = -1;
    double m0 = mgrs_cpu_s(), b0 = mgo_bench_cpu_s(broker_pid);
    int64_t t0 = mgo_bench_now_ns();
    if (read_line(fd, line, sizeof line, (o.ingest_seconds + 60) * 1000) != 0 ||
        sscanf(line, "PUBLISHED %ld %lf", &r->published, &r->publish_s) != 2)
        goto out;
    int64_t t_pub = mgo_bench_now_ns();
    int64_t c_pub = ingest_count(2);
    double m_pub = mgrs_cpu_s(), b_pub = mgo_bench_cpu_s(broker_pid);
    double win = (double)(t_pub - t0) / 1e9;
    r->rate_window = (double)(c_pub - c0) / win;
    r->mgr_cpu_share = (m_pub - m0) / win;
    r->broker_cpu_share = (b_pub - b0) / win;
    int64_t deadline = t_pub + (int64_t)INGEST_DRAIN_S * 1000000000LL;
    int64_t c = c_pub;
    while (!stop_flag && mgo_bench_now_ns() < deadline && c - c0 < r->published) {
        mgo_bench_sleep_ms(50);
        int64_t n = ingest_count(2);
        if (n >= 0) /* a failed count (-1) is not a count */
            c = n;
    }
    r->stored = c - c0;
    r->drain_s = ms_since(t_pub) / 1000;
    r->rate_overall = (double)r->stored / (ms_since(t0) / 1000);
    r->ok = r->stored == r->published;
    if (!r->ok)
        log_ingest_gaps(2);
    rc = 0;
out:
    stop_child(&pid, 5000);
    close(fd);
    return rc;
}

/* The manager's own ingest rate, without the publishers on the same two cores: the manager
 * is stopped (the broker keeps its persistent session), the publishers fill the session's
 * queue, the publishers stop, and the manager is started again; measured from its start
 * until every queued status is stored (a manager restart or outage with a backlog). */
struct backlog_result {
    bool ok;
    long published;
    int64_t stored;
    double drain_s, rate, mgr_cpu_s, broker_cpu_s;
};

static int run_ingest_backlog(struct backlog_result *r)
{
    memset(r, 0, sizeof *r);
    stop_child(&mgr_pid[0], 10000);
    manager_pid = 0;
    int fd = -1;
    pid_t pid = start_publisher(o.ingest_seconds, 3, &fd);
    if (pid <= 0)
        return -1;
    char line[256];
    double publish_s = 0;
    int ok = read_line(fd, line, sizeof line, (o.ingest_seconds + 60) * 1000) == 0 &&
             sscanf(line, "PUBLISHED %ld %lf", &r->published, &publish_s) == 2;
    stop_child(&pid, 5000);
    close(fd);
    if (!ok)
        return -1;
    int64_t c0 = ingest_count(3); /* 0: the manager was stopped before the publisher ran */
    if (c0 < 0)
        return -1;
    double b0 = mgo_bench_cpu_s(broker_pid);
    int64_t t0 = mgo_bench_now_ns();
    if (start_manager() != 0)
        return -1;
    int64_t deadline = t0 + 120000000000LL, c = c0;
    while (!stop_flag && mgo_bench_now_ns() < deadline && c - c0 < r->published) {
        mgo_bench_sleep_ms(20);
        int64_t n = ingest_count(3);
        if (n >= 0)
            c = n;
    }
    r->drain_s = ms_since(t0) / 1000;
    r->mgr_cpu_s = mgo_bench_cpu_s(manager_pid);
    r->broker_cpu_s = mgo_bench_cpu_s(broker_pid) - b0;
    r->stored = c - c0;
    r->rate = (double)r->stored / r->drain_s;
    r->ok = r->stored == r->published;
    return 0;
}

/* ---- the real agent's footprint ------------------------------------------------------------- */

struct agent_result {
    bool ran;
    long size_bytes;
    long text_bytes; /* text + data of the binary (0 when `size` is missing) */
    struct mgo_bench_mem idle, peak;
    char why[160]; /* error code/message of the final status, if any */
    char final_state[32];
};

static int run_agent(struct agent_result *r)
{
    memset(r, 0, sizeof *r);
    struct stat sb;
    if (!o.agent_bin || stat(o.agent_bin, &sb) != 0)
        return -1;
    r->size_bytes = (long)sb.st_size;
    {
        /* text + data + bss, as `size` prints them (what a stripped binary loads) */
        char cmd[600];
        snprintf(cmd, sizeof cmd, "size -B -d '%s' 2>/dev/null", o.agent_bin);
        FILE *p = popen(cmd, "r");
        char line[256];
        long t = 0, d = 0, b = 0;
        while (p && fgets(line, sizeof line, p)) {
            if (sscanf(line, "%ld %ld %ld", &t, &d, &b) == 3)
                r->text_bytes = t + d;
        }
        if (p)
            pclose(p);
    }
    char state[512], broker[64], log[512];
    snprintf(state, sizeof state, "%s/agent", work);
    snprintf(broker, sizeof broker, "tcp://127.0.0.1:%d", broker_port);
    snprintf(log, sizeof log, "%s/agent.log", work);
    /* a no-op container runtime: every compose/podman call succeeds at once */
    char rt[512];
    snprintf(rt, sizeof rt, "%s/noop-runtime", work);
    FILE *f = fopen(rt, "w");
    if (!f)
        return -1;
    fprintf(f, "#!/bin/sh\nexit 0\n");
    fclose(f);
    chmod(rt, 0700);
    char *argv[] = {(char *)o.agent_bin,
                    (char *)"--device-id",
                    (char *)"agent-real-0",
                    (char *)"--broker-url",
                    broker,
                    (char *)"--state-dir",
                    state,
                    (char *)"--compose-command",
                    rt,
                    (char *)"--container-command",
                    rt,
                    (char *)"--memory",
                    (char *)"4Gi",
                    (char *)"--cpu-cores",
                    (char *)"2",
                    (char *)"--log-level",
                    (char *)"warn",
                    NULL};
    agent_pid = spawn(argv, log, NULL);
    if (agent_pid <= 0)
        return -1;
    int64_t deadline = mgo_bench_now_ns() + 20000000000LL;
    while (!stop_flag && mgo_bench_now_ns() < deadline &&
           db_count("SELECT count(*) FROM devices WHERE id = 'agent-real-0' AND capabilities IS "
                    "NOT NULL") < 1)
        mgo_bench_sleep_ms(50);
    mgo_bench_sleep_ms(3000); /* idle */
    if (mgo_bench_mem_read(agent_pid, &r->idle) != MGO_OK)
        return -1;
    r->ran = true;
    char url[128];
    snprintf(url, sizeof url, "%s/deployments", api_base);
    long status = mgo_bench_http("POST", url, token,
                                 "{\"app\":\"bench-app\",\"devices\":[\"agent-real-0\"]}", NULL);
    r->peak = r->idle;
    deadline = mgo_bench_now_ns() + 30000000000LL;
    snprintf(r->final_state, sizeof r->final_state, "%s",
             status == 201 ? "(no status)" : "(deploy refused)");
    while (status == 201 && !stop_flag && mgo_bench_now_ns() < deadline) {
        struct mgo_bench_mem m;
        if (mgo_bench_mem_read(agent_pid, &m) == MGO_OK) {
            if (m.private_kb > r->peak.private_kb)
                r->peak.private_kb = m.private_kb;
            if (m.rss_kb > r->peak.rss_kb)
                r->peak.rss_kb = m.rss_kb;
            if (m.pss_kb > r->peak.pss_kb)
                r->peak.pss_kb = m.pss_kb;
            r->peak.hwm_kb = m.hwm_kb;
        }
        if (db_count("SELECT count(*) FROM status WHERE device_id = 'agent-real-0' AND state IN "
                     "('installed','failed')") >= 1) {
            sqlite3_stmt *st = NULL;
            if (sqlite3_prepare_v2(db, "SELECT state FROM status WHERE device_id = 'agent-real-0'",
                                   -1, &st, NULL) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW)
                snprintf(r->final_state, sizeof r->final_state, "%s",
                         (const char *)sqlite3_column_text(st, 0));
            sqlite3_finalize(st);
            st = NULL;
            /* why it failed, from the stored document ("code":"...","message":"...") */
            if (sqlite3_prepare_v2(db, "SELECT doc FROM status WHERE device_id = 'agent-real-0'",
                                   -1, &st, NULL) == SQLITE_OK &&
                sqlite3_step(st) == SQLITE_ROW) {
                const char *doc = (const char *)sqlite3_column_text(st, 0);
                const char *c = doc ? strstr(doc, "\"code\":\"") : NULL;
                if (c)
                    snprintf(r->why, sizeof r->why, "%.40s", c + 8);
                char *q = strchr(r->why, '"');
                if (q)
                    *q = '\0';
            }
            sqlite3_finalize(st);
            break;
        }
        mgo_bench_sleep_ms(5);
    }
    struct mgo_bench_mem m;
    if (mgo_bench_mem_read(agent_pid, &m) == MGO_OK && m.hwm_kb > r->peak.hwm_kb)
        r->peak.hwm_kb = m.hwm_kb;
    return 0;
}

/* ---- main
 * ---------------------------------------------------------------------------------------- */

static void cleanup(void)
{
    for (int i = 0; i < n_procs; i++)
        stop_child(&sim_pid[i], 5000);
    stop_child(&agent_pid, 5000);
    for (int i = 0; i < MAX_MGRS; i++)
        stop_child(&mgr_pid[i], 10000);
    manager_pid = 0;
    for (int i = 0; i < MAX_EDGES; i++)
        stop_child(&edge_pid[i], 10000);
    stop_child(&broker_pid, 10000);
    if (db)
        sqlite3_close(db);
    db = NULL;
    if (work[0] && getenv("MGO_BENCH_KEEP") == NULL) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
        if (system(cmd) != 0)
            fprintf(stderr, "bench-fleet: could not remove %s\n", work);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mgo-bench-fleet [--build DIR] [--app FILE] [--devices N] [--per-proc N]\n"
            "         [--delay-ms D] [--connect-rate R] [--storm] [--poll] [--poll-requests N]\n"
            "         [--agent BIN] [--timeout S] [--broker-inflight N] [--ingest-seconds S]\n"
            "         [--ingest-publishers N] [--rollout-fail PCT [--rollout-batches N]\n"
            "         [--rollout-threshold PCT]] [--out FILE]\n"
            "         [--edges K [--bridge-conf FILE]] [--managers M] [--store URL]\n"
            "         [--no-backlog] [--ingest-edge]\n");
}

static int int_arg(const char *v, int lo, int hi, int *out_v)
{
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (!end || *end || x < lo || x > hi)
        return -1;
    *out_v = (int)x;
    return 0;
}

/* A percentage, 0 to 50 (at most every second device fails). */
static int pct_arg(const char *v, double *out_v)
{
    char *end = NULL;
    double x = strtod(v, &end);
    if (!end || *end || end == v || !(x >= 0 && x <= 50))
        return -1;
    *out_v = x;
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--storm") == 0) {
            o.storm = true;
            continue;
        }
        if (strcmp(a, "--poll") == 0) {
            o.poll = true;
            continue;
        }
        if (strcmp(a, "--no-backlog") == 0) {
            o.backlog = false;
            continue;
        }
        if (strcmp(a, "--ingest-edge") == 0) {
            o.ingest_edge = true;
            continue;
        }
        if (!v) {
            usage();
            return 2;
        }
        i++;
        int bad = 0;
        if (strcmp(a, "--build") == 0)
            o.build_dir = v;
        else if (strcmp(a, "--app") == 0)
            o.app_file = v;
        else if (strcmp(a, "--out") == 0)
            o.out_file = v;
        else if (strcmp(a, "--agent") == 0)
            o.agent_bin = v;
        else if (strcmp(a, "--devices") == 0)
            bad = int_arg(v, 1, MAX_DEVICES, &o.devices);
        else if (strcmp(a, "--edges") == 0)
            bad = int_arg(v, 0, MAX_EDGES, &o.edges);
        else if (strcmp(a, "--bridge-conf") == 0)
            o.bridge_conf = v;
        else if (strcmp(a, "--managers") == 0)
            bad = int_arg(v, 1, MAX_MGRS, &o.managers);
        else if (strcmp(a, "--store") == 0) {
            if (strcmp(v, "sqlite") == 0)
                o.store = NULL;
            else if (strncmp(v, "postgresql://", 13) == 0 && !strpbrk(v, "'\\"))
                o.store = v;
            else
                bad = -1; /* "sqlite" or a postgresql:// URL without quotes */
        } else if (strcmp(a, "--per-proc") == 0)
            bad = int_arg(v, 1, 5000, &o.per_proc);
        else if (strcmp(a, "--delay-ms") == 0)
            bad = int_arg(v, 0, 60000, &o.delay_ms);
        else if (strcmp(a, "--connect-rate") == 0)
            bad = int_arg(v, 1, 100000, &o.connect_rate);
        else if (strcmp(a, "--poll-requests") == 0)
            bad = int_arg(v, 1, 1000000, &o.poll_requests);
        else if (strcmp(a, "--ingest-seconds") == 0)
            bad = int_arg(v, 0, 600, &o.ingest_seconds);
        else if (strcmp(a, "--ingest-publishers") == 0)
            bad = int_arg(v, 1, 64, &o.ingest_publishers);
        else if (strcmp(a, "--broker-inflight") == 0)
            bad = int_arg(v, 0, 65535, &o.broker_inflight);
        else if (strcmp(a, "--rollout-fail") == 0)
            bad = pct_arg(v, &o.rollout_fail_pct);
        else if (strcmp(a, "--rollout-threshold") == 0)
            bad = pct_arg(v, &o.rollout_threshold_pct);
        else if (strcmp(a, "--rollout-batches") == 0)
            bad = int_arg(v, 1, 100, &o.rollout_batches);
        else if (strcmp(a, "--timeout") == 0)
            bad = int_arg(v, 1, 3600, &o.timeout_s);
        else
            bad = -1;
        if (bad) {
            fprintf(stderr, "mgo-bench-fleet: %s: bad value \"%s\"\n", a, v);
            usage();
            return 2;
        }
    }
    /* each edge holds at most ~19,000 connections under a 20,000 open-files limit, so the
     * simulators' processes are spread over the edges (or all on the core without edges) */
    int procs = (o.devices + o.per_proc - 1) / o.per_proc;
    int per_broker = (procs + (o.edges ? o.edges : 1) - 1) / (o.edges ? o.edges : 1) * o.per_proc;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* the brokers inherit it */
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)(per_broker < o.devices ? per_broker : o.devices) + 200 > rl.rlim_cur) {
        fprintf(stderr,
                "mgo-bench-fleet: up to %d device connections on one broker do not fit its "
                "open-files limit (%llu): use more --edges\n",
                per_broker < o.devices ? per_broker : o.devices, (unsigned long long)rl.rlim_cur);
        return 2;
    }
    if (procs > MAX_PROCS) {
        fprintf(stderr, "mgo-bench-fleet: %d simulator processes > %d: raise --per-proc\n", procs,
                MAX_PROCS);
        return 2;
    }
    if (o.edges > 0 && o.storm) {
        fprintf(stderr,
                "mgo-bench-fleet: --storm restarts the devices' broker: not with --edges\n");
        return 2;
    }
    if (o.store && (o.agent_bin || o.rollout_fail_pct >= 0)) {
        fprintf(stderr, "mgo-bench-fleet: --agent and --rollout-fail read SQLite: not with a "
                        "PostgreSQL --store\n");
        return 2;
    }
    if (o.managers > 1 && !o.store) {
        fprintf(stderr,
                "mgo-bench-fleet: --managers %d: several managers share one store: give "
                "--store postgresql://...\n",
                o.managers);
        return 2;
    }
    if (o.store && !manager_has_option("--store")) {
        fprintf(stderr, "mgo-bench-fleet: %s/manager/margo-manager has no --store option\n",
                o.build_dir);
        return 2;
    }
    if (o.managers > 1 && !manager_has_option("--share-group")) {
        fprintf(stderr, "mgo-bench-fleet: %s/manager/margo-manager has no --share-group option\n",
                o.build_dir);
        return 2;
    }
    if (o.managers > 1)
        o.backlog = false; /* the backlog step stops and restarts one manager */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (o.out_file && !(out = fopen(o.out_file, "a"))) {
        fprintf(stderr, "mgo-bench-fleet: --out: cannot open %s\n", o.out_file);
        return 2;
    }
    track = calloc((size_t)o.devices, sizeof *track);
    snprintf(work, sizeof work, "/tmp/mgo-bench-fleet.XXXXXX");
    if (!track || !mkdtemp(work)) {
        work[0] = '\0';
        return 1;
    }
    int rc = 1;
    char load[64];
    struct mgo_bench_mem mem0 = {0}, memN = {0};
    if (start_broker() != 0)
        goto done;
    for (int i = 0; i < o.edges; i++) {
        if (start_edge(i) != 0)
            goto done;
    }
    for (int i = 0; i < o.managers; i++) {
        if (start_manager_n(i) != 0)
            goto done;
    }
    /* the application */
    {
        struct mgo_buf app;
        mgo_buf_init(&app, 1u << 20);
        char url[128];
        snprintf(url, sizeof url, "%s/apps", api_base);
        long st = -1;
        if (mgo_buf_read_file(&app, o.app_file) == MGO_OK)
            st = mgo_bench_http("POST", url, token, (const char *)app.data, NULL);
        mgo_buf_cleanup(&app);
        if (st != 201) {
            fprintf(stderr, "bench-fleet: POST /apps of %s answered %ld\n", o.app_file, st);
            goto done;
        }
    }
    mgo_bench_sleep_ms(500);
    if (mgo_bench_mem_read(manager_pid, &mem0) != MGO_OK)
        goto done;
    double mgrs_kb0 = rss_sum(mgr_pid, o.managers), core_kb0 = rss_sum(&broker_pid, 1),
           edges_kb0 = rss_sum(edge_pid, o.edges);
    char load_start[64];
    mgo_bench_loadavg(load_start, sizeof load_start);

    mgo_bench_loadavg(load, sizeof load);
    outf("\n### Fleet of %d simulated devices (%d simulator processes, no-op runtime, "
         "install delay %d ms per component, broker max_inflight_messages %d)\n\n"
         "Load average at start: %s.\n\n",
         o.devices, (o.devices + o.per_proc - 1) / o.per_proc, o.delay_ms, o.broker_inflight, load);

    /* registration */
    int64_t t_reg = mgo_bench_now_ns();
    if (start_sims() != 0)
        goto done;
    int64_t deadline = t_reg + (int64_t)o.timeout_s * 1000000000;
    int64_t known = 0;
    while (!stop_flag && mgo_bench_now_ns() < deadline) {
        pump(50);
        if (n_ready_procs < n_procs)
            continue;
        known = db_count("SELECT count(*) FROM devices WHERE id LIKE 'sim-%' AND capabilities IS "
                         "NOT NULL AND has_presence = 1");
        if (known >= o.devices)
            break;
    }
    if (known < o.devices) {
        fprintf(stderr, "bench-fleet: only %" PRId64 " of %d devices registered\n", known,
                o.devices);
        goto done;
    }
    double reg_s = ms_since(t_reg) / 1000;
    mgo_bench_sleep_ms(1000);
    pump(0);
    if (mgo_bench_mem_read(manager_pid, &memN) != MGO_OK)
        goto done;
    double per_dev_kb = (double)(memN.rss_kb - mem0.rss_kb) / o.devices;
    /* memory per device of each part, total RSS / N (and the managers' and brokers' growth
     * from before the devices came), with every device registered */
    double mgrs_kb = rss_sum(mgr_pid, o.managers), core_kb = rss_sum(&broker_pid, 1),
           edges_kb = rss_sum(edge_pid, o.edges), sims_kb = rss_sum(sim_pid, n_procs);
    int core_sockets = count_sockets(broker_pid);
    int edge_sockets_max = 0;
    double edge_kb_max = 0;
    for (int i = 0; i < o.edges; i++) {
        int k = count_sockets(edge_pid[i]);
        double kb = rss_sum(&edge_pid[i], 1);
        edge_sockets_max = k > edge_sockets_max ? k : edge_sockets_max;
        edge_kb_max = kb > edge_kb_max ? kb : edge_kb_max;
    }
    int edge_devices_max = 0;
    for (int e = 0; e < o.edges; e++) {
        int d = 0;
        for (int i = 0; i < n_procs; i++)
            d += sim_edge[i] == e ? sim_count[i] : 0;
        edge_devices_max = d > edge_devices_max ? d : edge_devices_max;
    }
    outf("| measurement | result | goal (issue 8) | |\n|---|---|---|---|\n");
    outf("| registration: %d devices connected (rate-limited to %d connects/s), capabilities + "
         "presence stored | %.2f s | – | |\n",
         o.devices, o.connect_rate, reg_s);
    outf("| manager RSS with 0 → %d devices registered | %.1f → %.1f MiB (**%.2f KiB per device**) "
         "| – | |\n",
         o.devices, MIB(mem0.rss_kb), MIB(memN.rss_kb), per_dev_kb);

    /* convergence */
    struct conv_result cr;
    mgo_bench_loadavg(load, sizeof load);
    if (run_convergence(&cr) != 0)
        goto done;
    double goal_s = o.devices <= 1000 ? 1.0 : (double)o.devices / 1000.0;
    double mgrs_kb_c = rss_sum(mgr_pid, o.managers),
           brokers_kb_c = rss_sum(&broker_pid, 1) + rss_sum(edge_pid, o.edges),
           sims_kb_c = rss_sum(sim_pid, n_procs);
    char load_conv[64];
    mgo_bench_loadavg(load_conv, sizeof load_conv);
    outf("| deploy API calls (%d × POST /deployments, ≤256 devices each) | %.0f ms | – | |\n",
         (o.devices + 255) / 256, cr.api_ms);
    outf("| push: deploy call → device holds manifest + document (digest verified), p50 / p99 / "
         "max | %.0f / %.0f / %.0f ms | – | |\n",
         cr.push.p50, cr.push.p99, cr.push.max);
    outf("| **convergence: deploy call → `installed` stored by the manager**, p50 / p99 per device "
         "| %.0f / %.0f ms | – | |\n",
         cr.stored.p50, cr.stored.p99);
    outf("| **convergence total (last device stored)** | **%.2f s** | < %.0f s | %s |\n",
         cr.stored.max / 1000, goal_s, met(cr.stored.max / 1000 < goal_s));
    outf("| CPU during convergence (%.1f s wall): manager / broker | %.2f / %.2f core-s (%.0f%% / "
         "%.0f%% of a core) | – | |\n",
         cr.wall_s, cr.mgr_cpu_s, cr.broker_cpu_s, 100 * cr.mgr_cpu_s / cr.wall_s,
         100 * cr.broker_cpu_s / cr.wall_s);
    char inflight_note[64] = "";
    if (o.broker_inflight > 0)
        snprintf(inflight_note, sizeof inflight_note, " [broker max_inflight_messages %d]",
                 o.broker_inflight);
    printf(
        "SUMMARY fleet-%d: convergence total %.2f s (goal < %.0f s: %s), p50 %.0f ms p99 %.0f ms; "
        "push p50 %.0f ms; manager %.2f KiB/device (load %s)%s\n",
        o.devices, cr.stored.max / 1000, goal_s, cr.stored.max / 1000 < goal_s ? "met" : "missed",
        cr.stored.p50, cr.stored.p99, cr.push.p50, per_dev_kb, load, inflight_note);

    if (o.rollout_fail_pct >= 0) {
        struct rollout_result rr;
        char l2[64];
        mgo_bench_loadavg(l2, sizeof l2);
        if (run_rollout(&rr) != 0)
            goto done;
        char l3[64];
        mgo_bench_loadavg(l3, sizeof l3);
        long expect_failed = 0;
        for (int i = 0; i < o.devices; i++)
            expect_failed += rollout_fails(i);
        outf("\n**Rollout of version 2.0** (upgrade of every device's deployment, %d batches of "
             "%d %%, abort past %g %% app-class failures per batch or overall, onAbort rollback; "
             "the 2.0 install fails with RUNTIME_FAILED on every %d-th device: %ld of %d, %g %%). "
             "Times: plain deploy = first deploy call → last `installed` stored by the manager; "
             "rollout = create call → the first GET /rollouts/{id} showing the final state "
             "(polled every 250 ms, so up to 0.25 s late; the polls are in the manager's CPU). "
             "Load average at the rollout's start / end: %s / %s.\n\n",
             o.rollout_batches, (100 + o.rollout_batches - 1) / o.rollout_batches,
             o.rollout_threshold_pct,
             o.rollout_fail_pct > 0 ? (int)(100.0 / o.rollout_fail_pct + 0.5) : 0, expect_failed,
             o.devices, o.rollout_fail_pct, l2, l3);
        outf("| | plain deploy of 1.0 (above) | rollout of 2.0 |\n|---|---|---|\n");
        outf("| final state | every device `installed` | `%s` |\n", rr.state);
        outf("| **time: first API call → final state** | **%.2f s** | **%.2f s** |\n",
             cr.stored.max / 1000, rr.final_s);
        if (rr.abort_s >= 0)
            outf("| time: create → abort seen (`rolling-back`) | – | %.2f s |\n", rr.abort_s);
        outf("| **manager CPU** (user+sys) | **%.2f core-s** | **%.2f core-s** |\n", cr.mgr_cpu_s,
             rr.mgr_cpu_s);
        outf("| broker CPU | %.2f core-s | %.2f core-s |\n", cr.broker_cpu_s, rr.broker_cpu_s);
        outf("| targets: succeeded / failed / rolled-back / rollback-failed | – | %ld / %ld / %ld "
             "/ %ld of %ld |\n",
             rr.succeeded, rr.failed, rr.rolled_back, rr.rollback_failed, rr.targets);
        outf("| failures by class: app / device | – | %ld / %ld |\n", rr.fail_app, rr.fail_device);
        outf("| deployments stored `installed` at the end: on 1.0 / on 2.0 | %d / 0 | %" PRId64
             " / %" PRId64 " |\n",
             o.devices, rr.on_v1, rr.on_v2);
        char abort_at[32] = "-";
        if (rr.abort_s >= 0)
            snprintf(abort_at, sizeof abort_at, "%.2f", rr.abort_s);
        printf(
            "SUMMARY rollout-%d-fail-%g: %s in %.2f s, abort %s s, manager %.2f core-s, on "
            "1.0/2.0 %" PRId64 "/%" PRId64 ", app failures %ld; plain deploy %.2f s, manager %.2f "
            "core-s, rolled back %ld (load %s)\n",
            o.devices, o.rollout_fail_pct, rr.state, rr.final_s, abort_at, rr.mgr_cpu_s, rr.on_v1,
            rr.on_v2, rr.fail_app, cr.stored.max / 1000, cr.mgr_cpu_s, rr.rolled_back, l2);
    }

    struct ingest_result ir_kept = {0};
    bool ingest_ran = false;
    char load_ingest[64] = "-";
    if (o.ingest_seconds > 0) {
        struct ingest_result ir;
        char l2[64];
        mgo_bench_loadavg(l2, sizeof l2);
        if (run_ingest(&ir) != 0) {
            outf("\n(status ingest not measured: the publisher failed; see ingest.log)\n");
        } else {
            ir_kept = ir;
            ingest_ran = true;
            mgo_bench_loadavg(load_ingest, sizeof load_ingest);
            outf(
                "\n**Status ingest**: %d publisher connections (QoS 1, window 500 each) sending "
                "valid statuses (real codec, increasing journal positions) for the %d deployments "
                "the manager knows, for %d s; stored = the publisher's statuses (its journal boot) "
                "in the manager's status_history (SQLite, WAL, synchronous=FULL). The publisher "
                "runs on the same two cores as the manager and the broker and needs more than "
                "one core itself (see the backlog measurement below for the manager alone). Load "
                "average before: %s.\n\n",
                o.ingest_publishers, o.devices, o.ingest_seconds, l2);
            outf("| measurement | result | goal | |\n|---|---|---|---|\n");
            outf("| published (all acknowledged by the broker) | %ld in %.1f s (%.0f/s offered) | "
                 "– | |\n",
                 ir.published, ir.publish_s, (double)ir.published / ir.publish_s);
            outf("| **stored per second while publishing** | **%.0f/s** | ≥ 20,000/s | %s |\n",
                 ir.rate_window, met(ir.rate_window >= 20000));
            outf("| stored after publishing ended (%ld of %ld; waited at most 300 s) | +%.1f s "
                 "(overall %.0f/s) | every message stored | %s |\n",
                 (long)ir.stored, ir.published, ir.drain_s, ir.rate_overall,
                 ir.ok ? "met" : "**missed: not all stored within 300 s**");
            outf("| CPU while publishing: manager / broker | %.0f%% / %.0f%% of a core | – | |\n",
                 100 * ir.mgr_cpu_share, 100 * ir.broker_cpu_share);
            printf(
                "SUMMARY ingest: %.0f statuses/s stored (goal >= 20000: %s), manager %.0f%% of a "
                "core, broker %.0f%%, %s (load %s)\n",
                ir.rate_window, ir.rate_window >= 20000 ? "met" : "missed", 100 * ir.mgr_cpu_share,
                100 * ir.broker_cpu_share, ir.ok ? "all stored" : "NOT all stored within 300 s",
                l2);
        }
        struct backlog_result br;
        mgo_bench_loadavg(l2, sizeof l2);
        if (!o.backlog) {
            /* not asked for (--no-backlog, or several managers) */
        } else if (run_ingest_backlog(&br) != 0) {
            outf("\n(backlog ingest not measured: the publisher or the manager restart failed)\n");
        } else {
            outf("\n**Status ingest from a backlog** (the manager alone on its core): the manager "
                 "is stopped, its persistent session stays with the broker, the same publishers "
                 "queue statuses for %d s and stop, then the manager starts again and stores the "
                 "backlog; time from the manager's start to the last status stored. Load average "
                 "before: %s.\n\n",
                 o.ingest_seconds, l2);
            outf("| measurement | result | goal | |\n|---|---|---|---|\n");
            outf("| statuses queued for the manager | %ld | – | |\n", br.published);
            outf("| **stored per second** (%lld stored in %.2f s, incl. the manager's start) | "
                 "**%.0f/s** | ≥ 20,000/s | %s |\n",
                 (long long)br.stored, br.drain_s, br.rate, met(br.rate >= 20000 && br.ok));
            outf("| CPU: manager / broker | %.2f / %.2f core-s (%.0f%% / %.0f%% of a core) | – | "
                 "|\n",
                 br.mgr_cpu_s, br.broker_cpu_s, 100 * br.mgr_cpu_s / br.drain_s,
                 100 * br.broker_cpu_s / br.drain_s);
            printf("SUMMARY ingest-backlog: %.0f statuses/s stored (goal >= 20000: %s), %lld of "
                   "%ld, manager %.0f%% of a core, broker %.0f%% (load %s)\n",
                   br.rate, br.rate >= 20000 && br.ok ? "met" : "missed", (long long)br.stored,
                   br.published, 100 * br.mgr_cpu_s / br.drain_s,
                   100 * br.broker_cpu_s / br.drain_s, l2);
        }
    }

    if (o.poll) {
        struct poll_result pr = {0};
        if (run_polling(&pr) != 0)
            fprintf(stderr, "bench-fleet: some polls failed\n");
        outf("\n**Polling baseline** (Margo-style HTTP polling, simulated: each poll = new TCP "
             "connection + GET /api/v1/deployments?device=D against the same manager with %d "
             "devices; %d polls measured):\n\n",
             o.devices, o.poll_requests);
        outf(
            "| | poll 30 s | poll 300 s | margo-mqtt push (measured above) |\n|---|---|---|---|\n");
        outf("| time to notice a change, mean | %.1f s | %.1f s | %.3f s (p50) |\n",
             15 + pr.lat.p50 / 1000, 150 + pr.lat.p50 / 1000, cr.push.p50 / 1000);
        outf("| time to notice a change, p99 | %.1f s | %.1f s | %.3f s |\n",
             29.7 + pr.lat.p99 / 1000, 297 + pr.lat.p99 / 1000, cr.push.p99 / 1000);
        outf("| requests/s at idle (N / interval) | %.1f | %.1f | 0 (MQTT keepalive only: N/60 "
             "PINGREQ/s to the broker) |\n",
             o.devices / 30.0, o.devices / 300.0);
        outf("| manager CPU at idle (rate × %.0f µs per poll) | %.2f%% of a core | %.3f%% of a "
             "core | 0 |\n",
             pr.mgr_cpu_us_per_req, o.devices / 30.0 * pr.mgr_cpu_us_per_req / 1e4,
             o.devices / 300.0 * pr.mgr_cpu_us_per_req / 1e4);
        outf("\nOne poll costs %.2f ms p50 / %.2f ms p99 (client side, loopback, no TLS). The "
             "notice time of polling is uniform(0, interval) + the request (mean interval/2, p99 "
             "0.99 × interval); it is computed, not waited for.\n",
             pr.lat.p50, pr.lat.p99);
        printf("SUMMARY polling-%d: poll %.2f ms p50, %.0f µs manager CPU per poll; 30 s polling: "
               "mean notice 15 s, %.1f req/s idle; push p50 %.3f s\n",
               o.devices, pr.lat.p50, pr.mgr_cpu_us_per_req, o.devices / 30.0, cr.push.p50 / 1000);
    }

    if (o.agent_bin) {
        struct agent_result ar;
        if (run_agent(&ar) == 0 && ar.ran) {
            outf("\n**margo-agent footprint** (the real agent, RelWithDebInfo build, no-op "
                 "runtime script):\n\n| | value | goal | |\n|---|---|---|---|\n");
            outf("| binary: file (with debug info) / text+data (`size`) | %ld KiB / %ld KiB | – | "
                 "|\n",
                 ar.size_bytes / 1024, ar.text_bytes / 1024);
            outf("| idle: private (Private_Clean+Private_Dirty) / RssAnon / total RSS / PSS | "
                 "%.2f / %.2f / %.2f / %.2f MiB | private < 2 MiB | %s |\n",
                 MIB(ar.idle.private_kb), MIB(ar.idle.anon_kb), MIB(ar.idle.rss_kb),
                 MIB(ar.idle.pss_kb), met(ar.idle.private_kb < 2048));
            outf(
                "| during a deploy (sampled every 5 ms; ended `%s`%s%s): peak private / peak RSS / "
                "VmHWM | %.2f / %.2f / %.2f MiB | – | |\n",
                ar.final_state, ar.why[0] ? ", code " : "", ar.why, MIB(ar.peak.private_kb),
                MIB(ar.peak.rss_kb), MIB(ar.peak.hwm_kb));
            printf("SUMMARY agent: binary %ld KiB (text+data %ld KiB), idle private %.2f MiB (goal "
                   "< 2 MiB: %s), RSS "
                   "%.2f MiB; deploy peak private %.2f MiB (%s)\n",
                   ar.size_bytes / 1024, ar.text_bytes / 1024, MIB(ar.idle.private_kb),
                   ar.idle.private_kb < 2048 ? "met" : "missed", MIB(ar.idle.rss_kb),
                   MIB(ar.peak.private_kb), ar.final_state);
        } else {
            outf("\n(margo-agent footprint not measured: the agent did not start or register; see "
                 "the bench log)\n");
        }
    }

    if (o.storm) {
        struct storm_result sr;
        if (run_storm(&sr) != 0)
            goto done;
        outf("\n**Reconnect storm**: broker stopped with SIGTERM (persistence saved) and started "
             "again with all %d devices and the manager connected; devices reconnect with the "
             "agent's jittered backoff (mgo/backoff.h, 500 ms base, 5 s cap); with a resumed "
             "session the device keeps its subscriptions and desired state, with a new one it "
             "subscribes again and waits for the retained manifest.\n\n",
             o.devices);
        outf("| measurement | result | goal | |\n|---|---|---|---|\n");
        outf("| broker stop + restart until it accepts connections | %.0f ms | – | |\n",
             sr.restart_ms);
        outf(
            "| broker up → device reconnected, p50 / p99 / max (%zu of %d) | %.0f / %.0f / %.0f ms "
            "| – | |\n",
            sr.n_connected, o.devices, sr.connect.p50, sr.connect.p99, sr.connect.max);
        outf("| **broker up → every device back in sync with its desired state** (%zu of %d) | "
             "**%.2f s** (p50 %.0f ms) | < 10 s | %s |\n",
             sr.n_resynced, o.devices, sr.resync.max / 1000, sr.resync.p50,
             met(sr.ok && sr.resync.max < 10000));
        outf("| broker up → manager has stored every device's fresh presence | %.2f s | – | |\n",
             sr.presence_ms / 1000);
        outf("| manager CPU during the storm | %.2f core-s | – | |\n", sr.mgr_cpu_s);
        printf("SUMMARY storm-%d: resynced in %.2f s (goal < 10 s: %s), manager presence %.2f s\n",
               o.devices, sr.resync.max / 1000, sr.ok && sr.resync.max < 10000 ? "met" : "missed",
               sr.presence_ms / 1000);
    }
    {
        /* one key=value line per run for scripts/bench.sh --scale-only (ingest_* = -1: not
         * measured; ingest_ok 0: not every published status stored within 300 s) */
        char l_end[64];
        mgo_bench_loadavg(l_end, sizeof l_end);
        double n = o.devices;
        printf(
            "SCALE devices=%d edges=%d managers=%d store=%s ingest_via=%s sims=%d reg_s=%.2f "
            "conv_s=%.2f "
            "p50_ms=%.0f p99_ms=%.0f push_p99_ms=%.0f api_ms=%.0f conv_wall_s=%.2f "
            "mgr_cpu_s=%.2f core_cpu_s=%.2f edge_cpu_s=%.2f sims_cpu_s=%.2f pg_cpu_s=%.2f "
            "mgr_kib=%.2f mgr_delta_kib=%.2f core_kib=%.2f edges_kib=%.2f brokers_delta_kib=%.2f "
            "sims_kib=%.2f mgr_kib_conv=%.2f brokers_kib_conv=%.2f sims_kib_conv=%.2f "
            "core_sockets=%d edge_devices_max=%d edge_sockets_max=%d edge_rss_mib_max=%.1f "
            "core_rss_mib=%.1f mgr_rss_mib=%.1f "
            "ingest_rate=%.0f ingest_overall=%.0f ingest_drain_s=%.1f ingest_published=%ld "
            "ingest_stored=%lld ingest_ok=%d "
            "ingest_mgr_core=%.2f ingest_broker_core=%.2f "
            "load_start=%s load_conv=%s load_ingest=%s load_end=%s\n",
            o.devices, o.edges, o.managers, o.store ? "postgresql" : "sqlite",
            o.ingest_edge && o.edges > 0 ? "edge" : "core", n_procs, reg_s, cr.stored.max / 1000,
            cr.stored.p50, cr.stored.p99, cr.push.p99, cr.api_ms, cr.wall_s, cr.mgr_cpu_s,
            cr.broker_cpu_s, cr.edge_cpu_s, cr.sims_cpu_s, cr.store_cpu_s, mgrs_kb / n,
            (mgrs_kb - mgrs_kb0) / n, core_kb / n, edges_kb / n,
            (core_kb + edges_kb - core_kb0 - edges_kb0) / n, sims_kb / n, mgrs_kb_c / n,
            brokers_kb_c / n, sims_kb_c / n, core_sockets, edge_devices_max, edge_sockets_max,
            MIB(edge_kb_max), MIB(core_kb), MIB(mgrs_kb), ingest_ran ? ir_kept.rate_window : -1.0,
            ingest_ran ? ir_kept.rate_overall : -1.0, ingest_ran ? ir_kept.drain_s : -1.0,
            ingest_ran ? ir_kept.published : -1L, ingest_ran ? (long long)ir_kept.stored : -1LL,
            ingest_ran && ir_kept.ok, ingest_ran ? ir_kept.mgr_cpu_share : -1.0,
            ingest_ran ? ir_kept.broker_cpu_share : -1.0, dashes(load_start), dashes(load_conv),
            dashes(load_ingest), dashes(l_end));
    }
    rc = 0;
done:
    if (stop_flag)
        fprintf(stderr, "bench-fleet: interrupted\n");
    cleanup();
    if (out)
        fclose(out);
    free(track);
    return rc;
}
