#!/usr/bin/env python3
"""margo_http_device.py - a minimal standard Margo device (WFM client) written only with
Python's standard library (http.client + ssl), as a third-party client of margo-manager's
southbound Margo HTTP API (Workload Management API 1.0.0-rc.3; docs/margo-http.md).

    margo_http_device.py BASE_URL CA_PEM CERT_PEM KEY_PEM DEVICE_ID OUT_FILE

It enrolls (PUT /api/v1/capabilities/{id}), polls GET /api/v1/deployments with If-None-Match
until a manifest lists a deployment, checks that manifestVersion grows, fetches that
deployment's YAML by digest and verifies its sha256, and POSTs an "installed" status with
adoptedManifestVersion. Each step is written as a line to OUT_FILE (test_southbound.c reads
it). Exits 0 on success, 1 with the reason on stderr otherwise (60 s at most).
"""
import hashlib
import http.client
import json
import ssl
import sys
import time
import urllib.parse

MANIFEST_TYPE = "application/vnd.margo.manifest.v1+json"


def main():
    base, ca, cert, key, device, out_path = sys.argv[1:7]
    url = urllib.parse.urlparse(base)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    out = open(out_path, "w", encoding="utf-8")

    def say(line):
        out.write(line + "\n")
        out.flush()

    def request(method, path, body=None, headers=None):
        # a new connection per request, as the reference agent re-checks authorization
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        result = (resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
        conn.close()
        return result

    caps = {
        "properties": {
            "id": device, "vendor": "pyvendor", "modelNumber": "py-1", "serialNumber": "0001",
            "cpus": [{"cores": 2, "architecture": "amd64"}], "memory": "2Gi", "storage": "8Gi",
            "peripherals": [], "interfaces": [{"type": "wifi"}], "otelCollector": True,
            "supportedRuntimes": ["oci"], "supportedDeploymentTypes": ["compose"],
        },
    }
    status, _, body = request("PUT", "/api/v1/capabilities/" + device, caps)
    if status not in (200, 201):
        raise SystemExit("enroll: %d %s" % (status, body[:300]))
    say("enrolled %d" % status)

    etag, version, seen_304 = None, 0, False
    deadline = time.time() + 60
    while time.time() < deadline:
        headers = {"Accept": MANIFEST_TYPE}
        if etag:
            headers["If-None-Match"] = etag
        status, hdrs, body = request("GET", "/api/v1/deployments", headers=headers)
        if status == 304:
            if not seen_304:
                say("not modified 304")
            seen_304 = True
            time.sleep(0.2)
            continue
        if status != 200:
            raise SystemExit("manifest: %d %s" % (status, body[:300]))
        if hdrs.get("content-type") != MANIFEST_TYPE:
            raise SystemExit("manifest type %s" % hdrs.get("content-type"))
        if hdrs.get("etag") != '"sha256:%s"' % hashlib.sha256(body).hexdigest():
            raise SystemExit("the manifest's ETag is not the digest of its bytes")
        manifest = json.loads(body)
        if manifest["manifestVersion"] <= version:
            raise SystemExit("manifestVersion %s did not increase" % manifest["manifestVersion"])
        version, etag = manifest["manifestVersion"], hdrs["etag"]
        say("manifest %d with %d deployments" % (version, len(manifest["deployments"])))
        if (manifest["bundle"] is None) != (len(manifest["deployments"]) == 0):
            raise SystemExit("bundle must be null exactly when there are no deployments")
        if manifest["deployments"]:
            break
    else:
        raise SystemExit("no deployment arrived")

    ref = manifest["deployments"][0]
    algo, _, hexdigest = ref["digest"].partition(":")
    if algo != "sha256":
        raise SystemExit("unsupported digest algorithm %s" % algo)
    status, hdrs, yaml_bytes = request("GET", ref["url"])
    if status != 200 or hashlib.sha256(yaml_bytes).hexdigest() != hexdigest:
        raise SystemExit("deployment %s: status %d or digest mismatch" % (ref["url"], status))
    say("digest ok %s" % ref["deploymentId"])
    if ("deviceId: '%s'" % device).encode() not in yaml_bytes:
        raise SystemExit("the YAML is not for this device")

    report = {
        "deploymentId": ref["deploymentId"],
        "adoptedManifestVersion": version,
        "status": {"state": "installed"},
        "components": [{"name": "web", "state": "installed"},
                       {"name": "worker", "state": "installed"}],
    }
    status, _, body = request("POST", "/api/v1/deployments/%s/status" % ref["deploymentId"],
                              report)
    if status not in (200, 201):
        raise SystemExit("status: %d %s" % (status, body[:300]))
    say("status %d" % status)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as e:
        if isinstance(e.code, str):
            print("margo_http_device: " + e.code, file=sys.stderr)
            sys.exit(1)
        raise
