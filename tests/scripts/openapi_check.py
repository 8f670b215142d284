#!/usr/bin/python3
"""openapi_check.py - docs/openapi.yaml is true (issue 17 item 5). Debian's python3-yaml and
python3-jsonschema (Draft 2020-12, the dialect of OpenAPI 3.1).

  openapi_check.py DOC
      every example in the document (parameters, request bodies, responses) validates
      against its schema, and every operation has a success response with a schema.
  openapi_check.py --live URL TOKEN-FILE DOC [--dump FILE]
      the above, then replays every request example against the real manager at URL (started
      by openapi_live.sh with catalog-dir examples/ and the Helm devices edge-01 and edge-02)
      in the order of STEPS below: each must get the operation's documented success status
      and a reply that validates against that response's schema. A few errors are provoked
      too (400, 401, 403, 404, 405, 409, 413, 422) and their problem+json replies validated.
      Operations of the document that STEPS does not replay fail the check (add them when
      adding a route).
      --dump writes every exchange as JSON lines (to take examples from).
"""
import json
import sys
import time
import urllib.error
import urllib.request

import jsonschema
import yaml

fails = 0


def bad(msg):
    global fails
    fails += 1
    print("FAIL: " + msg)


def ok(msg):
    print("ok: " + msg)


args = sys.argv[1:]
live = None
dump = None
if args and args[0] == "--live":
    live = (args[1], open(args[2], encoding="ascii").read().strip())
    args = args[3:]
if len(args) == 3 and args[1] == "--dump":
    dump = open(args[2], "w", encoding="utf-8")
    args = args[:1]
if len(args) != 1:
    print(__doc__)
    sys.exit(2)
