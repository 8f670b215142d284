#!/bin/sh
# svid.sh - X.509-SVIDs for the southbound Margo HTTP API (docs/margo-http.md), openssl CLI
# only: a trust-domain CA, the WFM's server SVID and one client SVID per device.
#
#   broker-config/svid.sh --trust-domain TD --wfm-id WFM [options] OUTDIR
#
# Creates, inside OUTDIR (made if missing, mode 0700):
#   svid-ca.crt svid-ca.key        the trust anchor (self-signed, 10 years): the manager's
#                                  margo-api-client-ca, and what devices trust the WFM with
#   wfm.crt wfm.key                the WFM's server SVID: URI SAN spiffe://TD/margo/wfm/WFM,
#                                  SAN DNS:localhost, IP:127.0.0.1 (plus every --server-host);
#                                  the manager's margo-api-cert / margo-api-key
#   clients/ID.crt clients/ID.key  one client SVID per --client ID: URI SAN
#                                  spiffe://TD/margo/wfm/WFM/client/ID, CN = ID
#
# Keys are ECDSA P-256, private keys 0600. Idempotent: existing files are kept, so re-running
# with more --client options only adds clients. The client id is the device id: allow it on
# the manager with `margoctl client allow ID`.
#
# Options:
#   --trust-domain TD   (required) SPIFFE trust domain, e.g. example.org
#   --wfm-id WFM        (required) this WFM's id
#   --client ID         (repeatable) a client SVID
#   --server-host NAME  (repeatable) extra SAN of the WFM: an IPv4 address or a DNS name
#   --days N            validity of the SVIDs, default 825
set -eu

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed -e 's/^# \{0,1\}//' -e '/^set -eu/d' >&2
    exit 2
}

die() {
    echo "svid.sh: $*" >&2
    exit 1
}

segment() { # VALUE OPTION: RFC 3986 unreserved characters, not "." or ".."
    case "$1" in
        "" | . | .. | *[!A-Za-z0-9._~-]*) die "$2: \"$1\" must be 1 or more of [A-Za-z0-9._~-], not . or .." ;;
    esac
}

td=""
wfm=""
clients=""
hosts=""
days=825
while [ $# -gt 0 ]; do
    case "$1" in
        --trust-domain) [ $# -ge 2 ] || usage; segment "$2" --trust-domain; td="$2"; shift 2 ;;
        --wfm-id) [ $# -ge 2 ] || usage; segment "$2" --wfm-id; wfm="$2"; shift 2 ;;
        --client) [ $# -ge 2 ] || usage; segment "$2" --client; clients="$clients $2"; shift 2 ;;
        --server-host)
            [ $# -ge 2 ] || usage
            case "$2" in "" | *[!A-Za-z0-9.-]*) die "--server-host: \"$2\" is not a host name or IPv4 address" ;; esac
            hosts="$hosts $2"; shift 2 ;;
        --days)
            [ $# -ge 2 ] || usage
            case "$2" in "" | *[!0-9]*) die "--days: \"$2\" must be a positive number" ;; esac
            days="$2"; shift 2 ;;
        -h | --help) usage ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || usage
[ -n "$td" ] || die "--trust-domain is required"
[ -n "$wfm" ] || die "--wfm-id is required"
out="$1"
umask 077
mkdir -p "$out/clients"
chmod 700 "$out"
cd "$out"

newkey() { # FILE
    [ -f "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    chmod 600 "$1"
}

serial() { # a random positive 64-bit serial, hex
    echo "0x$(openssl rand -hex 8 | sed 's/^./7/')"
}

if [ ! -f svid-ca.crt ]; then
    newkey svid-ca.key
    openssl req -x509 -new -key svid-ca.key -sha256 -days 3650 -subj "/O=margo-mqtt/CN=$td SVID CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out svid-ca.crt 2>/dev/null
    chmod 644 svid-ca.crt
fi

svid() { # NAME CN URI EKU [SAN...]
    name=$1 cn=$2 uri=$3 eku=$4
    shift 4
    [ -f "$name.crt" ] && return 0
    newkey "$name.key"
    san="URI:$uri"
    for s in "$@"; do san="$san,$s"; done
    ext=$(mktemp)
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
        "$eku" "$san" > "$ext"
    openssl req -new -key "$name.key" -subj "/O=margo-mqtt/CN=$cn" 2>/dev/null |
        openssl x509 -req -CA svid-ca.crt -CAkey svid-ca.key -set_serial "$(serial)" -sha256 \
            -days "$days" -extfile "$ext" -out "$name.crt" 2>/dev/null
    rm -f "$ext"
    chmod 644 "$name.crt"
}

sans="DNS:localhost IP:127.0.0.1"
for h in $hosts; do
    case "$h" in
        *[!0-9.]*) sans="$sans DNS:$h" ;;
        *) sans="$sans IP:$h" ;;
    esac
done
# shellcheck disable=SC2086 # one SAN per word
svid wfm "$wfm" "spiffe://$td/margo/wfm/$wfm" serverAuth $sans
for c in $clients; do
    svid "clients/$c" "$c" "spiffe://$td/margo/wfm/$wfm/client/$c" clientAuth
done
echo "svid.sh: trust domain $td, WFM $wfm: $(pwd)"
