#!/usr/bin/env python3
"""Regenerate tools/bicep-types/ (the type data scripts/bicep-typecheck reads) from git checkouts.

Not run by CI: CI reads the vendored files only. Run it by hand when tools/bicep-types/wanted.json
changes (a new resource type or API version in infra/, another Graph extension version):

    git clone --filter=blob:none https://github.com/Azure/bicep-types-az
    git clone https://github.com/microsoftgraph/msgraph-bicep-types
    python3 scripts/bicep-types-vendor.py --az bicep-types-az/.git --graph msgraph-bicep-types/.git

--az and --graph take a git directory (a bare clone or a checkout's .git) and read the committed
tree at HEAD (or --az-rev / --graph-rev), so the recorded commit is exactly what was read.

What it writes, under tools/bicep-types/:
  az/<namespace>/<api-version>/types.json  the Azure types.json of each API version in wanted.json,
      trimmed to the ResourceTypes listed there and the types they reach ($ref indexes remapped),
      one type per line;
  graph/<extension version path>/types.json + index.json  the extension's generated files, verbatim;
  index.json  where each vendored resource type lives, and for every namespace used, each resource
      type it has in bicep-types-az with all its API versions (so a wrong API version can be told
      apart from one that exists but is not vendored);
  sources.json  repository, commit, source path and blob id of every file read.
No Python dependency beyond the standard library; needs git.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tools" / "bicep-types"
REF = re.compile(r"^#/(\d+)$")


class GitTree:
    """Reads blobs of one commit of a git directory."""

    def __init__(self, git_dir: str, rev: str) -> None:
        self.git_dir = git_dir
        self.commit = self._git("rev-parse", f"{rev}^{{commit}}").strip()
        listing = self._git("ls-tree", "-r", "--full-tree", self.commit)
        self.blobs: dict[str, str] = {}
        for line in listing.splitlines():
            meta, path = line.split("\t", 1)
            _mode, kind, sha = meta.split()
            if kind == "blob":
                self.blobs[path] = sha

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *args], check=True, capture_output=True, text=True
        ).stdout

    def read(self, path: str) -> bytes:
        if path not in self.blobs:
            raise SystemExit(f"{path} is not in {self.git_dir} at {self.commit}")
        return subprocess.run(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "blob", self.blobs[path]],
            check=True,
            capture_output=True,
        ).stdout


def walk_refs(node, fn):
    """Applies fn to every "$ref" string inside node (in place) and returns node."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                node[key] = fn(value)
            else:
                walk_refs(value, fn)
    elif isinstance(node, list):
        for item in node:
            walk_refs(item, fn)
    return node


def trim(types: list, roots: list[int]) -> tuple[list, dict[int, int]]:
    """The types reachable from roots (ResourceType entries, without their resource functions), renumbered."""
    keep: list[int] = []
    seen: set[int] = set()
    stack = list(reversed(roots))
    while stack:
        index = stack.pop()
        if index in seen:
            continue
        seen.add(index)
        keep.append(index)
        entry = dict(types[index])
        entry.pop("functions", None)
        found: list[int] = []

        def collect(ref: str) -> str:
            match = REF.match(ref)
            if not match:
                raise SystemExit(f"unsupported cross-file reference {ref!r}")
            found.append(int(match.group(1)))
            return ref

        walk_refs(json.loads(json.dumps(entry)), collect)
        stack.extend(reversed(found))
    keep.sort()
    remap = {old: new for new, old in enumerate(keep)}
    out = []
    for old in keep:
        entry = json.loads(json.dumps(types[old]))
        entry.pop("functions", None)
        out.append(walk_refs(entry, lambda ref: f"#/{remap[int(REF.match(ref).group(1))]}"))
    return out, remap


