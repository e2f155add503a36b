"""Bit-for-bit comparison of simulation outputs across commits (the layering step's safety net).

Run the reference set of scenarios at 1 and 2 numba threads into a folder, then compare two
folders dataset by dataset (every array, every attribute that is not a wall-clock or version
stamp)::

    python tools/bitcompare.py run  outputs/bit_before       # at the old commit
    python tools/bitcompare.py run  outputs/bit_after        # at the new commit
    python tools/bitcompare.py diff outputs/bit_before outputs/bit_after

``run`` also checks, in the same folder, that the 1- and 2-thread outputs are identical and
that a run stopped at its checkpoint and resumed gives the same file as an uninterrupted one.
Exit status 0 when everything matches, 1 when something differs (each difference printed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: (label, scenario path relative to the repository, tme run options)
CASES: list[tuple[str, str, list[str]]] = [
    ("flagship", "scenarios/tumor_immune.toml", ["--duration", "1d", "--seed", "3"]),
    ("flagship_3d", "scenarios/tumor_immune_3d.toml", ["--duration", "6h", "--seed", "3"]),
    ("boolean_spheroid", "scenarios/spheroid_tnf.toml", ["--duration", "1d", "--seed", "3"]),
    ("drug_combo", "scenarios/drug_combo.toml", ["--duration", "30h", "--seed", "3"]),
]

#: attributes that legitimately differ between two runs of the same model
VOLATILE_ATTRS = {"wall_seconds", "version", "git_hash", "created", "tme_sim_version", "started", "finished", "host"}
#: HDF5 object references (dimension scales): compared through the names they point to instead
REFERENCE_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST"}


def _scenario(path: str) -> str:
    """The scenario's location in this checkout (it moved into the package in the layering step)."""
    for candidate in (ROOT / path, ROOT / "tme_sim" / path):
        if candidate.exists():
            return str(candidate)
    raise SystemExit(f"error: {path}: not found in {ROOT}")


def _tme(*args: str, threads: int) -> None:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", "import sys; from tme_sim.cli import main; sys.argv[0] = 'tme'; main()", *args]
    legacy = [sys.executable, "-c", "import sys; from cli import main; sys.argv[0] = 'tme'; main()", *args]
    try:
        import tme_sim.cli  # noqa: F401
    except ImportError:
        cmd = legacy
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: tme {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def run(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for label, scenario, opts in CASES:
        for threads in (1, 2):
            out = folder / f"{label}_t{threads}.h5"
            print(f"running {label} at {threads} thread(s) -> {out}", flush=True)
            _tme("run", _scenario(scenario), "--out", str(out), "--force", "--quiet", *opts, threads=threads)
    # checkpoint/resume: 12 h with a checkpoint every 6 h, stop at 12 h, resume to 1 day
    whole = folder / "resume_whole.h5"
    part = folder / "resume_part.h5"
    ck = ["--set", 'output.checkpoint_interval="360 min"', "--seed", "3", "--quiet"]
    flagship = _scenario("scenarios/tumor_immune.toml")
    print("running the checkpoint/resume pair", flush=True)
    _tme("run", flagship, "--out", str(whole), "--force", "--duration", "1d", *ck, threads=2)
    for stale in (part, Path(str(part) + ".ckpt")):
        if stale.exists():
            stale.unlink()
    _tme("run", flagship, "--out", str(part), "--duration", "12h", *ck, threads=2)
    _tme("run", flagship, "--out", str(part), "--resume", "--duration", "1d", *ck, threads=1)
    bad = 0
    for label, _, _ in CASES:
        bad += _report(f"{label}: 1 vs 2 threads", diff_files(folder / f"{label}_t1.h5", folder / f"{label}_t2.h5"))
    bad += _report("flagship: resumed vs whole", diff_files(whole, part))
    return 1 if bad else 0


def _attrs(obj: h5py.HLObject) -> dict:
    return {k: v for k, v in obj.attrs.items() if k not in VOLATILE_ATTRS | REFERENCE_ATTRS}


def _dimension_scales(ds: h5py.Dataset) -> list[tuple[str, list[str]]]:
    return [(d.label, [s.name for s in d.values()]) for d in ds.dims]


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def diff_files(a: Path, b: Path) -> list[str]:
    """Every difference between two HDF5 files: missing/extra objects, attributes, dataset bytes."""
    out: list[str] = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names_a: list[str] = []
        names_b: list[str] = []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        for name in sorted(set(names_a) ^ set(names_b)):
            out.append(f"{name}: only in {'first' if name in names_a else 'second'}")
        for name in ["/", *sorted(set(names_a) & set(names_b))]:
            oa, ob = fa[name], fb[name]
            aa, ab = _attrs(oa), _attrs(ob)
            for k in sorted(set(aa) | set(ab)):
                if k not in aa or k not in ab or not _same(aa[k], ab[k]):
                    out.append(f"{name}@{k}: attribute differs")
            if isinstance(oa, h5py.Dataset):
                if not isinstance(ob, h5py.Dataset):
                    out.append(f"{name}: dataset vs group")
                    continue
                if _dimension_scales(oa) != _dimension_scales(ob):
                    out.append(f"{name}: dimension scales differ")
                if oa.shape != ob.shape or oa.dtype != ob.dtype:
                    out.append(f"{name}: shape/dtype {oa.shape} {oa.dtype} vs {ob.shape} {ob.dtype}")
                elif not _same(oa[()], ob[()]):
                    va, vb = np.asarray(oa[()]), np.asarray(ob[()])
                    detail = ""
                    if va.dtype.kind in "fiu":
                        d = np.abs(va.astype(float) - vb.astype(float))
                        detail = f" (max |diff| {np.nanmax(d):.3g}, {int(np.sum(d > 0))} values)"
                    out.append(f"{name}: values differ{detail}")
    return out


def _report(label: str, diffs: list[str]) -> int:
    if not diffs:
        print(f"identical  {label}")
        return 0
    print(f"DIFFERENT  {label}: {len(diffs)} difference(s)")
    for d in diffs[:40]:
        print(f"    {d}")
    return 1


def diff_folders(a: Path, b: Path) -> int:
    bad = 0
    files = sorted(p.name for p in a.glob("*.h5"))
    if not files:
        raise SystemExit(f"error: {a}: no .h5 files")
    for name in files:
        if not (b / name).exists():
            print(f"MISSING    {name} in {b}")
            bad += 1
            continue
        bad += _report(name, diff_files(a / name, b / name))
    return 1 if bad else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the reference scenarios into FOLDER")
    r.add_argument("folder", type=Path)
    r.add_argument("--clean", action="store_true", help="empty FOLDER first")
    d = sub.add_parser("diff", help="compare two folders written by 'run'")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    args = p.parse_args()
    if args.cmd == "run":
        if args.clean and args.folder.exists():
            shutil.rmtree(args.folder)
        sys.exit(run(args.folder))
    sys.exit(diff_folders(args.a, args.b))


if __name__ == "__main__":
    main()
