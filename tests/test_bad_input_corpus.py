"""The bad-input corpus (issue #25): every case of ``tests/bad_inputs/corpus.json`` gives exit 2,
exactly one ``error:`` line on stderr (``tme validate``: one line per problem found and a count),
no traceback, within a time limit, and writes or changes nothing.

Cases are data: an argv with placeholders, an optional expected fragment, and the input it
needs — a corpus file (``tests/bad_inputs/corpus/``), a malformed surrogate artifact or output
made here from a good one (``artifact``/``output``: the builders below), or a 1,500-file
``extends`` chain. ``tools/make_bad_input_corpus.py`` regenerates the manifest and files. Each
case runs the ``tme`` entry point in-process (fast), under an alarm.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from collections import Counter
from pathlib import Path

import h5py
import pytest

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "bad_inputs"
MANIFEST = json.loads((BAD / "corpus.json").read_text(encoding="utf-8"))["cases"]
TINY = ROOT / "tests" / "data" / "tiny_spheroid.toml"
SCREEN = ROOT / "tme_sim" / "scenarios" / "screens" / "tnf_toxicity.toml"
SURROGATE = ROOT / "tme_sim" / "scenarios" / "models" / "macrophage_ligand_screen.pt"
TIME_LIMIT_S = 60


def _tree(path: Path) -> dict[str, tuple[int, str]]:
    """Every file below ``path``: size and SHA-256 (to see anything written or changed)."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


# ------------------------------------------------------------------ malformed artifacts
def _artifact(kind: str, dest: Path) -> Path:
    import torch

    if kind == "garbage":
        dest.write_bytes(b"\x80\x04garbage" * 10)
        return dest
    if kind == "empty":
        dest.write_bytes(b"")
        return dest
    blob = torch.load(SURROGATE, map_location="cpu", weights_only=True)
    state = blob["state_dict"]
    first = next(k for k, v in state.items() if v.is_floating_point() and v.numel())
    if kind == "not_dict":
        blob = [1, 2, 3]
    elif kind == "wrong_format":
        blob["format"] = "pickle-bomb"
    elif kind == "missing_state":
        del blob["state_dict"]
    elif kind == "names_not_list":
        blob["input_names"] = "IFNG"
    elif kind == "config_wrong_types":
        blob["model_config"] = {k: "x" for k in blob["model_config"]}
    elif kind == "config_missing_keys":
        blob["model_config"] = {}
    elif kind == "weights_nan":
        state[first] = state[first].clone().fill_(float("nan"))
        blob.pop("weights_sha256", None)
    elif kind == "weights_tampered":
        from tme_sim.intracellular.neural.artifact import weights_sha256

        blob["weights_sha256"] = weights_sha256(state)
        state[first] = state[first].clone() * 1e12  # changed after the checksum was taken
    elif kind == "state_not_tensors":
        blob["state_dict"] = {k: 1.0 for k in state}
    elif kind == "kind_unknown":
        blob["model_kind"] = "transformer"
    torch.save(blob, dest)
    return dest


# ------------------------------------------------------------------ malformed outputs
@pytest.fixture(scope="module")
def good_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tme_sim.runner import run_scenario

    out = tmp_path_factory.mktemp("good") / "good.h5"
    run_scenario(TINY, out, duration="4 min")
    return out


