#!/usr/bin/python3
"""Drive the network, secret and config API of one endpoint with
python3-docker (docker-py 5.0.3) and print one JSON object per step:
{"step": ..., "val": ...}. Values are shapes and outcomes, not IDs.
Usage: objects.py DOCKER_HOST API_VERSION IMAGE"""
import json, sys
import docker

host, version, image = sys.argv[1], sys.argv[2], sys.argv[3]
c = docker.DockerClient(base_url=host, version=version, timeout=60)


def out(step, val):
    print(json.dumps({"step": step, "val": val}), flush=True)


def step(name, f):
    try:
        out(name, f())
    except docker.errors.NotFound as e:
        out(name, "NotFound %s: %s" % (e.status_code, e.explanation))
    except docker.errors.APIError as e:
        out(name, "APIError %s: %s" % (e.status_code, e.explanation))
    except Exception as e:
        out(name, "%s: %s" % (type(e).__name__, e))


# networks: an attachable overlay network with labels
step("network create", lambda: c.networks.create("pynet", driver="overlay", attachable=True,
                                                   labels={"py": "1"}).name)
step("network get", lambda: (lambda n: {"Name": n.name, "Driver": n.attrs["Driver"], "Scope": n.attrs["Scope"],
                                        "Attachable": n.attrs["Attachable"], "Labels": n.attrs["Labels"]})(c.networks.get("pynet")))
step("network list by label", lambda: [n.name for n in c.networks.list(filters={"label": "py=1"})])
step("network list by driver", lambda: sorted(n.name for n in c.networks.list(filters={"driver": "overlay"}) if n.name == "pynet"))
step("network create taken", lambda: c.networks.create("pynet", driver="overlay").name)

# secrets and configs: create, list by label, inspect, remove
step("secret create", lambda: c.secrets.create(name="pysec", data=b"py-secret", labels={"py": "1"}) and "created")
step("secret get", lambda: (lambda s: {"Name": s.name, "Labels": s.attrs["Spec"]["Labels"], "Data": "Data" in s.attrs["Spec"]})(c.secrets.get("pysec")))
step("secret list by label", lambda: [s.name for s in c.secrets.list(filters={"label": "py=1"})])
step("secret create taken", lambda: c.secrets.create(name="pysec", data=b"x").id and "created")
step("config create", lambda: c.configs.create(name="pyconf", data=b"k=v", labels={"py": "1"}) and "created")
step("config get", lambda: (lambda s: {"Name": s.name, "Labels": s.attrs["Spec"]["Labels"], "Data": s.attrs["Spec"]["Data"]})(c.configs.get("pyconf")))
step("config list by name", lambda: [s.name for s in c.configs.list(filters={"name": "pyconf"})])

# in use: a service (no replicas: no task) holds the network, the secret and the config
ref = lambda cls, name, **kw: cls(c.api.inspect_secret(name)["ID"] if cls is docker.types.SecretReference else c.api.inspect_config(name)["ID"], name, **kw)
step("service create", lambda: c.services.create(image, ["true"], name="pysvc", networks=["pynet"],
                                                 secrets=[ref(docker.types.SecretReference, "pysec")],
                                                 configs=[ref(docker.types.ConfigReference, "pyconf", filename="/etc/pyconf")],
                                                 mode=docker.types.ServiceMode("replicated", replicas=0)).name)
step("network remove in use", lambda: c.networks.get("pynet").remove() or "removed")
step("secret remove in use", lambda: c.secrets.get("pysec").remove() or "removed")
step("config remove in use", lambda: c.configs.get("pyconf").remove() or "removed")
step("service remove", lambda: c.services.get("pysvc").remove())
step("network remove", lambda: c.networks.get("pynet").remove() or "removed")
step("secret remove", lambda: c.secrets.get("pysec").remove())
step("config remove", lambda: c.configs.get("pyconf").remove())
step("network get removed", lambda: c.networks.get("pynet").name)
step("secret get removed", lambda: c.secrets.get("pysec").name)
step("config get removed", lambda: c.configs.get("pyconf").name)
