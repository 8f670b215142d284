#!/usr/bin/env bash
# contents.sh - the Debian packages as built by CPack from a build folder (default suite,
# a few seconds): what an operator would notice before installing them.
#
#   contents.sh BUILD_DIR        packages BUILD_DIR's programs with its CPackConfig.cmake
#   MGO_PKG_DIST=DIR contents.sh checks DIR/*.deb instead (e.g. dist/ of scripts/package.sh)
#
# Checks: the four packages exist; Depends names the package of every shared library each
# program needs (and adduser for the daemons); conffiles list exactly the files under /etc;
# maintainer scripts parse; the units start a binary of their own package with a config file
# that is a conffile, and `systemd-analyze verify` says nothing about them; the packaged
# config files are accepted by the packaged daemons (the agent asks only for its device-id;
# the manager starts, writes its token and stops cleanly on SIGTERM); the packaged TLS broker
# config has no development listener and only absolute paths; lintian reports nothing but the
# tags listed in ALLOWED below; the man pages render and the bash completion loads.
set -uo pipefail
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d /tmp/mgo-pkg-XXXXXX)
mgr_pid=""
cleanup() {
    [ -n "$mgr_pid" ] && kill "$mgr_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

PKGS=(margo-manager margo-agent margoctl margo-broker-config)
# Lintian findings accepted for now, each with its reason, as a regular expression of
# "TAG [FILE]" alternatives:
#   no-manual-page [usr/bin/margo-pki]: margo-pki is broker-config/pki.sh, a shell script whose
#   --help is its manual; the programs (margoctl, margo-manager, margo-agent) have man pages.
ALLOWED='no-manual-page \[usr/bin/margo-pki\]'

if [ -n "${MGO_PKG_DIST:-}" ]; then
    dist=$MGO_PKG_DIST
else
    build=${1:?usage: contents.sh BUILD_DIR}
    dist=$tmp/cpack
    if ! (cd "$build" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$dist") \
            >"$tmp/cpack.log" 2>&1; then
        cat "$tmp/cpack.log"; bad "cpack failed"; exit 1
    fi
fi

declare -A deb
for p in "${PKGS[@]}"; do
    f=$(ls "$dist/${p}"_*.deb 2>/dev/null | head -n1)
    if [ -z "$f" ]; then bad "no package $p in $dist"; continue; fi
    deb[$p]=$f
    mkdir -p "$tmp/x/$p" "$tmp/root" "$tmp/ctl"
    dpkg-deb -x "$f" "$tmp/x/$p" && dpkg-deb -x "$f" "$tmp/root" && dpkg-deb -e "$f" "$tmp/ctl/$p" ||
        bad "$p: dpkg-deb cannot unpack $f"
done
[ ${#deb[@]} -eq ${#PKGS[@]} ] && ok "packages: $(cd "$dist" && ls *.deb | tr '\n' ' ')"

# Depends: the package of every NEEDED library of every ELF file.
for p in "${PKGS[@]}"; do
    [ -n "${deb[$p]:-}" ] || continue
    depends=$(dpkg-deb -f "${deb[$p]}" Depends)
    missing=()
    while IFS= read -r elf; do
        for so in $(objdump -p "$elf" | awk '$1 == "NEEDED" {print $2}'); do
            path=$(ldconfig -p | awk -v so="$so" '$1 == so && /x86-64|x86_64/ {print $NF; exit}')
            [ -n "$path" ] || path=$(ldconfig -p | awk -v so="$so" '$1 == so {print $NF; exit}')
            owner=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n1 | cut -d: -f1)
            [ -n "$owner" ] || owner=$(dpkg -S "$path" 2>/dev/null | head -n1 | cut -d: -f1)
            if [ -z "$owner" ]; then missing+=("$so(no package owns it)"); continue; fi
            grep -qE "(^|, )$owner( |,|$)" <<<"$depends" || missing+=("$so($owner)")
        done
    done < <(find "$tmp/x/$p" -type f -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print)
    case $p in margo-manager|margo-agent)
        grep -qE '(^|, )adduser( |,|$)' <<<"$depends" || missing+=("adduser(postinst)") ;;
    esac
    if [ ${#missing[@]} -eq 0 ]; then ok "$p Depends: $depends"
    else bad "$p Depends lacks ${missing[*]} (Depends: $depends)"; fi
done

# conffiles: exactly the files under /etc.
for p in "${PKGS[@]}"; do
    [ -n "${deb[$p]:-}" ] || continue
    want=$(cd "$tmp/x/$p" && find etc -type f 2>/dev/null | sed 's|^|/|' | sort)
    have=$(sort "$tmp/ctl/$p/conffiles" 2>/dev/null)
    if [ "$want" = "$have" ]; then ok "$p conffiles: $(echo $have)"
    else bad "$p conffiles '$(echo $have)' != files under /etc '$(echo $want)'"; fi
    for s in preinst postinst prerm postrm; do
        [ -f "$tmp/ctl/$p/$s" ] || continue
        sh -n "$tmp/ctl/$p/$s" || bad "$p $s: shell syntax"
        [ -x "$tmp/ctl/$p/$s" ] || bad "$p $s: not executable"
    done
done
for p in margo-manager margo-agent; do
    for s in postinst prerm postrm; do
        [ -f "$tmp/ctl/$p/$s" ] || bad "$p has no $s"
    done
done

# Units: ExecStart runs a binary of the package with a conffile; systemd-analyze verify is
# silent. verify needs systemd's own units next to ours, so the root gets a copy of them.
units=()
for p in margo-manager margo-agent; do
    u=lib/systemd/system/$p.service
    if [ ! -f "$tmp/x/$p/$u" ]; then bad "$p: no /$u"; continue; fi
    units+=("/$u")
    exec_start=$(sed -n 's/^ExecStart=//p' "$tmp/x/$p/$u")
    bin=${exec_start%% *}
    conf=$(sed -n 's/.*--config \([^ ]*\).*/\1/p' <<<"$exec_start")
    [ -x "$tmp/x/$p$bin" ] && grep -qx "$conf" "$tmp/ctl/$p/conffiles" &&
        ok "$p.service: ExecStart=$exec_start" ||
        bad "$p.service: ExecStart=$exec_start: not a binary of $p with one of its conffiles"
    grep -qx 'User=margo' "$tmp/x/$p/$u" || bad "$p.service does not run as margo"
    # ExecReload runs a command of another package: $p depends on it, and verify's root gets
    # that command (the host's copy)
    reload=$(sed -n 's/^ExecReload=//p' "$tmp/x/$p/$u")
    rbin=${reload%% *}
    if [ -n "$rbin" ]; then
        owner=$(dpkg -S "$rbin" 2>/dev/null | head -n1 | cut -d: -f1)
        pdeps=$(dpkg-deb -f "${deb[$p]:-/dev/null}" Depends 2>/dev/null)
        if [ -n "$owner" ] && grep -qE "(^|, )$owner( |,|$)" <<<"$pdeps"; then
            mkdir -p "$tmp/root$(dirname "$rbin")" && cp -n "$rbin" "$tmp/root$rbin"
            ok "$p.service: ExecReload=$reload ($rbin of $owner, a dependency)"
        else
            bad "$p.service: ExecReload=$reload: $rbin is not of a package $p depends on (${owner:-none})"
        fi
    fi
done
if command -v systemd-analyze >/dev/null; then
    cp -an /lib/systemd/system/. "$tmp/root/lib/systemd/system/" 2>/dev/null
    out=$(systemd-analyze verify --root="$tmp/root" "${units[@]}" 2>&1)
    if [ $? -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify: clean"
    else bad "systemd-analyze verify: $out"; fi
else
    bad "systemd-analyze missing (apt-get install systemd; scripts/setup.sh)"
fi

# The packaged config files with the packaged daemons.
root=$tmp/root
out=$("$root/usr/bin/margo-agent" --config "$root/etc/margo/agent.conf" 2>&1)
rc=$?
problems=$(grep -c '^margo-agent: .*: ' <<<"$out")
if [ $rc -eq 2 ] && [ "$problems" -eq 1 ] && grep -q '^margo-agent: device-id: required' <<<"$out"; then
    ok "agent.conf: accepted; the agent asks only for device-id (exit 2)"
else
    bad "agent.conf with margo-agent: exit $rc: $out"
fi
"$root/usr/bin/margo-manager" --config "$root/etc/margo/manager.conf" --state-dir "$tmp/state" \
    --api-listen 127.0.0.1:0 --broker-url tcp://127.0.0.1:1 >"$tmp/manager.log" 2>&1 &
mgr_pid=$!
for _ in $(seq 1 100); do
    grep -q 'manager: running' "$tmp/manager.log" && break
    kill -0 "$mgr_pid" 2>/dev/null || break
    sleep 0.1
done
if grep -q 'manager: running' "$tmp/manager.log" && [ -s "$tmp/state/api-token" ]; then
    kill -TERM "$mgr_pid"
    wait "$mgr_pid"
    rc=$?
    mgr_pid=""
    [ $rc -eq 0 ] && ok "manager.conf: the manager runs, writes its token, exits 0 on SIGTERM" ||
        bad "manager exited $rc on SIGTERM: $(tail -n 3 "$tmp/manager.log")"
else
    bad "manager.conf: the manager did not start: $(tail -n 5 "$tmp/manager.log")"
fi

# Man pages (help2man at build time) and margoctl's bash completion.
for pm in margoctl:man1/margoctl.1 margo-manager:man8/margo-manager.8 margo-agent:man8/margo-agent.8; do
    p=${pm%%:*}
    page=$tmp/x/$p/usr/share/man/${pm#*:}.gz
    if [ ! -f "$page" ]; then bad "$p: no /usr/share/man/${pm#*:}.gz"; continue; fi
    w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>&1 >"$tmp/man.txt" | grep -v '^$')
    name=$(sed -n '/^NAME/{n;p;q}' "$tmp/man.txt")
    if [ -z "$w" ] && grep -q '^SYNOPSIS' "$tmp/man.txt" && grep -q '^DESCRIPTION' "$tmp/man.txt" &&
        grep -qE "^ +$(basename "${pm#*:}" | cut -d. -f1) - " <<<"$name"; then
        ok "$p: ${pm#*:}.gz renders (NAME:$name)"
    else
        bad "$p: ${pm#*:}.gz: warnings '$w', NAME '$name'"
    fi
done
comp=$tmp/x/margoctl/usr/share/bash-completion/completions/margoctl
if [ -f "$comp" ] && bash -c 'source "$1" && complete -p margoctl' _ "$comp" | grep -q _margoctl; then
    ok "margoctl: bash completion in /usr/share/bash-completion/completions/margoctl"
else
    bad "margoctl: no working bash completion in /usr/share/bash-completion/completions/"
fi

# The packaged TLS broker config.
tls=$root/etc/mosquitto/margo/margo-tls.conf
if [ -f "$tls" ]; then
    rel=$(grep -E '^(cafile|certfile|keyfile|crlfile|acl_file|persistence_location) ' "$tls" |
          awk '$2 !~ /^\//')
    [ -z "$rel" ] || bad "margo-tls.conf: relative paths: $rel"
    grep -qE '^listener 1883|^allow_anonymous true' "$tls" &&
        bad "margo-tls.conf keeps the development listener"
    acl=$(awk '$1 == "acl_file" {print $2}' "$tls")
    [ -f "$root$acl" ] || bad "margo-tls.conf: acl_file $acl is not in the package"
    grep -q '^require_certificate true' "$tls" && [ -z "$rel" ] && [ -f "$root$acl" ] &&
        ok "margo-tls.conf: TLS only, absolute paths, acl_file $acl packaged"
fi

if command -v lintian >/dev/null; then
    lint=$(lintian --tag-display-limit 0 "${deb[@]}" 2>&1 | grep -E '^[EWX]: ' |
           grep -vE " (${ALLOWED:-no tag is allowed})( |$)")
    [ -z "$lint" ] && ok "lintian: nothing${ALLOWED:+ beyond: $ALLOWED}" || bad "lintian: $lint"
else
    echo "note: lintian not installed (scripts/setup.sh installs it); skipped"
fi

[ $fails -eq 0 ] && echo "all package checks passed" || echo "$fails package check(s) failed"
exit $((fails > 0))
