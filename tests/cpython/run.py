#!/usr/bin/python3
"""tests/cpython/run.py - CPython's own regression suite under memshim.

    tests/cpython/run.py --python /usr/bin/python3.11 --lib build/libmemshim.so \
        --out build/cpython [--jobs 2] [--modes plain,pool,track] [MODULE...]

(`make check-cpython` runs it.)  Every module of tests/cpython/modules.txt
(or the MODULEs given) runs as `PYTHON -m test --timeout T MODULE`, each in a
process of its own, JOBS at a time, three ways:

  plain  PYTHONMALLOC=malloc, no memshim: glibc's malloc (the reference)
  pool   PYTHONMALLOC=malloc LD_PRELOAD=libmemshim.so MEMSHIM_TRACK=0
  track  PYTHONMALLOC=malloc LD_PRELOAD=libmemshim.so (tracking and the
         leak report at exit, memshim's default)

and, when asked for (--modes ...,prof,psample), with a heap profile of
every process at exit (OUT/MODE/profiles/MODULE/<pid>.pb.gz):

  prof     tracking and MEMSHIM_PROFILE: each process that wrote a leak
           report must also have written a profile
  psample  MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=65536 MEMSHIM_PROFILE: the
           sampled profiler alone

A profile must be a whole gzip member that `memshim profile` (beside the
library, when built) reads; a module whose profiles are missing or damaged
fails (status bad-profile).

PYTHONMALLOC=malloc in every mode, so that each Python allocation is a
malloc call and the only difference between the reference and the other
modes is memshim.  The leak report of every process (children included)
goes to OUT/MODE/reports/MODULE/<pid>.txt, never to the terminal.  A module
whose reference run does not pass is not run under memshim and is listed as
skipped with the reason.  A module that passes in the reference run and not
under memshim (failure, crash, timeout, changed environment) fails the run.

Prints one line per mode; the table of modules x modes goes to
OUT/table.txt, and to the terminal too when something failed.  Each
module's output is in OUT/MODE/MODULE.log.  Exit status: 0 when every
module that passes without memshim passes with it, 1 otherwise.
"""
import argparse
import concurrent.futures
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("plain", "pool", "track", "prof", "psample")
PROFILED = ("prof", "psample")
# regrtest's own result line ("Tests result: SUCCESS"), 3.11 to 3.13 forms.
RESULT_RE = re.compile(r"^(?:== )?Tests result: ([A-Z ,]+?)(?: ==)?$", re.M)
FAILED_TEST_RE = re.compile(r"^(?:FAIL|ERROR): (\S+) \(([^)]*)\)", re.M)
RAN_RE = re.compile(r"^Ran (\d+) tests? in ", re.M)
SKIPPED_RE = re.compile(r"^(?:OK|FAILED) \(.*\bskipped=(\d+)", re.M)


def counts(text):
    """(tests run, tests skipped), unittest's own figures summed."""
    return (sum(int(n) for n in RAN_RE.findall(text)),
            sum(int(n) for n in SKIPPED_RE.findall(text)))


def read_modules(path):
    """modules.txt: `MODULE [regrtest options]  # why`, one a line; the
    options (say -i PATTERN, to leave out a test that cannot pass on this
    kind of machine) apply in every mode."""
    mods, opts = [], {}
    with open(path) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words:
                mods.append(words[0])
                opts[words[0]] = words[1:]
    return mods, opts


def mode_env(mode, lib, out, module, tmp):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEMSHIM_", "PYTHON")) and k != "LD_PRELOAD"}
    env["PYTHONMALLOC"] = "malloc"
    env["TMPDIR"] = tmp
    if mode != "plain":
        rdir = os.path.join(out, mode, "reports", module)
        os.makedirs(rdir, exist_ok=True)
        env["LD_PRELOAD"] = lib
        env["MEMSHIM_REPORT"] = os.path.join(rdir, "%p.txt")
        if mode in ("pool", "psample"):
            env["MEMSHIM_TRACK"] = "0"
        if mode in PROFILED:
            pdir = os.path.join(out, mode, "profiles", module)
            os.makedirs(pdir, exist_ok=True)
            env["MEMSHIM_PROFILE"] = os.path.join(pdir, "%p.pb.gz")
        if mode == "psample":
            env["MEMSHIM_SAMPLE"] = "65536"
    return env


