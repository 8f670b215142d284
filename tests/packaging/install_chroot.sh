#!/usr/bin/env bash
# install_chroot.sh - the Debian packages installed like an operator would, in a clean Debian 12
# root (label `slow`; skipped with exit 77 unless MGO_PKG_CHROOT=1; needs root; minutes).
#
#   MGO_PKG_CHROOT=1 install_chroot.sh SRC_DIR CACHE_DIR
#
# 1. Builds release packages twice with scripts/package.sh (build folder CACHE_DIR/build): the
#    tree's version and VERSION+upgrade1 (same files, a newer version, for the upgrade).
# 2. Unpacks a minimal Debian 12 root (debootstrap --variant=minbase from Debian's archive,
#    cached as CACHE_DIR/debian-12-root.tar; delete it to refresh) and installs the four
#    packages with `apt-get install ./*.deb`: the shared libraries, adduser, mosquitto and
#    openssl come from the archive. policy-rc.d keeps Debian's own mosquitto service from
#    starting; systemd is not running, so the margo maintainer scripts skip it.
# 3. Checks the margo system user, state folders (margo, 0700), conffiles, the manager unit
#    enabled and the agent unit not (it needs a device-id first).
# 4. Configures like docs/operations.md: margo-pki makes the CA, broker, manager and device
#    certificates; the broker runs /etc/mosquitto/margo/margo-tls.conf as packaged; manager.conf
#    and agent.conf get ssl:// and the certificate files, agent.conf a device-id and
#    tests/agent/fake-helm as its helm command (no cluster, no container engine in the root).
# 5. In a private network namespace (ports 8883 and 8080 as configured, no clash with the host):
#    starts the broker, then manager and agent as the units' ExecStart, User, UMask,
#    Environment and RuntimeDirectory say; margoctl sees the device online with helm, adds
#    examples/hello-helm, deploys it to the device and watches it reach `installed`; then
#    stops everything with SIGTERM (exit 0 each).
# 6. Upgrades to the newer packages: the edited conffiles, the state and the user's uid stay;
#    the daemons start again and the deployment is still installed; it is removed.
# 7. `apt-get remove margo-agent` keeps its state; `apt-get purge` of every package removes
#    both state folders, the user, the group, the conffiles and the unit's enable symlink,
#    and keeps the operator's own files (the certificates in /etc/margo/pki).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# ---------------------------------------------------------------- phase inside the netns
if [ "${MGO_PKG_PHASE:-}" = run ]; then
    root=$MGO_PKG_ROOT
    step=$MGO_PKG_STEP
    fails=0
    ok() { echo "ok: $*"; }
    bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
    pids=()
    stop_all() {
        local i
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null; done
        for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
        pids=()
    }
    trap stop_all EXIT
    ip link set lo up || { bad "ip link set lo up"; exit 1; }

    # daemon NAME: starts /lib/systemd/system/NAME.service's ExecStart as its User with its
    # UMask, Environment and RuntimeDirectory (what systemd would do), plus EXTRA_ENV.
    daemon() {
        local name=$1 unit=$root/lib/systemd/system/$1.service
        local exec user umask envs rt
        exec=$(sed -n 's/^ExecStart=//p' "$unit")
        user=$(sed -n 's/^User=//p' "$unit")
        umask=$(sed -n 's/^UMask=//p' "$unit")
        envs=$(sed -n 's/^Environment=//p' "$unit")
        rt=$(sed -n 's/^RuntimeDirectory=//p' "$unit")
        [ -n "$rt" ] && install -d -m 0700 -o "$(stat -c %u "$root/var/lib/$name")" \
            -g "$(stat -c %g "$root/var/lib/$name")" "$root/run/$rt"
        # shellcheck disable=SC2086 # Environment= is a list of words
        chroot "$root" /usr/bin/setpriv --reuid="$user" --regid="$user" --init-groups \
            /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 $envs ${EXTRA_ENV:-} \
            /bin/sh -c "umask ${umask:-022}; exec $exec" >"$root/tmp/$name.log" 2>&1 &
        pids+=($!)
        eval "${name//-/_}_pid=$!"
    }
    wait_for() { # SECONDS WHAT COMMAND...
        local t=$1 what=$2 i
        shift 2
        for ((i = 0; i < t * 5; i++)); do "$@" && return 0; sleep 0.2; done
        bad "$what"
        return 1
    }
    ctl() {
        chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            MARGO_TOKEN_FILE=/var/lib/margo-manager/api-token margoctl "$@"
    }

    chroot "$root" /usr/sbin/mosquitto -c /etc/mosquitto/margo/margo-tls.conf \
        >"$root/tmp/broker.log" 2>&1 &
    pids+=($!)
    wait_for 20 "broker did not start: $(tail -n 3 "$root/tmp/broker.log")" \
        grep -q 'Opening ipv4 listen socket on port 8883' "$root/tmp/broker.log" || exit 1
    daemon margo-manager
    wait_for 20 "manager did not connect to the broker (log: tmp/margo-manager.log in the root)" \
        grep -q 'manager: connected to ssl://' "$root/tmp/margo-manager.log" &&
        ok "manager connected: $(grep -m1 'manager: connected to' "$root/tmp/margo-manager.log")"
    EXTRA_ENV="FAKE_HELM_STATE=/var/lib/margo-agent/fake-helm FAKE_HELM_LOG=/var/lib/margo-agent/fake-helm.log" \
        daemon margo-agent
    for n in margo-manager margo-agent; do
        v=${n//-/_}_pid
        u=$(stat -c %u "/proc/${!v}" 2>/dev/null)
        [ "$u" = "$MGO_PKG_UID" ] && ok "$n runs as margo (uid $u, pid ${!v})" ||
            bad "$n runs as '$u': $(tail -n 5 "$root/tmp/$n.log")"
    done
    listed=""
    for _ in $(seq 1 60); do
        listed=$(ctl device list 2>&1)
        grep -qE '^dev-1 +online .*helm' <<<"$listed" && break
        sleep 0.5
    done
    grep -qE '^dev-1 +online .*helm' <<<"$listed" &&
        ok "margoctl device list: $(grep '^dev-1' <<<"$listed")" ||
        bad "dev-1 not online with helm: $listed $(tail -n 5 "$root/tmp/margo-agent.log")"

    if [ "$step" = first ]; then
        out=$(ctl app add /tmp/hello-helm 2>&1) && ok "margoctl app add hello-helm" ||
            bad "app add: $out"
        out=$(ctl deploy hello-helm --device dev-1 --no-prompt 2>&1) || bad "deploy: $out"
        id=$(grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' <<<"$out" | head -n1)
        echo "$id" >"$root/tmp/deployment-id"
        if [ -z "$id" ]; then
            :
        elif out=$(ctl watch "$id" --timeout 60 2>&1); then
            ok "deployment $id installed (margoctl watch)"
        else
            bad "deployment $id not installed: $(tail -n 3 <<<"$out") $(tail -n 5 "$root/tmp/margo-agent.log")"
        fi
        grep -q "upgrade.*--install.*hello-helm" "$root/var/lib/margo-agent/fake-helm.log" &&
            ok "the agent ran helm upgrade --install hello-helm" ||
            bad "no helm upgrade in $(cat "$root/var/lib/margo-agent/fake-helm.log" 2>&1)"
    else
        id=$(cat "$root/tmp/deployment-id")
        out=$(ctl deployment list 2>&1)
        grep -q "${id:0:8}.*installed\|installed.*${id:0:8}" <<<"$out" &&
            ok "after the upgrade deployment $id is still installed" ||
            bad "after the upgrade: deployment $id not installed in: $out"
        ctl deployment rm "$id" >/dev/null 2>&1 || bad "deployment rm $id"
        out=$(ctl watch "$id" --timeout 60 2>&1) && ok "deployment $id removed" ||
            bad "deployment $id not removed: $(tail -n 3 <<<"$out")"
    fi
    for f in manager.db api-token; do
        m=$(stat -c '%u %a' "$root/var/lib/margo-manager/$f" 2>/dev/null)
        [ "$m" = "$MGO_PKG_UID 600" ] && ok "/var/lib/margo-manager/$f: margo, 0600" ||
            bad "/var/lib/margo-manager/$f: '$m', expected '$MGO_PKG_UID 600'"
    done

    # SIGTERM, as systemctl stop would: both daemons exit 0.
    for n in margo-agent margo-manager; do
        v=${n//-/_}_pid
        kill -TERM "${!v}"
        wait "${!v}"
        rc=$?
        [ $rc -eq 0 ] && ok "$n: SIGTERM -> exit 0" ||
            bad "$n: SIGTERM -> exit $rc: $(tail -n 5 "$root/tmp/$n.log")"
    done
    pids=("${pids[0]}")
    stop_all
    exit $((fails > 0))
fi

# ---------------------------------------------------------------- outer script
src=${1:?usage: install_chroot.sh SRC_DIR CACHE_DIR}
cache=${2:?usage: install_chroot.sh SRC_DIR CACHE_DIR}
if [ "${MGO_PKG_CHROOT:-}" != 1 ]; then
    echo "skipped: set MGO_PKG_CHROOT=1 to run (root, Debian's archive, minutes)"
    exit 77
fi
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
fatal() { bad "$*"; exit 1; }
[ "$(id -u)" -eq 0 ] || fatal "needs root (chroot, mounts)"
for c in debootstrap ip unshare; do
    command -v $c >/dev/null || fatal "$c missing (scripts/setup.sh)"
done
mkdir -p "$cache"
root=$cache/root
mounted=()
cleanup() {
    local m
    for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null; done
}
trap cleanup EXIT
t0=$SECONDS

# 1. packages
v1_dir=$cache/debs-v1
v2_dir=$cache/debs-v2
rm -rf "$v1_dir" "$v2_dir"
MGO_PKG_BUILD=$cache/build MGO_PKG_OUT=$v1_dir MGO_PKG_VERSION= bash "$src/scripts/package.sh" \
    >"$cache/package.log" 2>&1 || fatal "package.sh: $(tail -n 20 "$cache/package.log")"
v1=$(dpkg-deb -f "$v1_dir"/margo-manager_*.deb Version)
v2="$v1+upgrade1"
MGO_PKG_BUILD=$cache/build MGO_PKG_OUT=$v2_dir MGO_PKG_VERSION=$v2 bash "$src/scripts/package.sh" \
    >>"$cache/package.log" 2>&1 || fatal "package.sh $v2: $(tail -n 20 "$cache/package.log")"
# The version back to the tree's, so the build folder's cache does not keep the test's.
MGO_PKG_BUILD=$cache/build MGO_PKG_OUT=$cache/debs-scratch MGO_PKG_VERSION= \
    bash "$src/scripts/package.sh" >>"$cache/package.log" 2>&1
rm -rf "$cache/debs-scratch"
ok "packages $v1 and $v2 built in $((SECONDS - t0)) s"

# 2. root
tar=$cache/debian-12-root.tar
if [ ! -s "$tar" ]; then
    echo "debootstrap --variant=minbase bookworm from http://deb.debian.org/debian (once; cached)"
    rm -rf "$cache/rootfs.tmp"
    timeout 1200 debootstrap --variant=minbase bookworm "$cache/rootfs.tmp" \
        http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
        fatal "debootstrap failed (Debian's archive unreachable?): $(tail -n 3 "$cache/debootstrap.log")"
    tar -C "$cache/rootfs.tmp" -cf "$tar" . && rm -rf "$cache/rootfs.tmp"
fi
rm -rf "$root" && mkdir -p "$root" && tar -C "$root" -xf "$tar" || fatal "unpacking $tar"
root_mb=$(du -sm "$root" | cut -f1)
mount -t proc proc "$root/proc" && mounted+=("$root/proc") || fatal "mount proc"
mount -t sysfs sysfs "$root/sys" && mounted+=("$root/sys") || fatal "mount sysfs"
mount --bind /dev "$root/dev" && mounted+=("$root/dev") || fatal "mount /dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# debootstrap writes no /etc/hosts (the installer does): without it `localhost` does not resolve.
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf '#!/bin/sh\n# install_chroot.sh: no service starts in this root\nexit 101\n' \
    >"$root/usr/sbin/policy-rc.d" && chmod 0755 "$root/usr/sbin/policy-rc.d"
[ -d "$root/run/systemd/system" ] && fatal "the root looks like a running systemd"
in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@" </dev/null
}
ok "clean Debian 12 root from $tar ($root_mb MB)"

# 3. install
mkdir -p "$root/tmp/debs-v1" "$root/tmp/debs-v2"
cp "$v1_dir"/*.deb "$root/tmp/debs-v1/" && cp "$v2_dir"/*.deb "$root/tmp/debs-v2/"
t1=$SECONDS
in_root apt-get update -qq >"$cache/apt.log" 2>&1 || fatal "apt-get update: $(tail -n 5 "$cache/apt.log")"
# shellcheck disable=SC2016 # the glob expands in the root
in_root sh -c 'cd /tmp/debs-v1 && apt-get install -y -q ./*.deb' >>"$cache/apt.log" 2>&1 ||
    fatal "apt-get install ./*.deb: $(tail -n 20 "$cache/apt.log")"
ok "apt-get install ./*.deb in $((SECONDS - t1)) s: $(in_root dpkg-query -W -f='${Package}=${Version} ' \
    margo-manager margo-agent margoctl margo-broker-config)"
pw=$(in_root getent passwd margo)
uid=$(cut -d: -f3 <<<"$pw")
if [ -n "$uid" ] && [ "$uid" -lt 1000 ] && [ "$(cut -d: -f7 <<<"$pw")" = /usr/sbin/nologin ]; then
    ok "system user: $pw"
else
    bad "system user margo: '$pw'"
fi
for d in margo-manager margo-agent; do
    m=$(in_root stat -c '%U:%G %a' "/var/lib/$d" 2>/dev/null)
    [ "$m" = "margo:margo 700" ] && ok "/var/lib/$d: $m" || bad "/var/lib/$d: '$m'"
done
cf=$(in_root dpkg-query -W -f='${Conffiles}\n' margo-manager margo-agent margo-broker-config | awk 'NF {print $1}' | sort | tr '\n' ' ')
[ "$cf" = "/etc/margo/agent.conf /etc/margo/manager.conf /etc/mosquitto/margo/margo-tls.conf /etc/mosquitto/margo/margo.acl " ] &&
    ok "conffiles: $cf" || bad "conffiles: $cf"
wants=$root/etc/systemd/system/multi-user.target.wants
[ -L "$wants/margo-manager.service" ] && [ ! -e "$wants/margo-agent.service" ] &&
    ok "margo-manager.service enabled, margo-agent.service not (no device-id yet)" ||
    bad "enable links: $(ls "$wants" 2>&1 | tr '\n' ' ')"

# 4. configure like docs/operations.md
cp "$src/tests/agent/fake-helm" "$root/usr/local/bin/fake-helm" && chmod 0755 "$root/usr/local/bin/fake-helm"
cp -r "$src/examples/hello-helm" "$root/tmp/hello-helm"
in_root sh -ec '
    margo-pki --device dev-1 /etc/mosquitto/margo/pki >/dev/null 2>&1
    chgrp mosquitto /etc/mosquitto/margo/pki /etc/mosquitto/margo/pki/broker.key
    chmod 0750 /etc/mosquitto/margo/pki
    chmod 0640 /etc/mosquitto/margo/pki/broker.key
    p=/etc/mosquitto/margo/pki
    install -d -m 0750 -g margo /etc/margo/pki
    install -m 0644 $p/ca.crt /etc/margo/pki/ca.crt
    install -m 0640 -g margo $p/manager.crt $p/manager.key $p/devices/dev-1.crt \
        $p/devices/dev-1.key /etc/margo/pki/
    cat >>/etc/margo/manager.conf <<EOC
broker-url ssl://localhost:8883
ca-file /etc/margo/pki/ca.crt
cert-file /etc/margo/pki/manager.crt
key-file /etc/margo/pki/manager.key
EOC
    cat >>/etc/margo/agent.conf <<EOC
device-id dev-1
broker-url ssl://localhost:8883
ca-file /etc/margo/pki/ca.crt
cert-file /etc/margo/pki/dev-1.crt
key-file /etc/margo/pki/dev-1.key
helm-command /usr/local/bin/fake-helm
EOC
' >"$cache/configure.log" 2>&1 || fatal "configuring: $(tail -n 5 "$cache/configure.log")"
ok "configured: margo-pki certificates, ssl:// in manager.conf and agent.conf, device-id dev-1"

# 5. run
run_phase() {
    MGO_PKG_PHASE=run MGO_PKG_ROOT=$root MGO_PKG_STEP=$1 MGO_PKG_UID=$uid unshare --net bash "$here/install_chroot.sh" |
        tee "$cache/run-$1.log"
    return "${PIPESTATUS[0]}"
}
t2=$SECONDS
run_phase first || fails=$((fails + 1))
echo "   (run took $((SECONDS - t2)) s)"

# 6. upgrade
agent_conf_before=$(md5sum <"$root/etc/margo/agent.conf")
db_before=$(stat -c %i "$root/var/lib/margo-manager/manager.db" 2>/dev/null)
# shellcheck disable=SC2016
in_root sh -c 'cd /tmp/debs-v2 && apt-get install -y -q ./*.deb' >>"$cache/apt.log" 2>&1 ||
    bad "upgrade: $(tail -n 20 "$cache/apt.log")"
vers=$(in_root dpkg-query -W -f='${Version} ' margo-manager margo-agent margoctl margo-broker-config)
[ "$vers" = "$v2 $v2 $v2 $v2 " ] && ok "upgraded to $v2" || bad "versions after upgrade: $vers"
[ "$(md5sum <"$root/etc/margo/agent.conf")" = "$agent_conf_before" ] &&
    ok "upgrade kept the edited agent.conf" || bad "upgrade changed agent.conf"
grep -q '^broker-url ssl://localhost:8883' "$root/etc/margo/manager.conf" &&
    ok "upgrade kept the edited manager.conf" || bad "upgrade changed manager.conf"
[ "$(in_root getent passwd margo | cut -d: -f3)" = "$uid" ] && ok "margo keeps uid $uid" ||
    bad "margo's uid changed"
[ "$(stat -c %i "$root/var/lib/margo-manager/manager.db" 2>/dev/null)" = "$db_before" ] &&
    ok "upgrade kept the manager's store" || bad "upgrade replaced or removed manager.db"
run_phase upgraded || fails=$((fails + 1))

# 7. remove, purge
in_root apt-get remove -y -q margo-agent >>"$cache/apt.log" 2>&1 || bad "apt-get remove margo-agent"
[ -d "$root/var/lib/margo-agent" ] && in_root getent passwd margo >/dev/null &&
    ok "remove margo-agent: state and user kept" || bad "remove margo-agent lost state or user"
in_root apt-get purge -y -q margo-manager margo-agent margoctl margo-broker-config \
    >>"$cache/apt.log" 2>&1 || bad "apt-get purge: $(tail -n 10 "$cache/apt.log")"
left=""
for p in /var/lib/margo-manager /var/lib/margo-agent /etc/margo/manager.conf /etc/margo/agent.conf \
         /etc/mosquitto/margo/margo-tls.conf /etc/systemd/system/multi-user.target.wants/margo-manager.service \
         /usr/bin/margo-manager; do
    [ -e "$root$p" ] || [ -L "$root$p" ] && left="$left $p"
done
in_root getent passwd margo >/dev/null && left="$left user:margo"
in_root getent group margo >/dev/null && left="$left group:margo"
[ -z "$left" ] && ok "purge removed state, conffiles, unit links, user and group" ||
    bad "purge left:$left"
[ -f "$root/etc/margo/pki/ca.crt" ] && ok "purge kept the operator's /etc/margo/pki" ||
    bad "purge removed the operator's /etc/margo/pki"

echo "total $((SECONDS - t0)) s"
[ $fails -eq 0 ] && echo "all install checks passed" || echo "$fails install check(s) failed"
exit $((fails > 0))
