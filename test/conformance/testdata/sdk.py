#!/usr/bin/python3
"""Drive one Docker endpoint with python3-docker (docker-py 5.0.3) and print
one JSON object per step: {"step": ..., "val": ...}. Values are shapes and
outcomes (not IDs); the Go test compares an engine's output with shoal's.
Usage: sdk.py DOCKER_HOST API_VERSION BUSYBOX_TAR"""
import io, json, os, sys, tarfile, time
import docker

host, version, bbtar = sys.argv[1], sys.argv[2], sys.argv[3]
c = docker.DockerClient(base_url=host, version=version, timeout=60)

def out(step, val):
    print(json.dumps({"step": step, "val": val}), flush=True)

def step(name, f):
    try:
        out(name, f())
    except docker.errors.NotFound as e:
        out(name, "NotFound: " + str(e.explanation))
    except docker.errors.APIError as e:
        out(name, "APIError %s: %s" % (e.status_code, e.explanation))
    except Exception as e:
        out(name, "%s: %s" % (type(e).__name__, e))

def keys(d):
    return sorted(d.keys())

t0 = int(time.time()) - 1
for n in ("pysdk", "pysdk-net-user"):
    try:
        c.containers.get(n).remove(force=True)
    except Exception:
        pass
step("ping", lambda: c.ping())
step("version keys", lambda: keys(c.version()))
step("info Containers is int", lambda: isinstance(c.info().get("Containers"), int))
step("containers.run (no detach)", lambda: c.containers.run("busybox", ["echo", "hi"], remove=True).decode())
step("containers.run (exit 3)", lambda: c.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True))
ct = c.containers.run("busybox", ["sh", "-c", "echo out; sleep 0.2; echo err >&2; sleep 300"], name="pysdk", detach=True, labels={"cnf": "py"})
step("container.name", lambda: ct.name.split("/")[-1])
time.sleep(0.5)
step("container.reload status", lambda: (ct.reload(), ct.status)[1])
step("container.attrs [json keys]", lambda: keys(ct.attrs))
step("containers.list by label", lambda: [x.name.split("/")[-1] for x in c.containers.list(filters={"label": "cnf=py"})])
step("containers.get by name", lambda: c.containers.get("pysdk").id == ct.id)
step("logs", lambda: ct.logs().decode())
step("logs stderr only", lambda: ct.logs(stdout=False, stderr=True).decode())
step("exec_run", lambda: list(ct.exec_run(["sh", "-c", "echo x; exit 2"])))
step("exec_run demux", lambda: [(o or b"").decode() for o in ct.exec_run(["sh", "-c", "echo a; echo b >&2"], demux=True).output])
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tf:
    data = b"from-python"
    ti = tarfile.TarInfo("py.txt"); ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))
step("put_archive", lambda: ct.put_archive("/tmp", buf.getvalue()))
def get_archive():
    bits, stat = ct.get_archive("/tmp/py.txt")
    raw = b"".join(bits)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        return [stat["name"], stat["size"], tf.extractfile("py.txt").read().decode()]
step("get_archive", get_archive)
step("get_archive missing", lambda: ct.get_archive("/nope"))
step("stats (one) keys", lambda: keys(ct.stats(stream=False)))
def stats_stream():
    g = ct.stats(stream=True, decode=True)
    a = next(g); b = next(g)
    return [sorted(a.keys()) == sorted(b.keys()), "cpu_stats" in b]
step("stats stream two samples", stats_stream)
step("top titles", lambda: ct.top()["Titles"])
step("container.kill", lambda: ct.kill())
step("container.wait", lambda: ct.wait()["StatusCode"])
step("container.remove", lambda: ct.remove())
step("containers.get removed", lambda: c.containers.get("pysdk"))
step("containers.run missing image", lambda: c.containers.run("nosuch/image:1", "true", remove=True))
with open(bbtar, "rb") as f:
    step("images.load", lambda: sorted(t for i in c.images.load(f.read()) for t in i.tags))
