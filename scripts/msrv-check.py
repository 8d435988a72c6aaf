#!/usr/bin/env python3
"""Checks that the `rust-version` in Cargo.toml holds for what Cargo.lock resolves.

For the default features, each feature alone and all features, it walks `cargo metadata`'s
`resolve` from the crate through normal and build dependencies (every target platform) and lists
each package whose own `rust-version` is above the crate's. Dev-dependencies are left out: they
build only this crate's tests, examples and benches, never a user's build.

`cargo metadata` resolves features with the dev-dependencies' features unified in (tokio's `full`
from the tests brings in mio), so the walk can reach packages a user's build never compiles. Only
packages that `cargo tree -e normal,build` also lists count: it resolves features the way a
dependent's build does.

It reads Cargo.lock and never changes it (`--locked`), and tries `--offline` first, so it needs
the network only when crates for some platform have not been downloaded yet. It also checks that
README.md's "Minimum supported Rust version" section states the same version.

Exit status: 0 when every requirement is met, 1 with the list of what is not, 2 when cargo fails.
Run it as `bash scripts/msrv-check.sh`.
"""

import json
import re
import subprocess
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_SECTION = "## Minimum supported Rust version"


def cargo(args):
    """Runs `cargo <args> --locked`, offline first, and returns its standard output."""
    proc = None
    for extra in (["--offline"], []):
        proc = subprocess.run(
            ["cargo", *args, "--locked", *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            return proc.stdout
    print(f"msrv-check: `cargo {' '.join(args)} --locked` failed:", file=sys.stderr)
    print(proc.stderr, file=sys.stderr)
    sys.exit(2)


def version_key(text):
    """`1.89` and `1.89.0` as comparable tuples."""
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def metadata(flags):
    return json.loads(cargo(["metadata", "--format-version", "1", *flags]))


def user_packages(flags):
    """(name, version) of every package a dependent's build compiles with these features."""
    out = cargo(["tree", "-e", "normal,build", "--target", "all", "--prefix", "none",
                 "--format", "{p}", *flags])
    found = set()
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and not line.startswith("["):
            found.add((words[0], words[1].removeprefix("v")))
    return found


def walk(meta, wanted):
    """Packages reached from the root through normal and build edges, each with its parent."""
    packages = {package["id"]: package for package in meta["packages"]}
    nodes = {node["id"]: node for node in meta["resolve"]["nodes"]}
    root = meta["resolve"]["root"]
    parent = {root: None}
    queue = deque([root])
    while queue:
        current = queue.popleft()
        for dep in nodes[current]["deps"]:
            target = dep["pkg"]
            if target in parent:
                continue
            if not any(kind["kind"] in (None, "build") for kind in dep["dep_kinds"]):
                continue
            package = packages[target]
            if (package["name"], package["version"]) not in wanted:
                continue
            parent[target] = current
            queue.append(target)
    return packages, root, parent


def chain(packages, parent, package_id):
    names = []
    while package_id is not None:
        names.append(packages[package_id]["name"])
        package_id = parent[package_id]
    return " -> ".join(reversed(names))


def readme_states(version):
    """None when README.md's MSRV section names `Rust <version>`, else what is wrong."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.find(README_SECTION)
    if start < 0:
        return f'README.md has no "{README_SECTION[3:]}" section'
    body = text[start + len(README_SECTION):]
    end = body.find("\n## ")
    body = body if end < 0 else body[:end]
    if not re.search(r"Rust " + re.escape(version) + r"(?![\d.])", body):
        return f'README.md\'s "{README_SECTION[3:]}" section does not say "Rust {version}"'
    return None


def main():
    base = metadata([])
    root = next(p for p in base["packages"] if p["id"] == base["resolve"]["root"])
    declared = root.get("rust_version")
    if not declared:
        print(f"msrv-check: Cargo.toml of {root['name']} sets no rust-version", file=sys.stderr)
        return 1
    features = sorted(name for name in root["features"] if name != "default")
    sets = [("default", [])]
    sets += [(name, ["--features", name]) for name in features]
    sets += [("all-features", ["--all-features"])]

    # package id -> (package, path from the crate, feature sets that compile it)
    over = {}
    summary = []
    for label, flags in sets:
        meta = base if not flags else metadata(flags)
        packages, root_id, parent = walk(meta, user_packages(flags))
        highest = None
        for package_id in parent:
            package = packages[package_id]
            needs = package.get("rust_version")
            if package_id == root_id or not needs:
                continue
            if highest is None or version_key(needs) > version_key(highest[0]):
                highest = (needs, package)
            if version_key(needs) > version_key(declared):
                entry = over.setdefault(package_id, (package, chain(packages, parent, package_id), []))
                entry[2].append(label)
        summary.append((label, len(parent) - 1, highest))

    print(f"msrv-check: {root['name']} declares rust-version {declared}. Per feature set, the "
          "normal and build dependencies that Cargo.lock resolves (all platforms) and the highest "
          "rust-version among them:")
    width = max(len(label) for label, _, _ in summary)
    for label, count, highest in summary:
        if highest is None:
            print(f"  {label:<{width}}  {count:>3} packages, none declares a rust-version")
        else:
            needs, package = highest
            print(f"  {label:<{width}}  {count:>3} packages, highest {needs} "
                  f"({package['name']} {package['version']})")

    failed = False
    if over:
        failed = True
        print(f"\nFAILED: {len(over)} locked dependencies need a newer Rust than {declared}:")
        rows = sorted(over.values(),
                      key=lambda row: (tuple(-n for n in version_key(row[0]["rust_version"])),
                                       row[0]["name"]))
        for package, path, labels in rows:
            print(f"  {package['name']} {package['version']} needs Rust {package['rust_version']}; "
                  f"feature sets: {', '.join(labels)}; through {path}")
        print(f"Raise rust-version in Cargo.toml (and README.md's \"{README_SECTION[3:]}\") to the "
              "highest of these, or depend on versions that ask for less (a dependent's build does not "
              "read this Cargo.lock: it resolves the newest matching versions).")
    problem = readme_states(declared)
    if problem:
        failed = True
        print(f"\nFAILED: {problem} (Cargo.toml's rust-version is {declared})")
    if failed:
        return 1
    print(f"\nOK: no locked dependency asks for more than Rust {declared}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