with open(args[0], encoding="utf-8") as f:
    doc = yaml.safe_load(f)

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def validate(schema, value):
    """None when value validates, else the first error as text. The schema is validated as
    the root of a copy that carries the document's components, so "#/components/..." refers
    to them (no resolver: the same with every jsonschema version)."""
    root = dict(schema)
    root["components"] = doc.get("components", {})
    v = jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())
    errs = sorted(v.iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errs:
        return None
    e = errs[0]
    return "%s at /%s" % (e.message[:300], "/".join(str(p) for p in e.absolute_path))


def deref(obj):
    while isinstance(obj, dict) and "$ref" in obj:
        ref = obj["$ref"]
        assert ref.startswith("#/"), ref
        obj = doc
        for part in ref[2:].split("/"):
            obj = obj[part]
    return obj


def operations():
    for path, item in doc["paths"].items():
        for m in METHODS:
            if m in item:
                yield m.upper(), path, item[m], item.get("parameters", [])


def media_examples(media):
    if "example" in media:
        yield "example", media["example"]
    for name, ex in media.get("examples", {}).items():
        ex = deref(ex)
        if "value" in ex:
            yield name, ex["value"]


# ---- (b) every example validates against its schema --------------------------------------
n_examples = 0
for method, path, op, common in operations():
    where = "%s %s" % (method, path)
    for p in [deref(p) for p in common + op.get("parameters", [])]:
        for name, value in media_examples(p):
            n_examples += 1
            err = validate(p["schema"], value)
            if err:
                bad("%s parameter %s example %s: %s" % (where, p["name"], name, err))
    body = deref(op.get("requestBody", {}))
    for ctype, media in body.get("content", {}).items():
        for name, value in media_examples(media):
            n_examples += 1
            err = validate(media.get("schema", {}), value)
            if err:
                bad("%s request %s example %s: %s" % (where, ctype, name, err))
    codes = sorted(op.get("responses", {}))
    if not any(c.startswith("2") for c in codes):
        bad("%s: no success response" % where)
    for code, resp in op.get("responses", {}).items():
        resp = deref(resp)
        for hname, header in resp.get("headers", {}).items():
            for name, value in media_examples(deref(header)):
                n_examples += 1
                err = validate(header.get("schema", {}), value)
                if err:
                    bad("%s response %s header %s example: %s" % (where, code, hname, err))
        for ctype, media in resp.get("content", {}).items():
            if "schema" not in media:
                bad("%s %s %s: no schema" % (where, code, ctype))
            for name, value in media_examples(media):
                n_examples += 1
                err = validate(media.get("schema", {}), value)
                if err:
                    bad("%s response %s %s example %s: %s" % (where, code, ctype, name, err))
for name, ex in doc.get("components", {}).get("examples", {}).items():
    if "value" not in ex:
        bad("components.examples.%s has no value" % name)
if n_examples < 20:
    bad("only %d examples in the document" % n_examples)
else:
    ok("%d examples validate against their schemas" % n_examples)

if live is None:
    sys.exit(1 if fails else 0)

# ---- (c) every request example is accepted by the real manager --------------------------
base, token = live
ctx = {}  # live ids found in replies, replacing the document's example ids


def subst(text):
    for old, new in ctx.items():
        text = text.replace(old, new)
    return text


def call(method, path, body=None, ctype=None, auth=True, query=None):
    url = base + subst(path)
    if query:
        url += "?" + "&".join("%s=%s" % (k, urllib.request.quote(subst(str(v)), safe=""))
                              for k, v in query)
    data = None
    if body is not None:
        data = subst(body if isinstance(body, str) else json.dumps(body)).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    if auth:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            status, rtype, raw = r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        status, rtype, raw = e.code, e.headers.get("Content-Type", ""), e.read()
    text = raw.decode("utf-8")
    if dump:
        dump.write(json.dumps({"method": method, "url": url, "status": status, "type": rtype,
                               "body": text}) + "\n")
    return status, rtype, text


def parsed(rtype, text):
    if rtype.startswith("application/json") or rtype.startswith("application/problem+json"):
        return json.loads(text)
    return text


def check_reply(where, op, want, status, rtype, text):
    if status != want:
        bad("%s: status %d, documented %d: %s" % (where, status, want, text[:300]))
        return None
    resp = deref(op["responses"][str(want)])
    content = resp.get("content", {})
    if not content:
        if text:
            bad("%s: %d with a body, documented without" % (where, status))
        return None
    base_type = rtype.split(";")[0].strip()
    if base_type not in content:
        bad("%s: Content-Type %s, documented %s" % (where, rtype, list(content)))
        return None
    value = parsed(base_type, text)
    err = validate(content[base_type].get("schema", {}), value)
    if err:
        bad("%s: reply does not validate: %s" % (where, err))
        return None
    ok("%s -> %d, reply validates" % (where, status))
    return value


def find_op(method, path):
    item = doc["paths"].get(path, {})
    return item.get(method.lower()), item.get("parameters", [])


def success(op):
    return int(min(c for c in op["responses"] if c.startswith("2")))


def replay(method, path, args=None, wait=None, want=None, only=None, query=None):
    """Replays op's request examples (or one bare request) and each query parameter example
    alone; returns the last parsed reply. want: the documented status expected (default the
    operation's lowest success status). only: just the request example of that name. query:
    a list of (name, value) sent with every request example instead of the query parameter
    examples alone (for a query that changes what the operation does, e.g. dryRun)."""
    op, common = find_op(method, path)
    if op is None:
        bad("%s %s: not in the document" % (method, path))
        return None
    done.add((method, path))
    real = path
    for k, v in (args or {}).items():
        real = real.replace("{%s}" % k, v)
    if want is None:
        want = success(op)
    elif str(want) not in op["responses"]:
        bad("%s %s: %d not documented" % (method, path, want))
        return None
    auth = op.get("security", doc.get("security")) != []
    last = None
    bodies = []
    for ctype, media in deref(op.get("requestBody", {})).get("content", {}).items():
        for name, value in media_examples(media):
            if only is None or name == only:
                bodies.append((name, ctype, value))
    if only is not None and not bodies:
        bad("%s %s: no request example %s" % (method, path, only))
        return None
    queries = []
    for p in [deref(p) for p in common + op.get("parameters", [])]:
        if p["in"] == "query" and query is None:
            for name, value in media_examples(p):
                queries.append((p["name"], value))
    for qname, qvalue in queries:  # first: a DELETE with ?version= leaves something
        where = "%s %s?%s=%s" % (method, real, qname, qvalue)
        status, rtype, text = call(method, real, None, None, auth, [(qname, qvalue)])
        check_reply(where, op, want, status, rtype, text)
    if not bodies:
        bodies = [(None, None, None)]
    for name, ctype, value in bodies:
        where = "%s %s%s%s" % (method, real, "?" + "&".join("%s=%s" % q for q in query)
                               if query else "", " [%s]" % name if name else "")
        status, rtype, text = call(method, real, value, ctype, auth, query)
        last = check_reply(where, op, want, status, rtype, text) or last
        if wait:
            wait(last)
    return last


def provoke(method, path, real, want, body=None, auth=True, ctype="application/json"):
    """An error the document lists: status want, a problem+json reply of its schema."""
    op, _ = find_op(method, path)
    if op is None and want == 405:  # a method the path lacks: the shared 405 response
        op = {"responses": {"405": doc["components"]["responses"]["MethodNotAllowed"]}}
    if op is None or str(want) not in op.get("responses", {}):
        bad("%s %s: %d not documented" % (method, path, want))
        return
    status, rtype, text = call(method, real, body, ctype if body is not None else None, auth)
    where = "%s %s (error %d)" % (method, real, want)
    value = check_reply(where, op, want, status, rtype, text)
    if isinstance(value, dict) and value.get("instance") != real.split("?")[0]:
        bad("%s: instance %r" % (where, value.get("instance")))


def example_id(name):
    """The value of components/examples/<name> (an id the examples use)."""
    return doc["components"]["examples"][name]["value"]


done = set()
# 1. the description itself, without a token
op, _ = find_op("GET", "/api/v1/openapi.yaml")
if op is not None:
    done.add(("GET", "/api/v1/openapi.yaml"))
    status, rtype, text = call("GET", "/api/v1/openapi.yaml", auth=False)
    if status == 200 and rtype.startswith("application/yaml") and \
            text == open(args[0], encoding="utf-8").read():
        ok("GET /api/v1/openapi.yaml without a token: the document, byte for byte")
    else:
        bad("GET /api/v1/openapi.yaml: %d %s (%d bytes)" % (status, rtype, len(text)))
# 2. the catalog
replay("POST", "/api/v1/apps")
replay("GET", "/api/v1/apps")
replay("GET", "/api/v1/apps/{id}", {"id": "hello-helm"})
provoke("POST", "/api/v1/apps", "/api/v1/apps", 409, {"path": "hello-helm"})
provoke("POST", "/api/v1/apps", "/api/v1/apps", 403, {"path": "../README.md"})
provoke("POST", "/api/v1/apps", "/api/v1/apps", 422, "id: [unclosed", ctype="application/yaml")
provoke("GET", "/api/v1/apps", "/api/v1/apps", 401, auth=False)
provoke("POST", "/api/v1/apps", "/api/v1/apps", 413, "x" * (1024 * 1024 + 65 * 1024),
        ctype="application/yaml")
provoke("GET", "/api/v1/apps/{id}", "/api/v1/apps/no-such-app", 404)
# 3. devices: labels first (edge-01 becomes the canary), then the list and its pages
LABELS = "/api/v1/devices/{id}/labels"
replay("GET", LABELS, {"id": "edge-01"})
put = replay("PUT", LABELS, {"id": "edge-01"})
if put and put["labels"] != {"tier": "canary", "line": "l2"}:
    bad("PUT /api/v1/devices/edge-01/labels: %r" % put)
patched = replay("PATCH", LABELS, {"id": "edge-01"})
if patched and (patched["labels"] != {"tier": "canary", "rack": "r4"} or
                patched["derived"].get("site") != "plant-7"):
    bad("PATCH /api/v1/devices/edge-01/labels: %r" % patched)
provoke("PATCH", LABELS, "/api/v1/devices/edge-01/labels", 422,
        {"labels": {"margo.org/online": "false"}})
provoke("PUT", LABELS, "/api/v1/devices/edge-01/labels", 422, {"labels": {"tier": "a b"}})
provoke("PUT", LABELS, "/api/v1/devices/edge-01/labels", 400, "[1]")
provoke("PUT", LABELS, "/api/v1/devices/no-such-device/labels", 404, {"labels": {}})
provoke("GET", LABELS, "/api/v1/devices/no-such-device/labels", 404)
provoke("DELETE", LABELS, "/api/v1/devices/edge-01/labels", 405)
replay("GET", "/api/v1/devices")
page = replay("GET", "/api/v1/devices", query=[("selector", "site=plant-7"), ("limit", "1"),
                                               ("compatible", "hello-helm")])
if page and [d["id"] for d in page["devices"]] != ["edge-01"] or page and page["next"] != "edge-01":
    bad("GET /api/v1/devices?selector=site=plant-7&limit=1: %r" % page)
page = replay("GET", "/api/v1/devices", query=[("selector", "tier in (canary)")])
if page and [d["id"] for d in page["devices"]] != ["edge-01"]:
    bad("GET /api/v1/devices?selector=tier in (canary): %r" % page)
provoke("GET", "/api/v1/devices", "/api/v1/devices?selector=" +
        urllib.request.quote("site=plant-7,tier in (canary", safe=""), 400)
provoke("GET", "/api/v1/devices", "/api/v1/devices?limit=1001", 400)
replay("GET", "/api/v1/devices/{id}", {"id": "edge-01"})
provoke("GET", "/api/v1/devices/{id}", "/api/v1/devices/no-such-device", 404)
# 3b. the accepted-client list of the southbound Margo HTTP API: added (201), again (200),
# listed, shown; errors; removed (204), then gone (404)
client = doc["components"]["parameters"]["ClientId"]["example"]
CLIENT = "/api/v1/clients/{id}"
replay("PUT", CLIENT, {"id": client}, want=201)
replay("PUT", CLIENT, {"id": client}, want=200)
replay("GET", "/api/v1/clients")
replay("GET", CLIENT, {"id": client})
provoke("GET", CLIENT, "/api/v1/clients/no-such-client", 404)
provoke("DELETE", CLIENT, "/api/v1/clients/no-such-client", 404)
provoke("PUT", CLIENT, "/api/v1/clients/bad!id", 422)
provoke("PUT", CLIENT, "/api/v1/clients/" + "x" * 129, 422)
provoke("GET", CLIENT, "/api/v1/clients/..", 422)
provoke("POST", "/api/v1/clients", "/api/v1/clients", 405, {})
provoke("GET", "/api/v1/clients", "/api/v1/clients", 401, auth=False)
replay("DELETE", CLIENT, {"id": client})
provoke("GET", CLIENT, "/api/v1/clients/" + client, 404)
# 4. deployments (the document's example id stands for the one made here)
op, _ = find_op("POST", "/api/v1/deployments")
created = replay("POST", "/api/v1/deployments")
if created and created.get("deployments"):
    ctx[example_id("deploymentId")] = created["deployments"][0]["id"]
    dep = created["deployments"][0]["id"]
else:
    bad("POST /api/v1/deployments made no deployment; the rest cannot run")
    sys.exit(1)
provoke("POST", "/api/v1/deployments", "/api/v1/deployments", 422,
        {"app": "hello-helm", "devices": ["edge-01"], "parameters": {"replicas": 9}})
provoke("POST", "/api/v1/deployments", "/api/v1/deployments", 400, "[1, 2]")


def installed(_):
    for _ in range(60):
        status, rtype, text = call("GET", "/api/v1/deployments/" + dep)
        if status == 200 and json.loads(text).get("state") == "installed":
            return
        time.sleep(0.25)
    bad("deployment %s never reported installed" % dep)


installed(None)
replay("GET", "/api/v1/deployments")
provoke("GET", "/api/v1/deployments", "/api/v1/deployments?selector=site%3D(", 400)
provoke("GET", "/api/v1/deployments", "/api/v1/deployments?limit=501", 400)
replay("GET", "/api/v1/deployments/{id}", {"id": dep})
replay("PATCH", "/api/v1/deployments/{id}", {"id": dep})
provoke("GET", "/api/v1/deployments/{id}", "/api/v1/deployments/no-such-deployment", 404)
provoke("PUT", "/api/v1/deployments/{id}", "/api/v1/deployments/" + dep, 405, {})
installed(None)
replay("GET", "/api/v1/status")
replay("GET", "/api/v1/overview")
provoke("GET", "/api/v1/overview", "/api/v1/overview?window=31d", 400)
# 5. the event stream: hello first
op, _ = find_op("GET", "/api/v1/events")
if op is not None:
    done.add(("GET", "/api/v1/events"))
    for query in ("", "?deployment=" + dep):
        req = urllib.request.Request(base + "/api/v1/events" + query)
        req.add_header("Authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=20) as r:
            lines = [r.readline().decode().rstrip("\n") for _ in range(3)]
            if query:
                lines += [r.readline().decode().rstrip("\n") for _ in range(3)]
            rtype = r.headers.get("Content-Type", "")
        content = deref(op["responses"]["200"])["content"]
        schema = content.get("text/event-stream", {}).get("schema", {})
        text = "\n".join(lines) + "\n"
        if dump:
            dump.write(json.dumps({"method": "GET", "url": base + "/api/v1/events" + query,
                                   "status": 200, "type": rtype, "body": text}) + "\n")
        err = validate(schema, text)
        if not rtype.startswith("text/event-stream") or lines[0] != "event: hello" or err:
            bad("GET /api/v1/events%s: %s %r %s" % (query, rtype, lines, err))
        elif query and not (lines[3] == "event: status" and '"snapshot":true' in lines[4]):
            bad("GET /api/v1/events%s: no snapshot after hello: %r" % (query, lines))
        else:
            ok("GET /api/v1/events%s: text/event-stream, hello%s" %
               (query, " then the snapshot" if query else ""))
# 5b. rollouts of the deployments made above: a dry run; a rollout with a canary, run to its
# end; a second one (a long soak) paused, resumed, cancelled and rolled back; errors
R = "/api/v1/rollouts"


def rollout_in(rid, states):
    for _ in range(240):
        status, rtype, text = call("GET", R + "/" + rid)
        if status == 200 and json.loads(text).get("state") in states:
            return json.loads(text)
        time.sleep(0.25)
    bad("rollout %s never became %s" % (rid, " or ".join(states)))
    return None


plan = replay("POST", R, only="canary", query=[("dryRun", "true")], want=200)
if plan and [(t["device"], t["batch"]) for t in plan["targeted"]] != [("edge-01", 0),
                                                                      ("edge-02", 1)]:
    bad("the dry run's plan: %r" % plan)
plan = replay("POST", R, only="excluded", query=[("dryRun", "true")], want=200)
if plan and (plan["targeted"] != [] or
             [(e["device"], e["kind"]) for e in plan["excluded"]] != [("edge-01", "deployment"),
                                                                     ("edge-09", "device")]):
    bad("the dry run's plan: %r" % plan)
status, _, text = call("GET", R)
if status != 200 or json.loads(text).get("rollouts") != []:
    bad("a dry run stored a rollout: %d %s" % (status, text[:200]))
first = replay("POST", R, only="canary", query=[], want=201)
if not first:
    bad("POST /api/v1/rollouts made no rollout; the rest cannot run")
    sys.exit(1)
rid = first["id"]
ctx[example_id("rolloutId")] = rid
done_a = rollout_in(rid, ["succeeded", "aborted", "rolled-back"])
if done_a and (done_a["state"] != "succeeded" or done_a["counts"]["succeeded"] != 2):
    bad("the canary rollout ended %s: %r" % (done_a["state"], done_a))
replay("GET", R)
replay("GET", R + "/{id}", {"id": rid})
replay("GET", R + "/{id}/targets", {"id": rid})
provoke("POST", R + "/{id}/pause", R + "/" + rid + "/pause", 409)
provoke("POST", R + "/{id}/resume", R + "/" + rid + "/resume", 409)
provoke("POST", R + "/{id}/cancel", R + "/" + rid + "/cancel", 409)
second = replay("POST", R, only="soak", query=[], want=201)
if not second:
    bad("POST /api/v1/rollouts [soak] made no rollout; the rest cannot run")
    sys.exit(1)
rid2 = second["id"]
for _ in range(240):  # the canary changed and succeeded: the soak holds the next batch
    status, rtype, text = call("GET", R + "/" + rid2)
    if status == 200 and json.loads(text)["counts"]["succeeded"] == 1:
        break
    time.sleep(0.25)
else:
    bad("rollout %s: the canary never succeeded" % rid2)
replay("POST", R + "/{id}/pause", {"id": rid2})
replay("POST", R + "/{id}/resume", {"id": rid2})
replay("POST", R + "/{id}/cancel", {"id": rid2})
provoke("POST", R + "/{id}/resume", R + "/" + rid2 + "/resume", 409)
replay("POST", R + "/{id}/rollback", {"id": rid2})
rollout_in(rid2, ["rolled-back"])
provoke("POST", R + "/{id}/rollback", R + "/" + rid2 + "/rollback", 409)
provoke("GET", R + "/{id}", R + "/no-such-rollout", 404)
provoke("GET", R + "/{id}/targets", R + "/no-such-rollout/targets", 404)
provoke("POST", R + "/{id}/pause", R + "/no-such-rollout/pause", 404)
provoke("POST", R + "/{id}/resume", R + "/no-such-rollout/resume", 404)
provoke("POST", R + "/{id}/cancel", R + "/no-such-rollout/cancel", 404)
provoke("POST", R + "/{id}/rollback", R + "/no-such-rollout/rollback", 404)
provoke("POST", R, R, 422, {"app": "hello-helm", "selector": "site in (plant-7"})
provoke("POST", R, R, 422, {"app": "hello-helm", "selector": "site=plant-7",
                            "strategy": {"batchSize": 1, "batchPercent": 50}})
provoke("POST", R, R, 422, {"app": "hello-helm", "selector": "site=nowhere"})
provoke("POST", R, R, 400, "[1]")
provoke("GET", R, R + "?limit=101", 400)
provoke("GET", R + "/{id}/targets", R + "/" + rid + "/targets?batch=x", 400)
provoke("DELETE", R + "/{id}", R + "/" + rid, 405)
provoke("GET", R + "/{id}/pause", R + "/" + rid + "/pause", 405)

# 6. removal
replay("DELETE", "/api/v1/deployments/{id}", {"id": dep})
provoke("PATCH", "/api/v1/deployments/{id}", "/api/v1/deployments/" + dep, 409,
        {"parameters": {"greeting": "too late"}})
provoke("DELETE", "/api/v1/apps/{id}", "/api/v1/apps/hello-helm", 409)
replay("DELETE", "/api/v1/apps/{id}", {"id": example_id("appIdToDelete")})

missing = [m + " " + p for m, p, _, _ in operations() if (m, p) not in done]
if missing:
    bad("operations not replayed (add them to STEPS): " + ", ".join(missing))
print("%d check(s) failed" % fails if fails else "all checks passed")
sys.exit(1 if fails else 0)
