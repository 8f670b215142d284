#!/usr/bin/env bash
# systemd_container.sh - the packages under a real systemd (PID 1 in a podman container),
# the part install_chroot.sh cannot show (label `slow`; skipped with exit 77 unless
# MGO_PKG_SYSTEMD=1; needs root and podman; about a minute warm).
#
#   MGO_PKG_SYSTEMD=1 systemd_container.sh SRC_DIR CACHE_DIR
#
# Shares CACHE_DIR with install_chroot.sh (the release build, the Debian 12 root tarball).
# A root with systemd, systemd-sysv and the four packages is booted with
# `podman run --systemd=always --network none --rootfs`, then:
# - boot: margo-manager runs (enabled by the postinst), margo-agent does not (not enabled);
#   the manager connects to Debian's mosquitto (its default loopback listener);
# - the manager's sandbox holds: no capabilities; / read-only in its mount namespace, its
#   state folder writable; files it creates are 0600;
# - `systemctl enable --now margo-agent` once agent.conf has a device-id: the device is online
#   in `margoctl device list`;
# - Type=notify: the manager's StatusText, WatchdogSec=30s and no restart after 35 s (the
#   loop pings), native journal fields (SYSLOG_IDENTIFIER, PRIORITY, MARGO_COMPONENT),
#   `systemctl reload` (SIGHUP) with a new log level, same PID;
# - Restart=on-failure: SIGKILL -> restarted; a bad key -> exit 2, failed, not restarted;
#   `systemctl stop` -> exit 0, result success;
# - upgrade with systemd running: both daemons restarted (new PIDs) and still enabled; a
#   stopped agent stays stopped on a reinstall (try-restart);
# - purge with systemd running: services inactive, state, user, enable links and masks gone.
set -uo pipefail
src=${1:?usage: systemd_container.sh SRC_DIR CACHE_DIR}
cache=${2:?usage: systemd_container.sh SRC_DIR CACHE_DIR}
if [ "${MGO_PKG_SYSTEMD:-}" != 1 ]; then
    echo "skipped: set MGO_PKG_SYSTEMD=1 to run (root, podman, Debian's archive)"
    exit 77
fi
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
fatal() { bad "$*"; exit 1; }
[ "$(id -u)" -eq 0 ] || fatal "needs root"
command -v podman >/dev/null || fatal "podman missing (scripts/setup.sh containers)"
tar=$cache/debian-12-root.tar
[ -s "$tar" ] || fatal "$tar missing: run install_chroot.sh first (it makes and caches it)"
. "$src/scripts/containers-env.sh"
mkdir -p "$cache"
work=$(mktemp -d "$cache/systemd-XXXXXX")
name="mgo-pkg-systemd-$$"
root=$work/root
cleanup() {
    podman rm -f "$name" >/dev/null 2>&1
    mountpoint -q "$root/proc" && umount -l "$root/proc"
    rm -rf "$work"
}
trap cleanup EXIT
mgo_containers_env "$work/containers" || fatal "containers config"
t0=$SECONDS

v1_dir=$cache/debs-v1 v2_dir=$cache/debs-v2
rm -rf "$v1_dir" "$v2_dir"
MGO_PKG_BUILD=$cache/build MGO_PKG_OUT=$v1_dir MGO_PKG_VERSION= bash "$src/scripts/package.sh" \
    >"$work/package.log" 2>&1 || fatal "package.sh: $(tail -n 20 "$work/package.log")"
v1=$(dpkg-deb -f "$v1_dir"/margo-manager_*.deb Version)
MGO_PKG_BUILD=$cache/build MGO_PKG_OUT=$v2_dir MGO_PKG_VERSION="$v1+upgrade1" \
    bash "$src/scripts/package.sh" >>"$work/package.log" 2>&1 || fatal "package.sh: v2"
MGO_PKG_BUILD=$cache/build MGO_PKG_OUT=$work/scratch MGO_PKG_VERSION= \
    bash "$src/scripts/package.sh" >>"$work/package.log" 2>&1

