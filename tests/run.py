#!/usr/bin/env python3
"""fbconnect's test runner: the unit tests (cmocka, TAP output), one integration run against
a real stack (Redis, nginx, the sandbox provider, fbconnect) started in a temporary folder,
and, when asked, the unit tests under valgrind and the fuzz targets (corpus replay plus a
short campaign each, two at a time).  Ends with one line: `N passed, N failed`.

usage: tests/run.py [--build DIR] [--only SUBSTRING] [--keep] [--unit-only]
                    [--valgrind DIR] [--fuzz DIR] [--fuzz-seconds N]
"""
import concurrent.futures
import shutil
import argparse
import glob
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "integration"))

import stack as stacks  # noqa: E402


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def ok(self, name, seconds=None):
        self.passed += 1
        extra = f" ({seconds:.2f}s)" if seconds is not None else ""
        print(f"ok   {name}{extra}", flush=True)

    def fail(self, name, why):
        self.failed.append(name)
        print(f"FAIL {name}: {why}", flush=True)


def run_unit(build, tally, only):
    bins = sorted(glob.glob(os.path.join(build, "tests", "test_*")) +
                  glob.glob(os.path.join(build, "tests", "core_*")))
    bins = [b for b in bins if os.access(b, os.X_OK) and not b.endswith(".d")]
    if not bins:
        tally.fail("unit", f"no unit test binaries in {build}/tests")
    for b in bins:
        suite = os.path.basename(b)
        if only and only not in suite:
            continue
        env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
        r = subprocess.run([b], capture_output=True, text=True, errors="replace", env=env, timeout=300)
        seen = 0
        for line in r.stdout.splitlines():
            if line.startswith("ok "):
                seen += 1
                tally.ok(f"{suite}: {line.split(' - ', 1)[-1]}")
            elif line.startswith("not ok "):
                seen += 1
                tally.fail(f"{suite}: {line.split(' - ', 1)[-1]}", "see output above")
            elif line.startswith("#") and "not ok" not in line and line.strip() != "#":
                print(f"     {line}")
        if r.returncode != 0 and seen == 0:
            tally.fail(suite, f"exit {r.returncode}: {r.stderr.strip()[-2000:]}")
        if r.stderr.strip() and ("ERROR" in r.stderr or "Sanitizer" in r.stderr or "runtime error" in r.stderr):
            tally.fail(f"{suite} (sanitizer)", r.stderr.strip()[-3000:])


