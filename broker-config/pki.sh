#!/bin/sh
# pki.sh - development and test PKI for margo-mqtt (openssl CLI only).
#
#   broker-config/pki.sh [options] OUTDIR
#
# Creates, inside OUTDIR (made if missing, mode 0700):
#   ca.crt ca.key                  fleet CA (self-signed, 10 years)
#   broker.crt broker.key          broker server certificate; SAN DNS:localhost, IP:127.0.0.1
#                                  (plus every --broker-host)
#   manager.crt manager.key        manager client certificate, CN = margo-manager (--manager-cn)
#   monitor.crt monitor.key        monitor client certificate, CN = margo-monitor (--monitor-cn)
#   devices/ID.crt devices/ID.key  one client certificate per --device ID, CN = ID
#   bridges/CN.crt bridges/CN.key  one client certificate per --bridge CN (an edge broker's
#                                  bridge to the core; CN must start with margo-bridge-)
#
# Role names (docs/security.md "Roles are not devices"): a role CN (--manager-cn,
# --monitor-cn) must start with "margo-", and a device ID must not (in any letter case), so a
# role certificate can never be a device's and the manager can tell them apart by name.
#   signing.key signing.pub        the manager's document-signing key pair (ES256), kept apart
#                                  from its TLS key; agents are configured with signing.pub
#   expired/CN.crt expired/CN.key  with --expired CN: a client certificate signed by the CA
#                                  whose validity ended in the past (for tests only)
#   ca.crl                         the CA's certificate revocation list (PEM), re-signed at every
#                                  run; the broker's crlfile. Valid for --crl-days.
#   ca-db/                         the CA's record of revoked certificates (openssl ca database)
#   NAME.prev.crt NAME.prev.key    after a renewal: the certificate that was replaced
#
# Keys are ECDSA P-256 (--rsa: RSA 3072). Private keys are written 0600.
# Idempotent: files that already exist are kept, so re-running with more --device options
# only adds the new devices and never replaces the CA.
#
# Options:
#   --device ID        (repeatable) device certificate with CN = ID
#   --expired CN       (repeatable) an already expired client certificate with CN = CN
#   --bridge CN        (repeatable) bridge certificate for an edge broker, CN = margo-bridge-*
#   --broker-host NAME (repeatable) extra SAN for the broker: an IPv4 address or a DNS name
#   --manager-cn CN    default margo-manager (must start with margo-)
#   --monitor-cn CN    default margo-monitor (must start with margo-)
#   --days N           validity of leaf certificates, default 825
#   --rsa              RSA 3072 keys instead of ECDSA P-256
#   --renew-device ID  (repeatable) rotation: a new key and certificate for device ID, same CN;
#                      the current pair becomes devices/ID.prev.crt/.key and stays valid
#                      until revoked (refused while an unrevoked .prev exists)
#   --renew-manager, --renew-monitor, --renew-broker   the same for those certificates
#   --revoke FILE      (repeatable) revoke a certificate issued by this CA (FILE relative to
#                      OUTDIR, e.g. devices/dev-1.prev.crt, or absolute) and re-sign ca.crl
#   --crl-days N       validity of ca.crl, default 365. A broker with an expired CRL refuses
#                      every client: re-run pki.sh (any options) before then, and send the
#                      broker SIGHUP so it reads the new ca.crl.
#
# After --revoke or a re-signed ca.crl: kill -HUP <mosquitto pid> (Mosquitto 2.0 reloads the
# listener's crlfile, certfile and keyfile on SIGHUP; connections already open stay open).
#
# Production: use your own CA instead (see docs/security.md, "Production PKI").
set -eu

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed -e 's/^# \{0,1\}//' -e '/^set -eu/d' >&2
    exit 2
}

die() {
    echo "pki.sh: $*" >&2
    exit 1
}

devices=""
bridges=""
expired=""
renew=""
revoke=""
crl_days=365
broker_hosts=""
manager_cn="margo-manager"
monitor_cn="margo-monitor"
days=825
rsa=0
outdir=""

