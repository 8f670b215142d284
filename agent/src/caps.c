/* caps.c - capability detection: cpu (sysconf, uname), memory (sysinfo), storage (statvfs),
 * network interfaces (/sys/class/net), GPUs (/dev/nvidia*, /dev/dri), merged with config. */
#include "caps.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "mgo/log.h"

#define TAG "agent.caps"
#define MAX_IFACES 32u
#define MAX_PERIPH 32u

static const char *read_line(const char *root, const char *path, struct mgo_arena *arena)
{
    char p[1024], buf[256];
    snprintf(p, sizeof p, "%s%s", root, path);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return NULL;
    const char *out = NULL;
    if (fgets(buf, sizeof buf, f) != NULL) {
        buf[strcspn(buf, "\r\n")] = '\0';
        size_t l = strlen(buf);
        while (l > 0 && buf[l - 1] == ' ')
            buf[--l] = '\0';
        bool printable = l > 0;
        for (size_t i = 0; i < l; i++)
            if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
                printable = false;
        if (printable)
            out = mgo_arena_strdup(arena, buf);
    }
    fclose(f);
    return out;
}

static bool exists(const char *root, const char *path)
{
    char p[1024];
    snprintf(p, sizeof p, "%s%s", root, path);
    return access(p, F_OK) == 0;
}

static unsigned arch_bit(const char *machine)
{
    if (strcmp(machine, "x86_64") == 0 || strcmp(machine, "amd64") == 0)
        return MGO_ARCH_AMD64;
    if (strcmp(machine, "aarch64") == 0 || strcmp(machine, "arm64") == 0)
        return MGO_ARCH_ARM64;
    if (strncmp(machine, "arm", 3) == 0)
        return MGO_ARCH_ARM;
    if (strcmp(machine, "riscv64") == 0)
        return MGO_ARCH_RISCV64;
    return MGO_ARCH_OTHER;
}

static mgo_err detect_interfaces(const char *root, struct mgo_arena *arena,
                                 struct mgo_capabilities *caps)
{
    caps->interfaces = mgo_arena_alloc(arena, MAX_IFACES * sizeof *caps->interfaces);
    if (caps->interfaces == NULL)
        return MGO_ERR_NOMEM;
    char dirp[1024];
    snprintf(dirp, sizeof dirp, "%s/sys/class/net", root);
    DIR *d = opendir(dirp);
    if (d == NULL)
        return MGO_OK;
    bool seen[MGO_IFACE_OTHER + 1] = {false};
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (n[0] == '.' || strcmp(n, "lo") == 0)
            continue;
        char p[1300], real[1300];
        snprintf(p, sizeof p, "%s/%s", dirp, n);
        /* virtual interfaces (bridges, veth, tunnels, container networks) are not hardware */
        if (realpath(p, real) != NULL && strstr(real, "/devices/virtual/") != NULL)
            continue;
        enum mgo_interface_type t = MGO_IFACE_ETHERNET;
        char sub[1400];
        snprintf(sub, sizeof sub, "%s/wireless", p);
        char type_path[1400];
        snprintf(type_path, sizeof type_path, "/sys/class/net/%s/type", n);
        const char *type = read_line(root, type_path, arena);
        if (access(sub, F_OK) == 0 || strncmp(n, "wl", 2) == 0)
            t = MGO_IFACE_WIFI;
        else if (strncmp(n, "wwan", 4) == 0 || strncmp(n, "rmnet", 5) == 0)
            t = MGO_IFACE_CELLULAR;
        else if ((type != NULL && strcmp(type, "280") == 0) || strncmp(n, "can", 3) == 0)
            t = MGO_IFACE_CANBUS;
        else if (strncmp(n, "bnep", 4) == 0)
            t = MGO_IFACE_BLUETOOTH;
        else if (strncmp(n, "usb", 3) == 0)
            t = MGO_IFACE_USB;
        if (!seen[t] && caps->interfaces_len < MAX_IFACES) {
            seen[t] = true;
            caps->interfaces[caps->interfaces_len++] = t;
        }
    }
    closedir(d);
    return MGO_OK;
}

static mgo_err parse_peripheral(const char *text, struct mgo_arena *arena,
                                struct mgo_peripheral *out)
{
    static const char *const names[] = {"gpu", "display", "camera", "microphone", "speaker"};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    char *man = strchr(buf, ':');
    char *model = NULL;
    if (man != NULL) {
        *man++ = '\0';
        model = strchr(man, ':');
        if (model != NULL)
            *model++ = '\0';
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(buf, names[i]) == 0) {
            out->type = (enum mgo_peripheral_type)i;
            out->manufacturer = man && *man ? mgo_arena_strdup(arena, man) : NULL;
            out->model = model && *model ? mgo_arena_strdup(arena, model) : NULL;
            return MGO_OK;
        }
    }
    return MGO_ERR_INVALID;
}

mgo_err mgo_caps_detect(const struct mgo_caps_config *cfg, struct mgo_arena *arena,
                        struct mgo_capabilities *caps, char *why, size_t why_len)
{
    memset(caps, 0, sizeof *caps);
    const char *root = cfg->sys_root ? cfg->sys_root : "";
    caps->api_version = "device.margo.org/v1alpha1";
    caps->id = cfg->device_id;
    caps->vendor =
        cfg->vendor ? cfg->vendor : read_line(root, "/sys/class/dmi/id/sys_vendor", arena);
    caps->model_number =
        cfg->model ? cfg->model : read_line(root, "/sys/class/dmi/id/product_name", arena);
    caps->serial_number =
        cfg->serial ? cfg->serial : read_line(root, "/sys/class/dmi/id/product_serial", arena);
    if (caps->vendor == NULL)
        caps->vendor = "unknown";
    if (caps->model_number == NULL)
        caps->model_number = "unknown";
    if (caps->serial_number == NULL)
        caps->serial_number = "unknown";
    caps->hosting = true;

