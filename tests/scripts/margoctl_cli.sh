#!/usr/bin/env bash
# margoctl_cli.sh - margoctl's command table is the one source of its --help, its bash
# completion and the man page (issue 17 item 7), with no manager running (about 1 s):
#   - `margoctl completion bash` loaded into bash completes commands, subcommands, options
#     and option values from COMP_WORDS as a user's Tab would;
#   - every option a command's own --help names is in the table's completion words for that
#     command and the other way round (they cannot drift);
#   - --output refuses unknown formats and watch refuses yaml (exit 2);
#   - the man page help2man makes from --help has NAME, SYNOPSIS, DESCRIPTION and the
#     sections of the help text;
#   - a reply past the parse limits (a stub server) is refused by table and yaml, printed by json.
#
#   margoctl_cli.sh MARGOCTL
set -uo pipefail
ctl=${1:?usage: margoctl_cli.sh MARGOCTL}
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d /tmp/mgo-ctlcli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$ctl" completion bash >"$tmp/completion.bash" || bad "margoctl completion bash failed"
bash -n "$tmp/completion.bash" || bad "the completion script does not parse"
mkdir -p "$tmp/files" && touch "$tmp/files/margo.yaml" "$tmp/files/values.yaml"

# complete WORD... : what Tab offers for the last word (COMP_WORDS as bash fills it).
complete_words() {
    bash -c '
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        _margoctl
        printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$tmp/completion.bash" "$@"
}
expect() { # expect "WANTED WORDS" WORD...
    local want="$1"
    shift
    local got
    got=$(cd "$tmp/files" && complete_words "$@")
    got=${got% }
    [ "$got" = "$want" ] && ok "complete '$*' -> $got" || bad "complete '$*': '$got', want '$want'"
}
expect "deploy deployment device" margoctl de
expect "add list rm show" margoctl app ""
expect "list rm show update" margoctl deployment ""
expect "--output" margoctl device list --ou
expect "json table wide yaml" margoctl status -o ""
expect "wide" margoctl deployment list --output w
expect "--all --app" margoctl deployment list --a
expect "margo.yaml" margoctl app add ma
expect "values.yaml" margoctl deploy hello --values v
expect "--timeout --token-file" margoctl watch --t
expect "json msgpack" margoctl convert --to ""
expect "" margoctl deploy hello --device ""
expect "bash" margoctl completion ""

# Drift: each command's --help names exactly the options completion offers for it.
for cmd in $(awk -F'[ )]' '/^    [a-z]+\) subs=/ {print $5}' "$tmp/completion.bash"); do
    words=$(grep -E "^    $cmd\) subs=" "$tmp/completion.bash" | sed "s/.*opts='\\([^']*\\)'.*/\\1/")
    help=$("$ctl" "$cmd" --help 2>&1) || { bad "$cmd --help failed"; continue; }
    in_help=$(grep -oE '(^|[ [|(,])--?[a-z][a-z-]*' <<<"$help" | sed 's/^[ [|(,]//' | sort -u)
    in_table=$(tr ' ' '\n' <<<"$words" | sort -u)
    if [ "$in_help" = "$in_table" ]; then ok "$cmd: --help and completion name the same options"
    else bad "$cmd: --help names '$(echo $in_help)', completion '$(echo $in_table)'"; fi
done

"$ctl" app list -o xml >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "'xml' is not table, wide, json or yaml" "$tmp/err" &&
    ok "-o xml refused (exit 2)" || bad "-o xml: $(cat "$tmp/err")"
"$ctl" watch 00000000-0000-4000-8000-000000000001 -o yaml >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "must be table or json" "$tmp/err" && ok "watch -o yaml refused (exit 2)" ||
    bad "watch -o yaml: $(cat "$tmp/err")"
"$ctl" status --output >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "needs a value" "$tmp/err" && ok "--output without a value refused" ||
    bad "--output without a value: $(cat "$tmp/err")"

# A reply past margoctl's parse limits (1100 devices > 1024 items): table and yaml refuse it
# (exit 1, the rule named), json prints it. The "manager" is a stub HTTP server here: no
# manager can be made to list that many devices quickly.
echo "0123456789abcdef0123" >"$tmp/token"
/usr/bin/python3 - "$tmp/port" <<'PY' &
import http.server, json, sys
body = json.dumps({"devices": [{"id": "d%d" % i} for i in range(1100)]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(srv.server_port))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.handle_request(); srv.handle_request(); srv.handle_request()
PY
stub=$!
for _ in $(seq 1 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
url=http://127.0.0.1:$(cat "$tmp/port" 2>/dev/null)
for fmt in table yaml; do
    "$ctl" device list -o $fmt --url "$url" --token-file "$tmp/token" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ $rc -eq 1 ] && [ ! -s "$tmp/out" ] && grep -q "cannot be read.*1024.*--output json prints it" "$tmp/err" &&
        ok "-o $fmt of a reply past the parse limits: refused, the rule named" ||
        bad "-o $fmt past the limits: exit $rc, $(head -c 300 "$tmp/err")"
done
"$ctl" device list -o json --url "$url" --token-file "$tmp/token" >"$tmp/out" 2>"$tmp/err" &&
    [ "$(grep -o '"id"' "$tmp/out" | wc -l)" -eq 1100 ] && ok "-o json prints it (1100 devices)" ||
    bad "-o json past the limits: $(head -c 300 "$tmp/err")"
kill "$stub" 2>/dev/null; wait "$stub" 2>/dev/null

if command -v help2man >/dev/null; then
    help2man --no-info --section=1 --name="command-line client of the margo-manager API" \
        --version-string=test --output="$tmp/margoctl.1" "$ctl" 2>"$tmp/err" || bad "help2man: $(cat "$tmp/err")"
    for s in NAME SYNOPSIS DESCRIPTION '"Commands:"' '"Options of the commands' \
        '"Output formats:"' ENVIRONMENT '"Exit status:"'; do
        grep -qiE "^\.S[HS] $s" "$tmp/margoctl.1" || bad "margoctl.1 lacks section $s"
    done
    w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$tmp/margoctl.1" 2>&1 >/dev/null | grep -v '^$')
    [ -z "$w" ] && ok "margoctl.1 from help2man: sections present, man renders it without warnings" ||
        bad "man -l margoctl.1: $w"
else
    bad "help2man missing (bash scripts/setup.sh)"
fi
[ $fails -eq 0 ] && echo "all checks passed" || echo "$fails check(s) failed"
exit $((fails > 0))
