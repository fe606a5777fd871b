"""What ``bench/gpu.sh`` needs on a GPU box beyond its PyTorch, read from the distributions' own metadata.

The roots are dl1's requirements and its ``gpu-run`` extra (``pyproject.toml``: the test runner and the
headless notebooks); each root's installed distribution names what it needs (``Requires-Dist``, markers and
extras honoured), and so on down. No package list is written here, so a release that adds or drops a
dependency (blosc2 4.15.0 dropped numexpr) changes the answer by itself.

    python bench/gpu_needs.py missing                   what this Python lacks (or has too old), one line
    python bench/gpu_needs.py wheels [--python 3.12]    the pip command that downloads the wheels to carry

Standard library only, plus ``packaging`` (or the copy inside pip): it runs on a bare box before anything
is installed. PyTorch itself and what it pulls in are the box's own and never listed.
"""

import argparse
import importlib.metadata
import os
import sys

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a bare box: pip carries its own copy
    try:
        from pip._vendor.packaging.markers import default_environment
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.utils import canonicalize_name
    except ImportError:
        print(f"{sys.executable} has neither packaging nor pip: python3 -m ensurepip first", file=sys.stderr)
        sys.exit(2)

PYPROJECT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")
EXTRA = "gpu-run"
BOX_OWN = "torch"  # installed with the box's CUDA build, with its own dependencies


def roots(pyproject=PYPROJECT):
    """dl1's requirements and those of its ``gpu-run`` extra, as written in ``pyproject.toml``."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"][EXTRA]]


def _find(name):
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _wanted(req, extras, env):
    """Whether ``req`` applies here for a parent installed with ``extras``."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": e}) for e in (extras or {""}))


def walk(requirements, find=_find, env=None, skip=()):
    """Follow ``requirements`` through the installed metadata. Returns (found, missing, too_old):
    ``found`` maps each distribution reached to its version, in the order reached; ``missing`` lists the
    requirements with no distribution; ``too_old`` the ones whose version is outside the range asked."""
    env = env or default_environment()
    found, missing, too_old = {}, [], []
    done = set()  # (name, extras) already followed
    queue = [(r, set()) for r in requirements]
    while queue:
        req, parent_extras = queue.pop(0)
        name = canonicalize_name(req.name)
        if name in skip or not _wanted(req, parent_extras, env):
            continue
        dist = find(name)
        if dist is None:
            if name not in missing:
                missing.append(name)
            continue
        version = dist.version
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            too_old.append(f"{name} {version} (needs {req.specifier})")
        found.setdefault(name, version)
        key = (name, frozenset(req.extras))
        if key in done:
            continue
        done.add(key)
        queue += [(Requirement(r), set(req.extras)) for r in dist.requires or []]
    return found, missing, too_old


def _missing(_args):
    _, missing, too_old = walk(roots(), skip={BOX_OWN})
    if missing or too_old:
        print(", ".join(missing + too_old))
        return 1
    return 0


def _wheels(args):
    env = {**default_environment(), "python_version": args.python,
           "python_full_version": args.python + ".0", "platform_machine": "x86_64", "sys_platform": "linux"}
    found, missing, _ = walk(roots(), env=env, skip={BOX_OWN})
    pins = [f"{n}=={v}" for n, v in found.items()] + missing  # not installed here: pip picks the version
    print("# on a machine with pip access, in the repository root (then: bench/gpu.sh --wheels .whl):")
    print(f"python3 -m pip download --only-binary=:all: --python-version {args.python} --implementation cp \\")
    print("  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\")
    print("  -d .whl " + " ".join(pins))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("missing", help="what this Python lacks; exit 1 when something does")
    w = sub.add_parser("wheels", help="the pip command that downloads every wheel the run needs")
    w.add_argument("--python", default="3.12", help="the box's Python version (default 3.12)")
    args = parser.parse_args(argv)
    return {"missing": _missing, "wheels": _wheels}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