    /* cpu */
    caps->cpus = mgo_arena_alloc(arena, sizeof *caps->cpus);
    if (caps->cpus == NULL)
        return MGO_ERR_NOMEM;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    caps->cpus[0].cores = cfg->cpu_cores > 0 ? cfg->cpu_cores : (double)(cores > 0 ? cores : 1);
    struct utsname un;
    caps->cpus[0].archs = uname(&un) == 0 ? arch_bit(un.machine) : MGO_ARCH_OTHER;
    caps->cpus_len = 1;

    /* memory */
    if (cfg->memory != NULL) {
        if (mgo_size_parse(cfg->memory, false, &caps->memory_bytes) != MGO_OK) {
            snprintf(why, why_len, "memory: '%s' must be a size like 512Mi or 4Gi", cfg->memory);
            return MGO_ERR_INVALID;
        }
    } else {
        struct sysinfo si;
        if (sysinfo(&si) == 0)
            caps->memory_bytes = (uint64_t)si.totalram * si.mem_unit;
    }
    /* storage of the runtime's disk */
    if (cfg->storage != NULL) {
        if (mgo_size_parse(cfg->storage, true, &caps->storage_bytes) != MGO_OK) {
            snprintf(why, why_len, "storage: '%s' must be a size like 59Gi", cfg->storage);
            return MGO_ERR_INVALID;
        }
    } else {
        struct statvfs sv;
        if (statvfs(cfg->storage_path ? cfg->storage_path : "/", &sv) == 0)
            caps->storage_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    }

    mgo_err err = detect_interfaces(root, arena, caps);
    if (err != MGO_OK)
        return err;

    /* peripherals: GPUs where detectable, plus configured ones */
    caps->peripherals = mgo_arena_alloc(arena, MAX_PERIPH * sizeof *caps->peripherals);
    if (caps->peripherals == NULL)
        return MGO_ERR_NOMEM;
    if (exists(root, "/dev/nvidia0") || exists(root, "/dev/nvidiactl"))
        caps->peripherals[caps->peripherals_len++] =
            (struct mgo_peripheral){MGO_PERIPH_GPU, "NVIDIA", NULL};
    else if (exists(root, "/dev/dri/renderD128") || exists(root, "/dev/dri/card0"))
        caps->peripherals[caps->peripherals_len++] =
            (struct mgo_peripheral){MGO_PERIPH_GPU, NULL, NULL};
    if (exists(root, "/dev/video0") && caps->peripherals_len < MAX_PERIPH)
        caps->peripherals[caps->peripherals_len++] =
            (struct mgo_peripheral){MGO_PERIPH_CAMERA, NULL, NULL};
    for (size_t i = 0; i < cfg->peripherals_len; i++) {
        if (caps->peripherals_len == MAX_PERIPH) {
            snprintf(why, why_len, "peripheral: more than %u", MAX_PERIPH);
            return MGO_ERR_LIMIT;
        }
        if (parse_peripheral(cfg->peripherals[i], arena,
                             &caps->peripherals[caps->peripherals_len]) != MGO_OK) {
            snprintf(why, why_len,
                     "peripheral: '%s' must be TYPE[:MANUFACTURER[:MODEL]] with TYPE one of "
                     "gpu display camera microphone speaker",
                     cfg->peripherals[i]);
            return MGO_ERR_INVALID;
        }
        caps->peripherals_len++;
    }

    caps->otel_collector = cfg->otel_collector;
    caps->runtimes = MGO_RUNTIME_OCI;
    caps->deployment_types = (cfg->compose_available ? MGO_DTYPE_COMPOSE : 0u) |
                             (cfg->helm_available ? MGO_DTYPE_HELM : 0u);

    /* labels */
    if (cfg->labels_len > 0) {
        struct mgo_map_builder mb;
        mgo_map_builder_init(&mb, arena);
        for (size_t i = 0; i < cfg->labels_len; i++) {
            const char *eq = strchr(cfg->labels[i], '=');
            if (eq == NULL || eq == cfg->labels[i]) {
                snprintf(why, why_len, "label: '%s' must be key=value", cfg->labels[i]);
                return MGO_ERR_INVALID;
            }
            const char *key =
                mgo_arena_strndup(arena, cfg->labels[i], (size_t)(eq - cfg->labels[i]));
            const char *val = mgo_arena_strdup(arena, eq + 1);
            if (key == NULL || val == NULL)
                return MGO_ERR_NOMEM;
            mgo_map_put_str(&mb, key, val);
        }
        struct mgo_value *labels = mgo_arena_alloc(arena, sizeof *labels);
        if (labels == NULL)
            return MGO_ERR_NOMEM;
        if (mgo_map_builder_finish(&mb, labels) != MGO_OK) {
            snprintf(why, why_len, "label: a key is given twice");
            return MGO_ERR_INVALID;
        }
        caps->labels = labels;
    }
    return MGO_OK;
}
