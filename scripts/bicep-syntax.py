#!/usr/bin/env python3
"""Offline syntax check of every Bicep file under infra/ (or the given paths).

checkov parses Bicep with pycep-parser 0.5.1, which predates the `extension`
keyword used by infra/graph-permission.bicep; this script parses all files with
pycep-parser >= 0.7 so that file is covered too. It checks syntax and a few
facts the deployment relies on, not types: `bicep build` (which needs the Bicep
CLI and, for the Graph extension, registry access) remains the full check.

Usage: pip install 'pycep-parser>=0.7.1,<0.8'; python3 scripts/bicep-syntax.py [PATH...]
"""
from __future__ import annotations

import sys
from pathlib import Path

try:
    from pycep import BicepParser
except ImportError:  # pragma: no cover
    sys.exit("pycep-parser is not installed: pip install 'pycep-parser>=0.7.1,<0.8'")


def expectations(name: str, tree: dict) -> list[str]:
    """Facts about specific files that a plain parse would not catch."""
    problems: list[str] = []
    resources = tree.get("resources", {}) or {}
    types = {r.get("type") for r in resources.values()}
    if name == "graph-permission.bicep":
        if "microsoftGraphV1" not in (tree.get("extensions") or {}):
            problems.append("does not declare `extension microsoftGraphV1`")
        for t in ("Microsoft.Graph/servicePrincipals", "Microsoft.Graph/appRoleAssignedTo"):
            if t not in types:
                problems.append(f"has no {t} resource")
    if name == "entra-auth.bicep":
        if "microsoftGraphV1" not in (tree.get("extensions") or {}):
            problems.append("does not declare `extension microsoftGraphV1`")
        for t in ("Microsoft.Graph/applications", "Microsoft.Graph/servicePrincipals", "Microsoft.Graph/appRoleAssignedTo"):
            if t not in types:
                problems.append(f"has no {t} resource")
    if name == "function-app.bicep":
        if "Microsoft.Web/sites" not in types or "Microsoft.Web/serverfarms" not in types:
            problems.append("has no Microsoft.Web/sites + serverfarms")
    return problems


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path(__file__).resolve().parent.parent / "infra"]
    files: list[Path] = []
    for root in roots:
        files.extend(sorted(root.rglob("*.bicep")) if root.is_dir() else [root])
    if not files:
        print("no .bicep files found", file=sys.stderr)
        return 1
    parser = BicepParser()
    passed = failed = 0
    for path in files:
        try:
            tree = parser.parse(text=path.read_text(encoding="utf-8"))
            problems = expectations(path.name, tree)
        except Exception as exc:  # lark raises several exception types
            problems = [f"parse error: {str(exc).splitlines()[0]}"]
        if problems:
            failed += 1
            for problem in problems:
                print(f"FAIL {path}: {problem}")
        else:
            passed += 1
            print(f"ok   {path}")
    print(f"bicep-syntax: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