def _output(kind: str, dest: Path, good: Path) -> Path:
    if kind == "directory":
        dest.mkdir()
        return dest
    if kind == "empty":
        dest.write_bytes(b"")
        return dest
    if kind == "text":
        dest.write_text("not hdf5\n")
        return dest
    shutil.copyfile(good, dest)
    if kind == "truncated":
        with open(dest, "r+b") as fh:
            fh.truncate(dest.stat().st_size // 3)
        return dest
    with h5py.File(dest, "r+") as fh:
        if kind == "no_groups":
            for g in ("fields", "cells", "population", "events"):
                del fh[g]
        elif kind == "wrong_schema":
            fh.attrs["schema"] = "something-else/9"
        elif kind == "missing_cells":
            del fh["cells/x"]
            del fh["cells/snapshot_time"]
        elif kind == "bad_json_attr":
            fh.attrs["cell_types"] = "{not json"
            fh["cells"].attrs["cell_types"] = "{not json"
        elif kind == "flipped_data":
            fh["population/counts"][0, 0, 0] += 1  # data changed after the run: checksum mismatch
    return dest


def _chain(n: int, folder: Path) -> Path:
    """``chain_0.toml`` extends ``chain_1.toml`` … ``chain_{n-1}.toml`` (the tiny scenario)."""
    folder.mkdir()
    shutil.copyfile(TINY, folder / f"chain_{n - 1}.toml")
    for i in range(n - 1):
        (folder / f"chain_{i}.toml").write_text(f'extends = "chain_{i + 1}.toml"\nname = "c{i}"\n')
    return folder / "chain_0.toml"


def _invoke(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from tme_sim.cli.main import main

    def timeout(signum, frame):
        raise TimeoutError(f"case ran over {TIME_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(TIME_LIMIT_S)
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_corpus_covers_every_input_kind() -> None:
    kinds = Counter(c["kind"] for c in MANIFEST)
    assert len(MANIFEST) >= 200, len(MANIFEST)
    for kind in ("scenario --set", "scenario files", "CLI values", "networks", "artifacts", "drug libraries", "sweeps",
                 "training configs", "outputs"):  # fmt: skip
        assert kinds[kind] >= 5, kinds
    for c in MANIFEST:
        if "file" in c:
            assert (BAD / c["file"]).is_file(), c["file"]


@pytest.mark.parametrize("case", MANIFEST, ids=[c["id"] for c in MANIFEST])
def test_bad_input_case(
    case: dict, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, request
) -> None:
    work = tmp_path / "work"  # the current directory: anything written to a default place lands here
    inputs = tmp_path / "inputs"
    work.mkdir()
    inputs.mkdir()
    subs = {
        "{tiny}": str(TINY),
        "{out}": str(tmp_path / "out"),
        "{tmp}": str(work),
        "{wrapper}": str(BAD / "networks" / "wrapper.toml"),
        "{screen}": str(SCREEN),
    }
    argv = list(case["argv"])
    if "file" in case:
        subs["{file}"] = str(BAD / case["file"])
    if "chain" in case:
        subs["{chain}"] = str(_chain(int(case["chain"]), inputs / "chain"))
    if "artifact" in case:
        art = _artifact(case["artifact"], inputs / "model.pt")
        argv = ["validate", "tumor_immune", "--set", f"cell_types.macrophage.intracellular.artifact={art}"]
    if "output" in case:
        subs["{output}"] = str(_output(case["output"], inputs / "run.h5", request.getfixturevalue("good_output")))
    for k, v in subs.items():
        argv = [a.replace(k, v) for a in argv]
    monkeypatch.chdir(work)
    if case["kind"] not in ("networks", "artifacts"):  # those name repository files by absolute path
        monkeypatch.delenv("TME_ALLOW_OUTSIDE_PATHS", raising=False)  # confinement on, as for users
    before_inputs, before_file = _tree(inputs), _tree(BAD / Path(case["file"]).parent) if "file" in case else {}
    code, stdout, stderr = _invoke(argv, capsys)
    assert "Traceback" not in stdout + stderr, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stderr[-500:])
    if argv[0] == "validate" and len(lines) > 1:  # tme validate lists every problem: one line each
        assert all(x.startswith("error: ") for x in lines[:-1]) and lines[-1] == f"{len(lines) - 1} errors", stderr
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-1000:]
    assert any(case["expect"] in x for x in lines), lines
    assert list(work.iterdir()) == [], list(work.iterdir())
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir()), list(tmp_path.iterdir())
    assert _tree(inputs) == before_inputs
    if "file" in case:
        assert _tree(BAD / Path(case["file"]).parent) == before_file