def load_modules():
    mods = []
    for path in sorted(glob.glob(os.path.join(HERE, "integration", "test_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods


def run_integration(build, tally, only, keep):
    mods = load_modules()
    tests = [(m.__name__, name, getattr(m, name)) for m in mods for name in dir(m)
             if name.startswith("test_") and callable(getattr(m, name))]
    # Keep each module's tests in source order.
    tests.sort(key=lambda t: (t[0], t[2].__code__.co_firstlineno))
    if only:
        tests = [t for t in tests if only in f"{t[0]}.{t[1]}"]
    if not tests:
        return
    workdir = tempfile.mkdtemp(prefix="fbconnect-test-")
    stack = stacks.Stack(workdir, build, {
        "FBCONNECT_HTTP_TIMEOUT_MS": "2000",
        "FBCONNECT_REDIS_TIMEOUT_MS": "500",
        "FBCONNECT_INSTANCES": "2",
    })
    try:
        t0 = time.monotonic()
        stack.start()
        print(f"# stack up in {time.monotonic() - t0:.2f}s at {workdir}", flush=True)
    except Exception as e:  # noqa: BLE001
        tally.fail("integration: stack start", str(e))
        for f in ("fbconnect.log", "fbsandbox.log", "nginx-error.log", "redis.log"):
            print(f"--- {f}\n{stack.log(f)[-3000:]}")
        stack.stop()
        return
    try:
        for mod, name, fn in tests:
            label = f"{mod}.{name}"
            t0 = time.monotonic()
            try:
                fn(stack)
                tally.ok(label, time.monotonic() - t0)
            except Exception as e:  # noqa: BLE001
                detail = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])
                tally.fail(label, detail.strip())
            finally:
                try:
                    stack.run("start-redis")  # a test may have stopped it
                    stack.clear_faults()
                    if stack.overrides:  # isolation is the test's own: `with stack.settings(...)`
                        tally.fail(f"{label} (isolation)", "left fbconnect with its own settings")
                        stack.restart_fbconnect()
                except Exception as e:  # noqa: BLE001
                    tally.fail(f"{label} (cleanup)", str(e))
        sanitizer = [l for l in stack.log("fbconnect.log").splitlines()
                     if "Sanitizer" in l or "runtime error" in l]
        if sanitizer:
            tally.fail("integration: sanitizer reports in fbconnect.log", "\n".join(sanitizer[:20]))
    finally:
        stack.stop()
        if keep or tally.failed:
            print(f"# logs kept in {workdir}/logs")
        else:
            subprocess.run(["rm", "-rf", workdir])


def run_valgrind(build, tally, only):
    """The unit tests under memcheck: zero errors, zero definite or indirect leaks."""
    bins = sorted(b for b in glob.glob(os.path.join(build, "tests", "test_*"))
                  if os.access(b, os.X_OK) and not b.endswith(".d"))
    if not bins:
        tally.fail("valgrind", f"no unit test binaries in {build}/tests")
    for b in bins:
        name = f"valgrind {os.path.basename(b)}"
        if only and only not in name:
            continue
        r = subprocess.run(["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                            "--errors-for-leak-kinds=definite,indirect", b],
                           capture_output=True, text=True, errors="replace", timeout=600)
        if r.returncode == 0:
            tally.ok(name)
        else:
            tally.fail(name, f"exit {r.returncode}: {r.stderr.strip()[-3000:]}")


def fuzz_one(target, seconds):
    """Replays a target's corpus and regressions, then fuzzes it for `seconds`.  Returns
    (name, None) or (name, why it failed)."""
    name = os.path.basename(target)
    seeds = os.path.join(HERE, "fuzz", "corpus", name)
    regressions = os.path.join(HERE, "fuzz", "regressions", name)
    work = os.path.join(ROOT, "tests", "out", "fuzz", name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    dirs = [d for d in (seeds, regressions) if os.path.isdir(d)]
    if not dirs:
        return name, "no seed corpus"
    common = ["-timeout=10", "-rss_limit_mb=2048", f"-artifact_prefix={work}/"]
    r = subprocess.run([target, *common, "-runs=0", *dirs], capture_output=True, text=True,
                       errors="replace", timeout=600)
    if r.returncode != 0:
        return name, f"corpus replay failed:\n{r.stderr.strip()[-2500:]}"
    if seconds > 0:
        r = subprocess.run([target, *common, f"-max_total_time={seconds}", "-print_final_stats=1",
                            work, *dirs], capture_output=True, text=True, errors="replace",
                           timeout=seconds + 600)
        if r.returncode != 0:
            crashes = [f for f in os.listdir(work) if f.split("-")[0] in ("crash", "leak", "timeout", "oom")]
            return name, (f"fuzzing found {crashes} (kept in {work}; add to tests/fuzz/regressions/{name}/ "
                          f"once fixed):\n{r.stderr.strip()[-2500:]}")
        runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", r.stderr)
        return name, None if runs else "no final stats"
    return name, None


def run_fuzz(fuzz_dir, tally, only, seconds):
    targets = sorted(t for t in glob.glob(os.path.join(fuzz_dir, "fuzz_*"))
                     if os.access(t, os.X_OK) and not t.endswith(".d"))
    targets = [t for t in targets if not only or only in f"fuzz {os.path.basename(t)}"]
    if not targets:
        tally.fail("fuzz", f"no fuzz targets in {fuzz_dir}")
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for name, why in pool.map(lambda t: fuzz_one(t, seconds), targets):
            if why:
                tally.fail(f"fuzz {name}", why)
            else:
                tally.ok(f"fuzz {name} (corpus replayed, {seconds}s of fuzzing)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--unit-only", action="store_true")
    ap.add_argument("--valgrind", default="", help="also run DIR's unit tests under valgrind")
    ap.add_argument("--fuzz", default="", help="also replay and run the fuzz targets in DIR")
    ap.add_argument("--fuzz-seconds", type=int, default=30)
    args = ap.parse_args()
    build = os.path.abspath(os.path.join(ROOT, args.build))
    tally = Tally()
    run_unit(build, tally, args.only)
    if not args.unit_only:
        run_integration(build, tally, args.only, args.keep)
    if args.valgrind:
        run_valgrind(os.path.abspath(os.path.join(ROOT, args.valgrind)), tally, args.only)
    if args.fuzz:
        run_fuzz(os.path.abspath(os.path.join(ROOT, args.fuzz)), tally, args.only, args.fuzz_seconds)
    print(f"{tally.passed} passed, {len(tally.failed)} failed")
    sys.exit(1 if tally.failed else 0)


if __name__ == "__main__":
    main()