def check_profiles(out, mode, module, tool):
    """'' when every process of the module's run left a whole profile (in
    prof, one for each leak report), else what is wrong."""
    pdir = os.path.join(out, mode, "profiles", module)
    names = sorted(os.listdir(pdir))
    if not names:
        return "no profile"
    tmp = [n for n in names if not n.endswith(".pb.gz")]
    if tmp:
        return "left unfinished: %s" % " ".join(tmp[:3])
    if mode == "prof":
        rdir = os.path.join(out, mode, "reports", module)
        pids = {n.split(".")[0] for n in os.listdir(rdir)}
        missing = sorted(pids - {n.split(".")[0] for n in names})
        if missing:
            return "%d processes wrote a leak report and no profile (%s)" % (
                len(missing), " ".join(missing[:3]))
    for n in names:
        path = os.path.join(pdir, n)
        try:
            with gzip.open(path) as f:
                if not f.read():
                    return "%s: empty" % n
        except (OSError, EOFError, zlib.error) as e:
            return "%s: %s" % (n, e)
        if tool:
            r = subprocess.run([tool, "profile", path, "--top", "3"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env={"PATH": os.environ.get("PATH", "")})
            if r.returncode != 0:
                return "%s: memshim profile: %s" % (n, r.stderr.decode(errors="replace").strip()[:80])
    return ""


def classify(rc, text, killed):
    """(status, detail): status is passed, failed, env-changed, crashed,
    timeout, skipped or no-tests."""
    if killed:
        return "timeout", "killed by the driver"
    m = RESULT_RE.findall(text)
    result = m[-1] if m else ""
    failing = sorted({"%s" % t for t, _ in FAILED_TEST_RE.findall(text)})
    if rc < 0:
        try:
            return "crashed", "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "crashed", "killed by signal %d" % -rc
    if rc != 0 and re.search(r"^Timeout \(\d+:\d\d:\d\d\)!", text, re.M):
        return "timeout", "regrtest --timeout"
    if result.startswith("SUCCESS") and rc == 0:
        if re.search(r"^\S+ skipped", text, re.M) and \
                re.search(r"^1 test skipped:", text, re.M):
            return "skipped", skip_reason(text)
        return "passed", ""
    if result.startswith("NO TESTS RAN"):
        return "no-tests", ""
    if "ENV CHANGED" in result:
        return "env-changed", env_reason(text)
    if rc == 2 or "FAILURE" in result:
        if re.search(r"crashed \(Exit code", text):
            return "crashed", crash_reason(text)
        return "failed", " ".join(failing[:6]) + (" ..." if len(failing) > 6 else "")
    return "crashed", "exit status %d, result %r" % (rc, result or "none")


def skip_reason(text):
    m = re.search(r"^\S+ skipped -- (.*)$", text, re.M)
    return m.group(1)[:80] if m else "skipped"


def env_reason(text):
    m = re.search(r"^Warning -- (.*)$", text, re.M)
    return m.group(1)[:80] if m else "environment changed"


def crash_reason(text):
    m = re.search(r"crashed \((Exit code [^)]*)\)", text)
    return m.group(1) if m else "crashed"


def run_one(py, lib, out, mode, module, opts, timeout, tmproot):
    log = os.path.join(out, mode, module + ".log")
    tmp = tempfile.mkdtemp(prefix=module + ".", dir=tmproot)
    env = mode_env(mode, lib, out, module, tmp)
    cmd = [py, "-m", "test", "-v", "--timeout", str(timeout)] + opts + [module]
    t0 = time.monotonic()
    killed = False
    with open(log, "w") as f:
        f.write("# %s\n# %s\n" % (" ".join("%s=%s" % (k, env[k]) for k in
                                           ("PYTHONMALLOC", "LD_PRELOAD", "MEMSHIM_TRACK",
                                            "MEMSHIM_SAMPLE", "MEMSHIM_REPORT",
                                            "MEMSHIM_PROFILE") if k in env),
                                  " ".join(cmd)))
        f.flush()
        p = subprocess.Popen(cmd, env=env, cwd=tmp, stdin=subprocess.DEVNULL,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout + 120)
        except subprocess.TimeoutExpired:
            killed = True
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
    elapsed = time.monotonic() - t0
    try:                                # a test's children left behind
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    with open(log, errors="replace") as f:
        text = f.read()
    status, detail = classify(rc, text, killed)
    if mode in PROFILED and status in ("passed", "failed", "env-changed"):
        tool = os.path.join(os.path.dirname(lib), "memshim")
        bad = check_profiles(out, mode, module, tool if os.access(tool, os.X_OK) else None)
        if bad:
            status, detail = "bad-profile", bad
    return module, status, detail, elapsed, counts(text)


def run_mode(args, mode, modules, tmproot):
    os.makedirs(os.path.join(args.out, mode), exist_ok=True)
    results = {}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        futs = [ex.submit(run_one, args.python, args.lib, args.out, mode, m,
                          args.opts.get(m, []), args.timeout, tmproot) for m in modules]
        for fut in concurrent.futures.as_completed(futs):
            m, status, detail, elapsed, ran = fut.result()
            results[m] = (status, detail, elapsed, ran)
            if args.verbose:
                print("  %-8s %-28s %-12s %6.1f s %s" % (mode, m, status, elapsed, detail),
                      flush=True)
    return results, time.monotonic() - t0


def count_reports(out, mode, kind="reports"):
    n = 0
    for _, _, files in os.walk(os.path.join(out, mode, kind)):
        n += len(files)
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--modules", default=os.path.join(HERE, "modules.txt"))
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("module", nargs="*")
    args = ap.parse_args()
    args.lib = os.path.abspath(args.lib)
    args.out = os.path.abspath(args.out)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            ap.error("unknown mode %r" % m)
    if "plain" not in modes:
        modes.insert(0, "plain")        # the reference decides what must pass
    modules, args.opts = read_modules(args.modules)
    if args.module:
        modules = args.module
    if not os.path.isfile(args.lib):
        sys.exit("check-cpython: %s not found" % args.lib)
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    tmproot = tempfile.mkdtemp(prefix="memshim-cpython.")

    table = {}          # module -> {mode: (status, detail, seconds)}
    summary = []
    bad = []
    try:
        for mode in modes:
            # Under memshim, the longest first: two at a time, they end together.
            todo = modules if mode == "plain" else \
                sorted((m for m in modules if table[m]["plain"][0] == "passed"),
                       key=lambda m: -table[m]["plain"][2])
            res, secs = run_mode(args, mode, todo, tmproot)
            for m in modules:
                table.setdefault(m, {})
                if m in res:
                    table[m][mode] = res[m]
                else:
                    st = table[m]["plain"][0]
                    table[m][mode] = ("skipped", "%s without memshim" % st, 0.0, None)
            counts = {}
            for m in todo:
                counts[res[m][0]] = counts.get(res[m][0], 0) + 1
            npass = counts.get("passed", 0)
            if mode == "plain":
                other = len(todo) - npass
                line = ("cpython %-5s: %d passed, %d not passing without memshim "
                        "(not run under memshim) in %.0f s"
                        % (mode, npass, other, secs))
            else:
                nbad = len(todo) - npass
                bad += [(m, mode) for m in todo if res[m][0] != "passed"]
                reports = ("tracking off" if mode in ("pool", "psample") else "%d leak reports in %s" % (
                    count_reports(args.out, mode),
                    os.path.relpath(os.path.join(args.out, mode, "reports"))))
                if mode in PROFILED:
                    reports += ", %d profiles" % count_reports(args.out, mode, "profiles")
                line = ("cpython %-5s: %d passed, %d failed in %.0f s, %s"
                        % (mode, npass, nbad, secs, reports))
            summary.append(line)
            print(line, flush=True)
    finally:
        shutil.rmtree(tmproot, ignore_errors=True)

    lines = ["%-30s %s" % ("module", " ".join("%-20s" % m for m in modes))]
    for m in modules:
        cells = []
        notes = []
        for mode in modes:
            st, det, secs, ran = table[m][mode]
            cells.append("%-20s" % (st if st == "skipped" else "%s %.0fs" % (st, secs)))
            if det and (mode == "plain" or st != "skipped"):
                notes.append("%s: %s" % (mode, det))
            ref = table[m]["plain"][3]
            if mode != "plain" and ran and ref and ran != ref:
                # Not a failure, but worth a look: a test skipped only under memshim.
                notes.append("%s ran %d tests, %d skipped (without memshim: %d, %d)"
                             % ((mode,) + ran + ref))
        notes = "; ".join(notes)
        lines.append("%-30s %s%s" % (m, " ".join(cells), ("  " + notes) if notes else ""))
    lines += [""] + summary
    with open(os.path.join(args.out, "table.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    if bad:
        print("\n".join(lines[:1] + [l for l in lines[1:] if l.split(" ", 1)[0] in
                                     {m for m, _ in bad}]))
        for m, mode in bad:
            print("check-cpython: %s fails under memshim (%s): %s" % (
                m, mode, os.path.relpath(os.path.join(args.out, mode, m + ".log"))))
        print("check-cpython: %d module runs failed under memshim; table in %s"
              % (len(bad), os.path.relpath(os.path.join(args.out, "table.txt"))))
        return 1
    print("check-cpython: every module that passes without memshim passes with it; "
          "table in %s" % os.path.relpath(os.path.join(args.out, "table.txt")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