# A CN becomes a file name and an MQTT user name: the device id rule of docs/protocol.md 2.2.
check_cn() {
    case "$1" in
        "" | . | .. | *[!A-Za-z0-9._~-]*) die "$2: \"$1\" must be 1-128 characters of [A-Za-z0-9._~-], not . or .." ;;
    esac
    [ "${#1}" -le 128 ] || die "$2: \"$1\" is longer than 128 characters"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --device) [ $# -ge 2 ] || usage; check_cn "$2" --device; devices="$devices $2"; shift 2 ;;
        --expired) [ $# -ge 2 ] || usage; check_cn "$2" --expired; expired="$expired $2"; shift 2 ;;
        --bridge)
            [ $# -ge 2 ] || usage
            check_cn "$2" --bridge
            case "$2" in margo-bridge-?*) ;; *) die "--bridge: \"$2\" must start with margo-bridge- (a role name; docs/scaling.md)" ;; esac
            bridges="$bridges $2"; shift 2 ;;
        --broker-host)
            [ $# -ge 2 ] || usage
            case "$2" in
                "" | *[!A-Za-z0-9.:-]*) die "--broker-host: \"$2\" is not a host name or address" ;;
            esac
            broker_hosts="$broker_hosts $2"; shift 2 ;;
        --manager-cn) [ $# -ge 2 ] || usage; check_cn "$2" --manager-cn; manager_cn="$2"; shift 2 ;;
        --monitor-cn) [ $# -ge 2 ] || usage; check_cn "$2" --monitor-cn; monitor_cn="$2"; shift 2 ;;
        --days)
            [ $# -ge 2 ] || usage
            case "$2" in "" | *[!0-9]*) die "--days: \"$2\" must be a positive number" ;; esac
            [ "$2" -ge 1 ] || die "--days: must be at least 1"
            days="$2"; shift 2 ;;
        --rsa) rsa=1; shift ;;
        --renew-device) [ $# -ge 2 ] || usage; check_cn "$2" --renew-device; renew="$renew devices/$2"; shift 2 ;;
        --renew-manager) renew="$renew manager"; shift ;;
        --renew-monitor) renew="$renew monitor"; shift ;;
        --renew-broker) renew="$renew broker"; shift ;;
        --revoke)
            [ $# -ge 2 ] || usage
            case "$2" in "" | *[!A-Za-z0-9._~/-]* | *..*) die "--revoke: \"$2\" must be a certificate path without '..'" ;; esac
            revoke="$revoke $2"; shift 2 ;;
        --crl-days)
            [ $# -ge 2 ] || usage
            case "$2" in "" | *[!0-9]*) die "--crl-days: \"$2\" must be a positive number" ;; esac
            [ "$2" -ge 1 ] || die "--crl-days: must be at least 1"
            crl_days="$2"; shift 2 ;;
        -h | --help) usage ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$outdir" ] || die "only one OUTDIR may be given"; outdir="$1"; shift ;;
    esac
done
[ -n "$outdir" ] || usage
command -v openssl >/dev/null 2>&1 || die "the openssl command is required"

for cn in "$manager_cn" "$monitor_cn"; do
    case "$cn" in
        margo-?*) ;;
        *) die "\"$cn\": a role (manager or monitor) CN must start with margo- (docs/security.md)" ;;
    esac
done
for d in $devices $expired; do
    case "$d" in "$manager_cn" | "$monitor_cn")
        die "\"$d\" is a role name (manager or monitor) and cannot be a device" ;;
    esac
done
for d in $devices; do
    case "$d" in [Mm][Aa][Rr][Gg][Oo]-*)
        die "\"$d\": device ids must not start with margo- (reserved for roles; docs/security.md)" ;;
    esac
done

umask 077
mkdir -p "$outdir" "$outdir/devices" "$outdir/expired" "$outdir/bridges"
cd "$outdir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

newkey() { # FILE [ec]
    [ -s "$1" ] && return 0
    if [ "$rsa" = 1 ] && [ "${2:-}" != ec ]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$1.tmp" 2>/dev/null
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.tmp"
    fi
    chmod 600 "$1.tmp"
    mv "$1.tmp" "$1"
}

serial() { # a random positive 64-bit serial, hex
    echo "0x$(openssl rand -hex 8 | sed 's/^./4/')"
}

