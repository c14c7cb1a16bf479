#!/usr/bin/env python3
# Static checks of the container deployment (docker/), run by
# test_compose.sh. Each check prints one line, "ok <what>" or
# "FAIL <what>: <why>"; the shell script counts them.
#
#   deploy_checks.py compose ROOT MODE CONFIG_YAML
#       MODE demo: the config docker-compose printed with the defaults and
#       --profile demo; MODE production: with production.env.example.
#   deploy_checks.py dockerfile ROOT
#   deploy_checks.py packages DOCKERFILE     runtime apt packages, one a line
#
# Python 3 standard library, plus PyYAML (python3-yaml, which
# docker-compose itself depends on) for the compose mode.

import json
import os
import re
import shlex
import sys


def report(ok, what, why=""):
    if ok:
        print("ok   %s" % what)
    else:
        print("FAIL %s: %s" % (what, why))


# --- Dockerfile -------------------------------------------------------------

def instructions(path):
    """Instructions of a Dockerfile as (KEYWORD, argument text) pairs, with
    continuation lines joined and comments dropped."""
    out = []
    pending = ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and (not line.strip()
                                or line.lstrip().startswith("#")):
                continue
            if pending and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            pending += line
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(path):
    """A list of stages, each {"from": text, "ins": [(KEY, arg), ...]}."""
    result = []
    for key, arg in instructions(path):
        if key == "FROM":
            result.append({"from": arg, "ins": []})
        elif result:
            result[-1]["ins"].append((key, arg))
    return result


def apt_packages(stage):
    """Package names given to apt-get install in a stage's RUN lines."""
    names = []
    for key, arg in stage["ins"]:
        if key != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", arg):
            words = shlex.split(command)
            while words and "=" in words[0]:
                words.pop(0)              # VAR=value prefixes
            if words[:2] != ["apt-get", "install"]:
                continue
            names += [w for w in words[2:] if not w.startswith("-")]
    return names


def last(stage, key):
    found = [arg for k, arg in stage["ins"] if k == key]
    return found[-1] if found else None


def non_root(user):
    if user is None:
        return False
    name = user.split(":")[0]
    return name not in ("root", "0", "")


def check_dockerfile(root):
    path = os.path.join(root, "docker", "Dockerfile")
    st = stages(path)
    report(len(st) >= 2, "Dockerfile: multi-stage",
           "%d stage(s)" % len(st))
    if len(st) < 2:
        return
    build, runtime = st[0], st[-1]

    report(re.fullmatch(r"debian:12-slim\s+AS\s+\S+", build["from"], re.I)
           is not None, "Dockerfile: build stage FROM debian:12-slim",
           build["from"])
    report(runtime["from"].split()[0] == "debian:12-slim",
           "Dockerfile: runtime stage FROM debian:12-slim", runtime["from"])

    runs = [arg for k, arg in build["ins"] if k == "RUN"]
    deps = [i for i, r in enumerate(runs) if "scripts/deps.sh" in r]
    builds = [i for i, r in enumerate(runs) if "scripts/build.sh" in r]
    report(bool(deps), "Dockerfile: build stage runs scripts/deps.sh",
           "no RUN calls it")
    report(bool(builds), "Dockerfile: build stage runs scripts/build.sh",
           "no RUN calls it")
    report(bool(deps) and bool(builds) and deps[0] <= builds[0],
           "Dockerfile: deps.sh runs before build.sh", "wrong order")
    own = apt_packages(build)
    report(not own and not any("apt-get install" in r for r in runs),
           "Dockerfile: build stage names no packages of its own "
           "(deps.sh has the list)", " ".join(own) or "apt-get install")

    user = last(runtime, "USER")
    report(non_root(user), "Dockerfile: runs as a non-root USER",
           "USER %s" % user)

    hc = last(runtime, "HEALTHCHECK") or ""
    report("curl" in hc and "http://127.0.0.1:8080/healthz" in hc,
           "Dockerfile: HEALTHCHECK curls http://127.0.0.1:8080/healthz",
           hc or "no HEALTHCHECK")

    expose = (last(runtime, "EXPOSE") or "").split()
    report("8080" in expose or "8080/tcp" in expose,
           "Dockerfile: EXPOSE 8080", " ".join(expose) or "no EXPOSE")

    ep = last(runtime, "ENTRYPOINT")
    try:
        ep_list = json.loads(ep) if ep else None
    except ValueError:
        ep_list = None
    want = ["recgate", "-c", "/etc/recgate/recgate.conf"]
    report(ep_list == want, "Dockerfile: ENTRYPOINT %s" % json.dumps(want),
           ep or "no ENTRYPOINT")

    copies = [arg for k, arg in runtime["ins"] if k == "COPY"]
    for dest in ("/usr/local/bin/recgate", "/etc/recgate/recgate.conf"):
        report(any(c.split()[-1] == dest for c in copies),
               "Dockerfile: installs %s" % dest, "no COPY to it")

    report(bool(apt_packages(runtime)),
           "Dockerfile: runtime stage installs its libraries with apt",
           "no apt-get install")

    sim = stages(os.path.join(root, "docker", "sim.Dockerfile"))
    report(len(sim) == 1 and sim[0]["from"].split()[0] == "debian:12-slim",
           "sim.Dockerfile: FROM debian:12-slim",
           ", ".join(s["from"] for s in sim))
    if sim:
        pk = apt_packages(sim[-1])
        report("python3" in pk and "openssl" in pk,
               "sim.Dockerfile: installs python3 and openssl", " ".join(pk))
        report(non_root(last(sim[-1], "USER")),
               "sim.Dockerfile: runs as a non-root USER",
               "USER %s" % last(sim[-1], "USER"))