mkdir -p "$root" && tar -C "$root" -xf "$tar" || fatal "unpacking $tar"
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 0755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/root/debs-v1" "$root/root/debs-v2"
cp "$v1_dir"/*.deb "$root/root/debs-v1/" && cp "$v2_dir"/*.deb "$root/root/debs-v2/"
mount -t proc proc "$root/proc" || fatal "mount proc"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -qq && apt-get install -y -q systemd systemd-sysv /root/debs-v1/*.deb' \
    </dev/null >"$work/apt.log" 2>&1 || fatal "apt-get install: $(tail -n 20 "$work/apt.log")"
umount "$root/proc"
rm -f "$root/usr/sbin/policy-rc.d"
ok "root with systemd and the packages ($v1) in $((SECONDS - t0)) s"

# --privileged: in an unprivileged container systemd cannot make the units' mount namespaces
# and runs them without ProtectSystem, PrivateTmp, ... (found by the mount check below).
podman run -d --name "$name" --privileged --systemd=always --network none --rootfs "$root" \
    /lib/systemd/systemd \
    >"$work/podman.log" 2>&1 || fatal "podman run: $(cat "$work/podman.log")"
in_ct() { podman exec "$name" "$@"; }
state=""
for _ in $(seq 1 60); do
    state=$(in_ct systemctl is-system-running 2>/dev/null)
    case $state in running|degraded) break ;; esac
    sleep 0.5
done
case $state in running|degraded) ok "systemd is PID 1 in the container: $state" ;;
    *) fatal "systemd did not boot: '$state' $(podman logs "$name" 2>&1 | tail -n 5)" ;; esac
show() { in_ct systemctl show -p "$2" --value "$1"; }
wait_active() {
    for _ in $(seq 1 40); do [ "$(show "$1" ActiveState)" = active ] && return 0; sleep 0.25; done
    return 1
}

# boot
wait_active margo-manager && [ "$(show margo-agent ActiveState)" = inactive ] &&
    [ "$(in_ct systemctl is-enabled margo-agent 2>&1)" = disabled ] &&
    ok "boot: margo-manager active (enabled by the postinst), margo-agent disabled" ||
    bad "boot: manager $(show margo-manager ActiveState), agent $(show margo-agent ActiveState)"
for _ in $(seq 1 40); do
    grep -q 'manager: connected to tcp://' <<<"$(in_ct journalctl -u margo-manager --no-pager)" && break
    sleep 0.25
done
grep -q 'manager: connected to tcp://' <<<"$(in_ct journalctl -u margo-manager --no-pager)" &&
    ok "manager connected to Debian's mosquitto under its sandbox" ||
    bad "manager not connected: $(in_ct journalctl -u margo-manager --no-pager | tail -n 5)"

# the manager's sandbox, seen from its own namespaces
mpid=$(show margo-manager MainPID)
capbnd=$(in_ct sh -c "grep CapBnd /proc/$mpid/status" | awk '{print $2}')
[ "$capbnd" = 0000000000000000 ] && ok "manager: empty capability bounding set" ||
    bad "manager CapBnd $capbnd"
# Its mount table (podman exec lacks CAP_SYS_ADMIN, so nsenter cannot enter it): / read-only,
# the state folder writable. The last line for a mount point is the one in effect.
mounts=$(in_ct cat "/proc/$mpid/mountinfo")
root_opts=$(awk '$5 == "/" {o = $6} END {print o}' <<<"$mounts")
state_opts=$(awk '$5 == "/var/lib/margo-manager" {o = $6} END {print o}' <<<"$mounts")
[[ $root_opts == ro* ]] && [[ $state_opts == rw* ]] &&
    ok "manager: / mounted $root_opts, /var/lib/margo-manager $state_opts (ProtectSystem=strict, StateDirectory)" ||
    bad "manager mounts: / '$root_opts', /var/lib/margo-manager '$state_opts'"
ignored=$(in_ct journalctl --no-pager -b | grep -E 'margo-(manager|agent)\.service: .*ignoring' )
[ -z "$ignored" ] && ok "systemd applied every sandbox setting (no 'ignoring' in the journal)" ||
    bad "systemd ignored settings: $ignored"
modes=$(in_ct stat -c '%U %a %n' /var/lib/margo-manager/api-token /var/lib/margo-manager/manager.db)
grep -qv '^margo 600 ' <<<"$modes" && bad "manager files: $modes" ||
    ok "manager files margo 0600 (UMask=0077)"

# Type=notify: READY=1 made it active (above), STATUS=, the watchdog, journal fields, reload
t_mpid=$SECONDS
status=$(show margo-manager StatusText)
[[ $status == "serving the API on port 8080; connected to tcp://"* ]] &&
    ok "manager StatusText: $status" || bad "manager StatusText: '$status'"
[ "$(show margo-manager WatchdogUSec)" = 30s ] && [ "$(show margo-manager NotifyAccess)" = main ] &&
    ok "manager: WatchdogSec 30s, NotifyAccess=main" ||
    bad "manager watchdog '$(show margo-manager WatchdogUSec)' notify '$(show margo-manager NotifyAccess)'"
entry=$(in_ct journalctl -u margo-manager -o json --no-pager MARGO_COMPONENT=manager | grep -m1 '"MESSAGE":"manager: connected to tcp://')
grep -q '"SYSLOG_IDENTIFIER":"margo-manager"' <<<"$entry" && grep -q '"PRIORITY":"6"' <<<"$entry" &&
    grep -q '"MARGO_COMPONENT":"manager"' <<<"$entry" &&
    ok "journal: native fields SYSLOG_IDENTIFIER, PRIORITY, MARGO_COMPONENT" ||
    bad "journal entry: $entry"
in_ct sh -c 'echo "log-level debug" >>/etc/margo/manager.conf'
in_ct systemctl reload margo-manager
sleep 1
[ "$(show margo-manager MainPID)" = "$mpid" ] && [ "$(show margo-manager ActiveState)" = active ] &&
    grep -q 'manager: reload: done (log-level debug' <<<"$(in_ct journalctl -u margo-manager --no-pager)" &&
    ok "systemctl reload margo-manager: log-level debug applied, same PID $mpid" ||
    bad "reload: pid $(show margo-manager MainPID) (was $mpid), $(in_ct journalctl -u margo-manager --no-pager | tail -n 3)"
in_ct sed -i '/^log-level debug$/d' /etc/margo/manager.conf
in_ct systemctl reload margo-manager

# agent
in_ct sh -c 'echo "device-id sysd-1" >>/etc/margo/agent.conf'
in_ct systemctl enable --now margo-agent >/dev/null 2>&1
listed=""
for _ in $(seq 1 40); do
    listed=$(in_ct env MARGO_TOKEN_FILE=/var/lib/margo-manager/api-token margoctl device list 2>&1)
    grep -qE '^sysd-1 +online' <<<"$listed" && break
    sleep 0.25
done
grep -qE '^sysd-1 +online' <<<"$listed" && ok "systemctl enable --now margo-agent: sysd-1 online" ||
    bad "agent: $listed $(in_ct journalctl -u margo-agent --no-pager | tail -n 5)"

# the watchdog: 35 s (more than WatchdogSec) after the PID was read, no restart
wait_s=$((35 - (SECONDS - t_mpid)))
[ $wait_s -gt 0 ] && sleep $wait_s
[ "$(show margo-manager MainPID)" = "$mpid" ] && [ "$(show margo-manager NRestarts)" = 0 ] &&
    ok "watchdog: manager pinged for 35 s, not restarted" ||
    bad "watchdog: pid $(show margo-manager MainPID) (was $mpid), restarts $(show margo-manager NRestarts)"

# Restart=on-failure, RestartPreventExitStatus=2, clean stop
in_ct systemctl kill -s KILL margo-manager
sleep 6.5
[ "$(show margo-manager NRestarts)" = 1 ] && wait_active margo-manager &&
    ok "SIGKILL: margo-manager restarted after RestartSec" ||
    bad "after SIGKILL: $(show margo-manager ActiveState), restarts $(show margo-manager NRestarts)"
in_ct sh -c 'echo "no-such-key 1" >>/etc/margo/agent.conf'
in_ct systemctl restart margo-agent
sleep 6.5
[ "$(show margo-agent ActiveState)" = failed ] && [ "$(show margo-agent ExecMainStatus)" = 2 ] &&
    [ "$(show margo-agent NRestarts)" = 0 ] &&
    ok "bad key: margo-agent failed with exit 2, not restarted: $(in_ct journalctl -u margo-agent --no-pager | grep -m1 'no-such-key')" ||
    bad "bad key: $(show margo-agent ActiveState) status $(show margo-agent ExecMainStatus) restarts $(show margo-agent NRestarts)"
in_ct sed -i '/^no-such-key/d' /etc/margo/agent.conf
in_ct systemctl reset-failed margo-agent
in_ct systemctl start margo-agent
in_ct systemctl stop margo-manager
[ "$(show margo-manager Result)" = success ] && [ "$(show margo-manager ExecMainStatus)" = 0 ] &&
    ok "systemctl stop margo-manager: exit 0, result success" ||
    bad "stop: result $(show margo-manager Result) status $(show margo-manager ExecMainStatus)"
in_ct systemctl start margo-manager

# upgrade with systemd running
wait_active margo-manager; wait_active margo-agent
m1=$(show margo-manager MainPID) a1=$(show margo-agent MainPID)
in_ct sh -c 'dpkg -i /root/debs-v2/*.deb' </dev/null >"$work/upgrade.log" 2>&1 ||
    bad "dpkg -i v2: $(tail -n 10 "$work/upgrade.log")"
wait_active margo-manager; wait_active margo-agent
m2=$(show margo-manager MainPID) a2=$(show margo-agent MainPID)
[ "$m1" != "$m2" ] && [ "$a1" != "$a2" ] && [ "$m2" != 0 ] && [ "$a2" != 0 ] &&
    [ "$(in_ct systemctl is-enabled margo-manager margo-agent | tr '\n' ' ')" = "enabled enabled " ] &&
    ok "upgrade to $v1+upgrade1: both daemons restarted (pids $m1->$m2, $a1->$a2), still enabled" ||
    bad "upgrade: manager $m1->$m2 agent $a1->$a2, $(in_ct systemctl is-enabled margo-manager margo-agent | tr '\n' ' ')"
in_ct systemctl stop margo-agent
in_ct sh -c 'dpkg -i /root/debs-v2/margo-agent_*.deb' </dev/null >>"$work/upgrade.log" 2>&1
[ "$(show margo-agent ActiveState)" = inactive ] && ok "a stopped agent stays stopped on reinstall" ||
    bad "reinstall started the stopped agent"

# purge with systemd running
in_ct systemctl start margo-agent
in_ct sh -c 'dpkg --purge margo-agent margo-manager margoctl margo-broker-config' </dev/null \
    >"$work/purge.log" 2>&1 || bad "dpkg --purge: $(tail -n 10 "$work/purge.log")"
left=$(in_ct sh -c 'ls -d /var/lib/margo-manager /var/lib/margo-agent /etc/margo 2>/dev/null
    getent passwd margo; getent group margo
    ls /etc/systemd/system /etc/systemd/system/multi-user.target.wants | grep margo
    systemctl is-active margo-manager margo-agent | grep -v inactive' 2>/dev/null)
[ -z "$left" ] && ok "purge: services stopped; state, user, group, links and masks gone" ||
    bad "purge left: $(echo $left)"

echo "total $((SECONDS - t0)) s"
[ $fails -eq 0 ] && echo "all systemd checks passed" || echo "$fails systemd check(s) failed"
exit $((fails > 0))