# ---- CA
if [ ! -s ca.crt ]; then
    newkey ca.key
    cat >"$tmp/ca.ext" <<EOF
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -new -x509 -key ca.key -subj "/O=margo-mqtt/CN=margo-mqtt fleet CA" \
        -days 3650 -sha256 -set_serial "$(serial)" \
        -config "$tmp/ca.ext" -extensions ca -out ca.crt.tmp
    chmod 644 ca.crt.tmp
    mv ca.crt.tmp ca.crt
    echo "pki.sh: created the fleet CA $outdir/ca.crt" >&2
fi
[ -s ca.key ] || die "$outdir/ca.crt exists but ca.key does not; cannot issue certificates"

leaf() { # NAME CN PROFILE(server|client) [SAN]
    name="$1"
    [ -s "$name.crt" ] && return 0
    newkey "$name.key"
    {
        echo "[leaf]"
        echo "basicConstraints = critical, CA:FALSE"
        echo "keyUsage = critical, digitalSignature, keyEncipherment"
        if [ "$3" = server ]; then
            echo "extendedKeyUsage = serverAuth"
            echo "subjectAltName = $4"
        else
            echo "extendedKeyUsage = clientAuth"
        fi
        echo "authorityKeyIdentifier = keyid"
        echo "subjectKeyIdentifier = hash"
    } >"$tmp/leaf.ext"
    openssl req -new -key "$name.key" -subj "/O=margo-mqtt/CN=$2" -out "$tmp/leaf.csr"
    openssl x509 -req -in "$tmp/leaf.csr" -CA ca.crt -CAkey ca.key -set_serial "$(serial)" \
        -days "$days" -sha256 -extfile "$tmp/leaf.ext" -extensions leaf \
        -out "$name.crt.tmp" 2>"$tmp/x509.log" || { cat "$tmp/x509.log" >&2; die "openssl x509 failed for $name"; }
    chmod 644 "$name.crt.tmp"
    mv "$name.crt.tmp" "$name.crt"
    echo "pki.sh: issued $outdir/$name.crt (CN=$2)" >&2
}

# ---- the CA database: which certificates are revoked (openssl ca), and the CRL
mkdir -p ca-db
[ -f ca-db/index.txt ] || : >ca-db/index.txt
[ -s ca-db/crlnumber ] || echo 1000 >ca-db/crlnumber
cat >"$tmp/ca-db.cnf" <<EOF
[ca]
default_ca = fleet
[fleet]
database = $PWD/ca-db/index.txt
crlnumber = $PWD/ca-db/crlnumber
certificate = $PWD/ca.crt
private_key = $PWD/ca.key
default_md = sha256
default_crl_days = $crl_days
unique_subject = no
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid
EOF

cn_of() { # CERT -> its subject CN
    openssl x509 -in "$1" -noout -subject -nameopt RFC2253 | sed -n 's/^subject=\(.*,\)\{0,1\}CN=\([^,]*\).*$/\2/p'
}

is_revoked() { # CERT -> 0 when ca-db lists its serial as revoked
    sn=$(openssl x509 -in "$1" -noout -serial | sed 's/^serial=//')
    awk -F '\t' -v s="$sn" '$1 == "R" && toupper($4) == toupper(s) { f = 1 } END { exit !f }' ca-db/index.txt
}

# ---- renewal (rotation): the current pair becomes NAME.prev.*, a new pair is issued below
# with the same CN; the previous certificate stays valid until it is revoked.
renew_cn=""
for name in $renew; do
    [ -s "$name.crt" ] || die "--renew: $outdir/$name.crt does not exist"
    if [ -s "$name.prev.crt" ] && ! is_revoked "$name.prev.crt"; then
        die "--renew: $outdir/$name.prev.crt is not revoked yet; revoke it (--revoke $name.prev.crt) or delete it first"
    fi
    cn=$(cn_of "$name.crt")
    [ -n "$cn" ] || die "--renew: no CN in $outdir/$name.crt"
    mv "$name.crt" "$name.prev.crt"
    mv "$name.key" "$name.prev.key"
    renew_cn="$renew_cn $name=$cn"
    echo "pki.sh: renewing $outdir/$name.crt; the current certificate is now $name.prev.crt" >&2