# --- compose ----------------------------------------------------------------

def conf_keys(root):
    """section.key names of conf/recgate.conf, commented-out keys too."""
    keys = set()
    section = None
    with open(os.path.join(root, "conf", "recgate.conf"),
              encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*\[(\w+)\]", line)
            if m:
                section = m.group(1).lower()
                continue
            m = re.match(r"\s*;?\s*(\w+)\s*=", line)
            if m and section:
                keys.add("%s.%s" % (section, m.group(1).lower()))
    return keys


def published(ports):
    """Container port -> host port spec, from either form docker-compose
    prints (a dict, or "ip:host:container/proto")."""
    out = {}
    for p in ports or []:
        if isinstance(p, dict):
            out[int(p["target"])] = str(p.get("published", ""))
        else:
            spec = str(p).split("/")[0].split(":")
            out[int(spec[-1])] = ":".join(spec[:-1])
    return out


def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def mounts(service):
    """Container path -> (source, read_only) of a service's volumes."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out[v["target"]] = (v.get("source"), bool(v.get("read_only")))
        else:
            parts = v.split(":")
            out[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2])
    return out


def secret_names(service):
    return sorted(s["source"] if isinstance(s, dict) else s
                  for s in service.get("secrets") or [])


def check_compose(root, mode, config_path):
    try:
        import yaml
    except ImportError:
        report(False, "compose %s: parse the config" % mode,
               "python3-yaml is not installed")
        return
    with open(config_path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    sv = cfg.get("services") or {}
    tag = "compose (%s)" % mode

    report(set(sv) == {"redis", "recgate", "lb", "sim"},
           "%s: services redis, recgate, lb, sim" % tag,
           ", ".join(sorted(sv)))
    if not {"redis", "recgate", "lb", "sim"} <= set(sv):
        return
    redis, rg, lb, sim = sv["redis"], sv["recgate"], sv["lb"], sv["sim"]

    if mode == "demo":
        cmd = redis.get("command") or []
        cmd = cmd if isinstance(cmd, list) else shlex.split(cmd)
        report(str(redis.get("image", "")).startswith("redis:7")
               and "--appendonly" in cmd
               and cmd[cmd.index("--appendonly") + 1] == "yes",
               "%s: redis:7 with --appendonly yes" % tag,
               "%s %s" % (redis.get("image"), cmd))
        report("/data" in mounts(redis),
               "%s: redis keeps /data on a volume" % tag, "no /data mount")
        test = (redis.get("healthcheck") or {}).get("test") or []
        report("redis-cli ping" in " ".join(test),
               "%s: redis healthcheck runs redis-cli ping" % tag, test)

        build = rg.get("build") or {}
        report(os.path.realpath(str(build.get("context", ""))) ==
               os.path.realpath(root)
               and build.get("dockerfile") == "docker/Dockerfile",
               "%s: recgate built from docker/Dockerfile, context .." % tag,
               build)
        report((rg.get("deploy") or {}).get("replicas") == 2,
               "%s: recgate has 2 replicas" % tag, rg.get("deploy"))
        report(rg.get("read_only") is True,
               "%s: recgate root file system is read-only" % tag,
               rg.get("read_only"))
        dep = (rg.get("depends_on") or {}).get("redis") or {}
        report(dep.get("condition") == "service_healthy",
               "%s: recgate waits for a healthy redis" % tag, dep)
        report(secret_names(rg) == ["recgate_ak", "recgate_sk"],
               "%s: recgate gets recgate_ak and recgate_sk as secrets" % tag,
               secret_names(rg))

        env = env_of(rg)
        report(env.get("RECGATE_CREDENTIALS_AK_FILE") ==
               "/run/secrets/recgate_ak"
               and env.get("RECGATE_CREDENTIALS_SK_FILE") ==
               "/run/secrets/recgate_sk"
               and not any(k in env for k in (
                   "RECGATE_CREDENTIALS_AK", "RECGATE_CREDENTIALS_SK",
                   "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK")),
               "%s: AK/SK only from secret files" % tag, env)
        report(env.get("RECGATE_SERVER_LISTEN") == "0.0.0.0:8080"
               and env.get("RECGATE_REDIS_URL", "").startswith(
                   "redis://redis:6379"),
               "%s: recgate listens on 0.0.0.0:8080, uses redis:6379" % tag,
               env)
        keys = conf_keys(root)
        unknown = []
        for name in env:
            m = re.fullmatch(r"RECGATE_([A-Z0-9]+)_([A-Z0-9_]+)", name)
            if not m or "%s.%s" % (m.group(1).lower(),
                                   m.group(2).lower()) not in keys:
                unknown.append(name)
        report(not unknown,
               "%s: every RECGATE_* variable names a key of "
               "conf/recgate.conf" % tag, ", ".join(unknown))

        report(not redis.get("ports"), "%s: redis publishes no port" % tag,
               redis.get("ports"))
        report(not rg.get("ports"), "%s: recgate publishes no port" % tag,
               rg.get("ports"))
        pub = published(lb.get("ports"))
        report(list(pub) == [8080] and pub[8080].endswith("8080"),
               "%s: lb alone publishes a port (8080 -> 8080)" % tag,
               lb.get("ports"))
        report(lb.get("read_only") is True,
               "%s: lb root file system is read-only" % tag,
               lb.get("read_only"))
        cfg_mount = mounts(lb)
        hap = [src for src, _ in cfg_mount.values()
               if src and src.endswith("docker/haproxy.cfg")]
        report(bool(hap), "%s: lb uses docker/haproxy.cfg" % tag, cfg_mount)

        profiled = sorted(n for n, s in sv.items() if s.get("profiles"))
        report(profiled == ["sim"] and sim.get("profiles") == ["demo"],
               "%s: only sim is in a profile, demo" % tag,
               {n: sv[n].get("profiles") for n in profiled})
        sbuild = sim.get("build") or {}
        report(sbuild.get("dockerfile") == "docker/sim.Dockerfile",
               "%s: sim built from docker/sim.Dockerfile" % tag, sbuild)
        report(env.get("RECGATE_UPSTREAM_ENDPOINT") == "https://sim:8443",
               "%s: recgate's default upstream is https://sim:8443" % tag,
               env.get("RECGATE_UPSTREAM_ENDPOINT"))
        ca = env.get("RECGATE_UPSTREAM_CA_FILE") or ""
        sim_vol = {src for src, _ in mounts(sim).values()}
        rg_ca = [(t, src) for t, (src, _) in mounts(rg).items()
                 if ca.startswith(t.rstrip("/") + "/")]
        report(bool(rg_ca) and rg_ca[0][1] in sim_vol,
               "%s: recgate's default CA file is on the simulator's "
               "volume" % tag, "%s, mounts %s" % (ca, mounts(rg)))
        for name in ("recgate_ak", "recgate_sk"):
            path = ((cfg.get("secrets") or {}).get(name) or {}).get("file")
            ok = bool(path) and os.path.isfile(path)
            report(ok, "%s: demo secret %s exists" % (tag, name), path)

    else:
        env = env_of(rg)
        ep = env.get("RECGATE_UPSTREAM_ENDPOINT") or ""
        report(re.fullmatch(r"https://workspace\.[a-z0-9-]+\."
                            r"myhuaweicloud\.com", ep) is not None,
               "%s: upstream is the cloud endpoint" % tag, ep)
        report(env.get("RECGATE_UPSTREAM_CA_FILE") ==
               "/etc/ssl/certs/ca-certificates.crt",
               "%s: the system CA bundle verifies the cloud" % tag,
               env.get("RECGATE_UPSTREAM_CA_FILE"))
        files = [((cfg.get("secrets") or {}).get(n) or {}).get("file") or ""
                 for n in ("recgate_ak", "recgate_sk")]
        want = [os.path.join(root, "docker", "secrets", n)
                for n in ("recgate_ak", "recgate_sk")]
        report([os.path.realpath(f) for f in files] ==
               [os.path.realpath(w) for w in want],
               "%s: secrets come from docker/secrets/" % tag, files)


def main(argv):
    if len(argv) >= 3 and argv[1] == "dockerfile":
        check_dockerfile(argv[2])
    elif len(argv) >= 5 and argv[1] == "compose":
        check_compose(argv[2], argv[3], argv[4])
    elif len(argv) >= 3 and argv[1] == "packages":
        st = stages(argv[2])
        for name in apt_packages(st[-1]) if st else []:
            print(name)
    else:
        sys.stderr.write("usage: deploy_checks.py compose ROOT MODE YAML | "
                         "dockerfile ROOT | packages DOCKERFILE\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
