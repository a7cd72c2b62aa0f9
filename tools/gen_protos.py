#!/usr/bin/env python3
"""Regenerate the gRPC Python code in ``resonate/api/grpc/pb`` from the protos.

Usage (from anywhere; paths are resolved from this file's location)::

    python tools/gen_protos.py           # regenerate resonate/api/grpc/pb/*_pb2*.py[i]
    python tools/gen_protos.py --check   # regenerate into a temp dir, compare, exit 1 if stale

Sources are the flat ``resonate/api/grpc/protos/*.proto`` files. Their proto
``package`` names (``promise``, ``promise_t``, ``callback_t``, ``schedule``,
``schedule_t``, ``lock``, ``task``) are exactly the reference server's, so the
wire format and the full method names (``/promise.Promises/CreatePromise`` ...)
are identical to it. The protos import each other by bare file name
(``import "promise_t.proto";``), so protoc emits top-level imports such as
``import promise_t_pb2 as promise__t__pb2``; this script rewrites those into
package-relative imports (``from . import promise_t_pb2 as promise__t__pb2``)
so the generated modules live inside the ``resonate.api.grpc.pb`` package.

Generation uses ``grpc_tools.protoc`` (grpcio-tools) with the python,
pyi and grpc_python outputs. The output embeds the generator versions
(``Protobuf Python Version`` and ``GRPC_GENERATED_VERSION``); ``--check`` reports
when the installed grpcio-tools differs from the one the committed files came
from, because a different generator produces different bytes.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "resonate" / "api" / "grpc" / "protos"
OUT_DIR = ROOT / "resonate" / "api" / "grpc" / "pb"

# Files this script owns inside OUT_DIR (``__init__.py`` is hand-written).
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")

_PROTOBUF_VERSION_RE = re.compile(r"^# Protobuf Python Version: (\S+)$", re.M)
_GRPC_VERSION_RE = re.compile(r"^GRPC_GENERATED_VERSION = '([^']+)'$", re.M)


def proto_files() -> list[Path]:
    files = sorted(PROTO_DIR.glob("*.proto"))
    if not files:
        raise SystemExit(f"no .proto files found in {PROTO_DIR}")
    return files


def _is_generated(path: Path) -> bool:
    return path.is_file() and path.name.endswith(GENERATED_SUFFIXES)


def _make_imports_relative(text: str, modules: set[str]) -> str:
    """``import X_pb2 as Y`` -> ``from . import X_pb2 as Y`` for our own modules."""

    def repl(m: re.Match[str]) -> str:
        if m.group(2) not in modules:
            return m.group(0)
        return f"{m.group(1)}from . import {m.group(2)} as {m.group(3)}"

    return re.sub(r"^(\s*)import (\w+) as (\w+)$", repl, text, flags=re.M)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc for every proto into ``out_dir`` and post-process the output.

    Returns the generated files (sorted). Existing generated files in
    ``out_dir`` that protoc no longer produces are removed.
    """
    from grpc_tools import protoc  # imported lazily: only needed to generate

    import importlib.resources

    protos = proto_files()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="resonate-protoc-") as tmp:
        tmp_out = Path(tmp)
        well_known = str(importlib.resources.files("grpc_tools") / "_proto")
        args = [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--proto_path={well_known}",
            f"--python_out={tmp_out}",
            f"--pyi_out={tmp_out}",
            f"--grpc_python_out={tmp_out}",
            *(p.name for p in protos),
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise SystemExit(f"protoc failed with exit code {rc}")

        produced = sorted(p for p in tmp_out.iterdir() if _is_generated(p))
        modules = {p.name[: -len(".py")] for p in produced if p.name.endswith("_pb2.py")}
        written: list[Path] = []
        for src in produced:
            text = _make_imports_relative(src.read_text(encoding="utf-8"), modules)
            dst = out_dir / src.name
            dst.write_text(text, encoding="utf-8", newline="\n")
            written.append(dst)

    keep = {p.name for p in written}
    for stale in out_dir.iterdir():
        if _is_generated(stale) and stale.name not in keep:
            stale.unlink()
    return sorted(written)


def generator_versions(directory: Path) -> tuple[set[str], set[str]]:
    """The (protobuf gencode, grpc gencode) versions recorded in ``directory``."""
    pb_versions: set[str] = set()
    grpc_versions: set[str] = set()
    for path in directory.iterdir():
        if not _is_generated(path) or path.suffix != ".py":
            continue
        text = path.read_text(encoding="utf-8")
        pb_versions.update(_PROTOBUF_VERSION_RE.findall(text))
        grpc_versions.update(_GRPC_VERSION_RE.findall(text))
    return pb_versions, grpc_versions


def check() -> list[str]:
    """Regenerate into a temp dir and compare with OUT_DIR.

    Returns a list of human-readable problems (empty when up to date).
    """
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="resonate-pb-check-") as tmp:
        fresh_dir = Path(tmp)
        fresh = {p.name: p for p in generate(fresh_dir)}
        committed = {p.name: p for p in OUT_DIR.iterdir() if _is_generated(p)} if OUT_DIR.is_dir() else {}

        for name in sorted(fresh.keys() - committed.keys()):
            problems.append(f"missing: {OUT_DIR / name}")
        for name in sorted(committed.keys() - fresh.keys()):
            problems.append(f"stale (no longer generated): {OUT_DIR / name}")
        for name in sorted(fresh.keys() & committed.keys()):
            want = fresh[name].read_text(encoding="utf-8")
            have = committed[name].read_text(encoding="utf-8")
            if want != have:
                diff = list(
                    difflib.unified_diff(
                        have.splitlines(),
                        want.splitlines(),
                        f"committed/{name}",
                        f"regenerated/{name}",
                        lineterm="",
                        n=1,
                    )
                )
                lines = [d if len(d) <= 160 else d[:157] + "..." for d in diff[:40]]
                shown = "\n".join(lines) + ("\n..." if len(diff) > 40 else "")
                problems.append(f"differs: {OUT_DIR / name}\n{shown}")

        if problems and OUT_DIR.is_dir():
            have_v = generator_versions(OUT_DIR)
            want_v = generator_versions(fresh_dir)
            if have_v != want_v:
                problems.append(
                    "note: generator versions differ (committed protobuf/grpc gencode "
                    f"{sorted(have_v[0])}/{sorted(have_v[1])}, installed "
                    f"{sorted(want_v[0])}/{sorted(want_v[1])}); regenerate with the "
                    "grpcio-tools version the committed files were made with"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary directory and exit 1 if the committed files differ",
    )
    args = parser.parse_args(argv)

    if args.check:
        problems = check()
        if problems:
            print("resonate/api/grpc/pb is out of date with resonate/api/grpc/protos:", file=sys.stderr)
            for p in problems:
                print(p, file=sys.stderr)
            print("run: python tools/gen_protos.py", file=sys.stderr)
            return 1
        print("resonate/api/grpc/pb is up to date")
        return 0

    written = generate(OUT_DIR)
    for path in written:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