done
renewed_cn() { # NAME DEFAULT -> the CN to issue NAME with
    for r in $renew_cn; do
        [ "${r%%=*}" = "$1" ] && { echo "${r#*=}"; return 0; }
    done
    echo "$2"
}

san="DNS:localhost,IP:127.0.0.1"
for h in $broker_hosts; do
    case "$h" in
        *[!0-9.]*) san="$san,DNS:$h" ;;
        *) san="$san,IP:$h" ;;
    esac
done
leaf broker "$(renewed_cn broker localhost)" server "$san"
leaf manager "$(renewed_cn manager "$manager_cn")" client
leaf monitor "$(renewed_cn monitor "$monitor_cn")" client
for d in $devices; do
    leaf "devices/$d" "$d" client
done
for b in $bridges; do
    leaf "bridges/$b" "$b" client
done
for name in $renew; do
    case "$name" in devices/*) leaf "$name" "$(renewed_cn "$name" "")" client ;; esac
done

# ---- expired client certificates: `openssl x509 -days` cannot go negative, so these are
# issued with `openssl ca` and explicit -startdate/-enddate in the past.
for cn in $expired; do
    [ -s "expired/$cn.crt" ] && continue
    newkey "expired/$cn.key"
    mkdir -p "$tmp/ca"
    : >"$tmp/ca/index.txt"
    cat >"$tmp/ca.cnf" <<EOF
[ca]
default_ca = fleet
[fleet]
database = $tmp/ca/index.txt
new_certs_dir = $tmp/ca
serial = $tmp/ca/serial
certificate = $PWD/ca.crt
private_key = $PWD/ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[any]
organizationName = optional
commonName = supplied
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
EOF
    openssl req -new -key "expired/$cn.key" -subj "/O=margo-mqtt/CN=$cn" -out "$tmp/exp.csr"
    openssl rand -hex 8 | sed 's/^./4/' >"$tmp/ca/serial"
    openssl ca -batch -config "$tmp/ca.cnf" -in "$tmp/exp.csr" -notext \
        -startdate 20200101000000Z -enddate 20200102000000Z \
        -out "expired/$cn.crt.tmp" 2>"$tmp/ca.log" || { cat "$tmp/ca.log" >&2; die "openssl ca failed for the expired certificate $cn"; }
    chmod 644 "expired/$cn.crt.tmp"
    mv "expired/$cn.crt.tmp" "expired/$cn.crt"
    echo "pki.sh: issued $outdir/expired/$cn.crt (CN=$cn, expired 2020-01-02)" >&2
done

# ---- the manager's document-signing key (docs/protocol.md 5.2)
if [ ! -s signing.pub ]; then
    newkey signing.key ec # ES256 needs P-256 even with --rsa
    openssl pkey -in signing.key -pubout -out signing.pub.tmp
    chmod 644 signing.pub.tmp
    mv signing.pub.tmp signing.pub
    echo "pki.sh: created the document-signing key $outdir/signing.key (public: signing.pub)" >&2
fi

# ---- revocation and the CRL (re-signed at every run, so its validity restarts)
for f in $revoke; do
    case "$f" in /*) ;; *) f="$PWD/$f" ;; esac
    [ -s "$f" ] || die "--revoke: $f does not exist"
    cmp -s "$f" ca.crt && die "--revoke: $f is the CA certificate itself"
    openssl verify -no-CApath -no-CAstore -CAfile ca.crt -no_check_time "$f" >/dev/null 2>&1 ||
        die "--revoke: $f was not issued by this CA ($outdir/ca.crt)"
    if is_revoked "$f"; then
        echo "pki.sh: $f is already revoked" >&2
        continue
    fi
    openssl ca -batch -config "$tmp/ca-db.cnf" -revoke "$f" 2>"$tmp/revoke.log" ||
        { cat "$tmp/revoke.log" >&2; die "openssl ca -revoke failed for $f"; }
    echo "pki.sh: revoked $f (CN=$(cn_of "$f"))" >&2
done
openssl ca -batch -config "$tmp/ca-db.cnf" -gencrl -out ca.crl.tmp 2>"$tmp/crl.log" ||
    { cat "$tmp/crl.log" >&2; die "openssl ca -gencrl failed"; }
chmod 644 ca.crl.tmp
mv ca.crl.tmp ca.crl