def dump_lines(types: list) -> str:
    return "[\n" + ",\n".join(json.dumps(t, separators=(",", ":"), ensure_ascii=False) for t in types) + "\n]\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--az", required=True, help="git dir of Azure/bicep-types-az")
    parser.add_argument("--az-rev", default="HEAD")
    parser.add_argument("--graph", required=True, help="git dir of microsoftgraph/msgraph-bicep-types")
    parser.add_argument("--graph-rev", default="HEAD")
    args = parser.parse_args()

    wanted = json.loads((OUT / "wanted.json").read_text(encoding="utf-8"))
    az = GitTree(args.az, args.az_rev)
    graph = GitTree(args.graph, args.graph_rev)

    # Every types.json of the namespaces used: generated/<group>/<namespace>/<api-version>/types.json.
    namespaces = sorted({w.split("/", 1)[0].lower() for w in wanted["az"]})
    files_by_ns: dict[str, list[tuple[str, str]]] = {ns: [] for ns in namespaces}
    for path in az.blobs:
        parts = path.split("/")
        if len(parts) == 5 and parts[0] == "generated" and parts[4] == "types.json" and parts[2] in files_by_ns:
            files_by_ns[parts[2]].append((parts[3], path))

    known: dict[str, dict[str, list[str]]] = {}
    located: dict[str, tuple[str, int]] = {}  # lower "type@version" -> (source path, index)
    parsed: dict[str, list] = {}
    for ns, files in files_by_ns.items():
        versions: dict[str, set[str]] = {}
        canonical: dict[str, str] = {}
        for _version, path in sorted(files):
            types = json.loads(az.read(path))
            parsed[path] = types
            for index, entry in enumerate(types):
                if entry.get("$type") != "ResourceType":
                    continue
                name, _, api = entry["name"].partition("@")
                canonical.setdefault(name.lower(), name)
                versions.setdefault(name.lower(), set()).add(api)
                located.setdefault(entry["name"].lower(), (path, index))
        known[ns] = {canonical[k]: sorted(v) for k, v in sorted(versions.items())}
        # Keep memory bounded: only the files that hold a wanted type stay parsed.
        wanted_paths = {located[w.lower()][0] for w in wanted["az"] if w.lower() in located}
        for path in [p for p in parsed if p not in wanted_paths and p.split("/")[2] == ns]:
            del parsed[path]

    missing = [w for w in wanted["az"] if w.lower() not in located]
    if missing:
        raise SystemExit("not in bicep-types-az: " + ", ".join(missing))

    index: dict = {"az": {"resources": {}, "knownTypes": known}, "extensions": {}}
    sources: dict = {
        "Azure/bicep-types-az": {"commit": az.commit, "files": {}},
        "microsoftgraph/msgraph-bicep-types": {"commit": graph.commit, "files": {}},
    }
    by_path: dict[str, list[tuple[str, int]]] = {}
    for w in wanted["az"]:
        path, idx = located[w.lower()]
        by_path.setdefault(path, []).append((w, idx))

    az_out = OUT / "az"
    if az_out.exists():
        for old in sorted(az_out.rglob("*"), reverse=True):
            old.unlink() if old.is_file() else old.rmdir()
    for path, entries in sorted(by_path.items()):
        types = parsed[path]
        trimmed, remap = trim(types, [idx for _, idx in entries])
        _generated, _group, ns, version, _file = path.split("/")
        rel = f"az/{ns}/{version}/types.json"
        target = OUT / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dump_lines(trimmed), encoding="utf-8")
        for w, idx in entries:
            index["az"]["resources"][types[idx]["name"]] = f"{rel}#/{remap[idx]}"
        sources["Azure/bicep-types-az"]["files"][rel] = {
            "path": path,
            "blob": az.blobs[path],
            "trimmed": "only the listed ResourceTypes and the types they reach, renumbered; resource functions dropped",
            "resourceTypes": sorted(types[idx]["name"] for _, idx in entries),
        }

    for ref, ext in sorted(wanted["extensions"].items()):
        if ext["repository"] != "microsoftgraph/msgraph-bicep-types":
            raise SystemExit(f"no reader for extension repository {ext['repository']}")
        tail = ext["path"].split("microsoft.graph/", 1)[1]
        rel_dir = f"graph/{tail}"
        ext_index = json.loads(graph.read(f"{ext['path']}/index.json"))
        for name in ("types.json", "index.json"):
            target = OUT / rel_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(graph.read(f"{ext['path']}/{name}"))
            sources["microsoftgraph/msgraph-bicep-types"]["files"][f"{rel_dir}/{name}"] = {
                "path": f"{ext['path']}/{name}",
                "blob": graph.blobs[f"{ext['path']}/{name}"],
                "trimmed": False,
            }
        resources = {
            name: f"{rel_dir}/{target['$ref']}" for name, target in sorted(ext_index["resources"].items())
        }
        ext_known: dict[str, list[str]] = {}
        for name in resources:
            base, _, api = name.partition("@")
            ext_known.setdefault(base, []).append(api)
        index["extensions"][ref] = {
            "name": ext_index.get("settings", {}).get("name"),
            "version": ext_index.get("settings", {}).get("version"),
            "resources": resources,
            "knownTypes": ext_known,
        }

    (OUT / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (OUT / "sources.json").write_text(json.dumps(sources, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT.relative_to(ROOT)}: {total} bytes; bicep-types-az {az.commit}, msgraph-bicep-types {graph.commit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
