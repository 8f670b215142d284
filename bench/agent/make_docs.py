# make_docs.py - writes the deployment and manifest (canonical MessagePack) used by footprint.sh.
import hashlib, sys, msgpack
def canon(v):
    if isinstance(v, dict):
        return {k: canon(v[k]) for k in sorted(v, key=lambda s: s.encode())}
    if isinstance(v, list):
        return [canon(x) for x in v]
    return v
http_port, out, version, greeting = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dep_id = "33333333-3333-4333-8333-333333333333"
doc = {"apiVersion": "application.margo.org/v1alpha1", "kind": "ApplicationDeployment", "id": dep_id,
       "metadata": {"annotations": {"applicationId": "hello-web", "id": dep_id}, "name": "hello-web", "namespace": "default"},
       "spec": {"applicationId": "hello-web", "deploymentProfile": {"type": "compose", "components": [
           {"name": "web", "properties": {"packageLocation": "http://127.0.0.1:%s/app-v1.yaml" % http_port, "wait": True, "timeout": "2m0s"}}]},
           "parameters": {"greeting": {"value": greeting, "targets": [{"pointer": "GREETING", "components": ["web"]}]}}}}
b = msgpack.packb(canon(doc), use_bin_type=True)
open(out + "/dep.mp", "wb").write(b)
digest = "sha256:" + hashlib.sha256(b).hexdigest()
man = {"manifestVersion": version, "bundle": None, "deployments": [{"deploymentId": dep_id, "digest": digest}]} if greeting != "-" else {"manifestVersion": version, "bundle": None, "deployments": []}
open(out + "/man.mp", "wb").write(msgpack.packb(canon(man), use_bin_type=True))
print(dep_id)
