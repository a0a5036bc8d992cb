#!/usr/bin/python3
"""Drive the service API of one endpoint with python3-docker (docker-py
5.0.3) and print one JSON object per step: {"step": ..., "val": ...}.
Values are shapes and outcomes, not IDs; the Go test compares swarm mode's
with shoal's. Usage: services.py DOCKER_HOST API_VERSION"""
import json, sys, time
import docker
from docker.types import ServiceMode, EndpointSpec, UpdateConfig

host, version = sys.argv[1], sys.argv[2]
c = docker.DockerClient(base_url=host, version=version, timeout=60)
SLEEPER = ["sh", "-c", "trap exit TERM; sleep 3600 & wait"]

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

def wait(f, what, limit=60):
    t0 = time.time()
    while time.time() - t0 < limit:
        if f():
            return True
        time.sleep(0.2)
    out("timeout", what)
    return False

def running(s):
    return len([t for t in s.tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running"])

s = c.services.create("busybox:latest", SLEEPER, name="pysvc", mode=ServiceMode("replicated", replicas=2),
                      labels={"py": "1"}, container_labels={"pc": "1"}, env=["A=1"],
                      update_config=UpdateConfig(parallelism=0, monitor=1000000000), stop_grace_period=1000000000)
step("services.create name", lambda: s.name)
wait(lambda: running(s) == 2, "2 running")
step("services.list names", lambda: sorted(x.name for x in c.services.list()))
step("services.list(filters=name)", lambda: [x.name for x in c.services.list(filters={"name": "pysvc"})])
step("services.get by name", lambda: c.services.get("pysvc").id == s.id)
step("service.attrs keys", lambda: sorted(c.services.get(s.id).attrs.keys()))
step("service.attrs Spec keys", lambda: sorted(c.services.get(s.id).attrs["Spec"].keys()))
step("service.tasks() count, states", lambda: sorted((t["DesiredState"], t["Status"]["State"]) for t in s.tasks()))
step("service.tasks() keys", lambda: sorted(s.tasks()[0].keys()))
step("service.tasks(filters desired-state=running) count", lambda: len(s.tasks(filters={"desired-state": "running"})))
step("service.scale(3)", lambda: s.scale(3))
wait(lambda: running(s) == 3, "3 running")
s.reload()
step("after scale: Replicas", lambda: s.attrs["Spec"]["Mode"]["Replicated"]["Replicas"])
step("service.update(env)", lambda: s.update(env=["A=2"]) is None or True)
s.reload()
step("after update: env", lambda: s.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env"))
step("after update: Replicas kept", lambda: s.attrs["Spec"]["Mode"]["Replicated"]["Replicas"])
step("after update: PreviousSpec env", lambda: s.attrs.get("PreviousSpec", {}).get("TaskTemplate", {}).get("ContainerSpec", {}).get("Env"))
def stale():
    c.api.update_service(s.id, 1, task_template={"ContainerSpec": {"Image": "busybox:latest", "Command": SLEEPER}}, name="pysvc")
step("update at a stale version", stale)
wait(lambda: running(s) == 3 and c.services.get(s.id).attrs.get("UpdateStatus", {}).get("State") == "completed", "update completed")
lg = c.services.create("busybox:latest", ["sh", "-c", "echo py-log; trap exit TERM; sleep 3600 & wait"], name="pylogs")
wait(lambda: running(lg) == 1, "pylogs running")
def logs():
    for _ in range(50):
        got = b"".join(lg.logs(stdout=True, stderr=True, follow=False)).decode()
        if "py-log" in got:
            return got.strip()
        time.sleep(0.2)
    return "no log"
step("service.logs", logs)
step("services.get unknown", lambda: c.services.get("nope"))
step("services.create name taken", lambda: c.services.create("busybox:latest", SLEEPER, name="pysvc").name)
step("service.remove", lambda: s.remove())
step("pylogs.remove", lambda: lg.remove())
step("services.list after remove", lambda: [x.name for x in c.services.list()])