step("images.list busybox tags", lambda: sorted(set(t for i in c.images.list("busybox") for t in i.tags)))
step("images.get", lambda: c.images.get("busybox").tags)
step("images.get attrs keys", lambda: keys(c.images.get("busybox").attrs))
step("images.get missing", lambda: c.images.get("nosuch"))
for n in ("pynet",):
    try:
        c.networks.get(n).remove()
    except Exception:
        pass
net = None
def net_create():
    global net
    net = c.networks.create("pynet", driver="bridge", check_duplicate=True, labels={"l": "v"})
    return net.name
step("networks.create", net_create)
step("networks.create duplicate", lambda: c.networks.create("pynet", check_duplicate=True).name)
step("networks.list by name", lambda: [n.name for n in c.networks.list(names=["pynet"])])
# Clients find what they created by its exact name in the whole list.
step("networks.list finds pynet by its name", lambda: [n.name for n in c.networks.list() if n.name == "pynet"])
step("networks.get attrs keys", lambda: keys(c.networks.get("pynet").attrs))
def net_connect():
    u = c.containers.run("busybox", ["sleep", "60"], name="pysdk-net-user", detach=True, network="pynet")
    n = c.networks.get("pynet")
    n.disconnect(u)
    n.connect(u)
    u.reload()
    r = sorted(k.split("/")[-1] for k in u.attrs["NetworkSettings"]["Networks"])
    u.remove(force=True)
    return r
step("network connect/disconnect", net_connect)
step("network.remove", lambda: c.networks.get("pynet").remove())
step("networks.get missing", lambda: c.networks.get("nosuch"))
step("volumes.create", lambda: c.volumes.create("pyvol", labels={"l": "v"}).name)
step("volumes.get attrs keys", lambda: keys(c.volumes.get("pyvol").attrs))
step("volumes.list finds pyvol by its name", lambda: [v.name for v in c.volumes.list() if v.name == "pyvol"])
step("run with volume", lambda: c.containers.run("busybox", ["sh", "-c", "echo v > /d/f; cat /d/f"], volumes={"pyvol": {"bind": "/d", "mode": "rw"}}, remove=True).decode())
step("volume.remove", lambda: c.volumes.get("pyvol").remove())
step("volumes.get missing", lambda: c.volumes.get("nosuch"))
def import_with_changes():
    # The last status of an import is the new image's ID: SDKs read it
    # as such and look the image up by it.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"imported"
        ti = tarfile.TarInfo("imp.txt"); ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    res = c.api.import_image_from_data(buf.getvalue(), repository="pyimport", tag="1", changes=['CMD ["cat", "/imp.txt"]'])
    msgs = [json.loads(l) for l in res.splitlines() if l.strip()]
    last = msgs[-1]["status"]
    im = c.images.get(last)
    return [len(msgs), last.startswith("sha256:"), im.attrs["Config"]["Cmd"], "pyimport:1" in im.tags]
step("import_image_from_data(changes=...): image by last status", import_with_changes)
step("import cleanup", lambda: c.images.remove("pyimport:1") and None)
def events():
    until = int(time.time()) + 1
    ev = c.events(since=t0, until=until, decode=True, filters={"container": "pysdk"})
    return sorted(set(e.get("Action", e.get("status")) for e in ev))
step("events since/until (container pysdk)", events)
# Test suites' teardown: leaving a swarm that was never joined is a 503
# "This node is not part of a swarm", which docker-py takes as done.
# Against a built-in cluster (SDK_IN_CLUSTER=1) a forced leave would take its manager out, as on swarm mode.
if not os.environ.get("SDK_IN_CLUSTER"): step("swarm.leave(force=True) outside a swarm", lambda: c.swarm.leave(force=True))
step("leave_swarm() outside a swarm", lambda: c.api.leave_swarm())
