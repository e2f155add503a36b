"""Every .bnd/.cfg pair of MaBoSS's own corpus, checked against cMaBoSS itself.

The corpus (``../shared/data/maboss-models``, MaBoSS's examples, BSD-3) is read as MaBoSS users
write it. For every ``.bnd`` with every ``.cfg`` of its folder (and with several ``.cfg`` files
where one names another as its base: ``X-variant.cfg`` extends ``X.cfg``, and with no ``.cfg``),
MaBoSS is the judge:

* MaBoSS rejects the run -> we reject it with one line ``file:line: message`` (or ``file: ...``);
* MaBoSS runs it -> we load it, and the final-state distribution over the output nodes of 1e5
  trajectories agrees with cMaBoSS's 1e5 within |dp| <= 0.01 for every state (4.5 standard errors
  of a difference at p = 0.5; fixed seeds, so a run is reproducible; see ``maboss_reference``).

Runs whose ``max_time`` exceeds :data:`MAX_TIME` are compared at ``MAX_TIME`` for both engines
(one corpus file asks for 1e6 time units of an oscillator: hours for either engine).

Runtime (shared 2-core machine, 1 thread): the load/reject checks take a few seconds; the
distribution comparisons are marked ``slow`` (about 1-3 s of MaBoSS and 2-10 s of ours per run, plus
numba compilation of each network on first use; kernels are cached on disk).
"""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from maboss_reference import TOL, N, maboss_final_states, max_abs_difference, node_marginals, ours_final_states

from tme_sim.errors import NetworkFormatError
from tme_sim.intracellular.boolean import BooleanNetwork, load_network

pytest.importorskip("maboss", reason="maboss (pymaboss + cmaboss) is not installed")
pytest.importorskip("cmaboss", reason="cmaboss (MaBoSS C++ bindings) is not installed")

CORPUS = SHARED_DATA / "maboss-models"
if not CORPUS.is_dir():
    pytest.skip(f"MaBoSS corpus not found at {CORPUS} (set TME_SHARED_DATA)", allow_module_level=True)

MAX_TIME = 100.0
_WORK = Path(tempfile.mkdtemp(prefix="tme_maboss_corpus_"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
DEFAULT_CFG = _WORK / "default.cfg"
DEFAULT_CFG.write_text("max_time = 5;\ntime_tick = 0.5;\n")


def corpus_runs() -> list[tuple[Path, tuple[Path, ...]]]:
    runs: list[tuple[Path, tuple[Path, ...]]] = []
    for bnd in sorted(CORPUS.rglob("*.bnd")):
        cfgs = sorted(bnd.parent.glob("*.cfg"))
        runs.append((bnd, (DEFAULT_CFG,)))
        for cfg in cfgs:
            runs.append((bnd, (cfg,)))
            base = bnd.parent / (cfg.stem.split("-")[0] + ".cfg")
            if "-" in cfg.stem and base.exists() and base != cfg:
                runs.append((bnd, (base, cfg)))
    return runs


def run_id(run: tuple[Path, tuple[Path, ...]]) -> str:
    bnd, cfgs = run
    return str(bnd.relative_to(CORPUS)) + "+" + "+".join(c.name for c in cfgs)


RUNS = corpus_runs()


def _utf8_copy(path: Path, capped: bool) -> Path:
    """A UTF-8 copy for pymaboss (which decodes as UTF-8; MaBoSS itself reads bytes); a .cfg
    copy gets ``max_time`` capped at :data:`MAX_TIME` when ``capped``."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if capped:
        text += f"\nmax_time = {MAX_TIME};\n"
    out = _WORK / f"{abs(hash((str(path), capped)))}_{path.name}"
    out.write_text(text, encoding="utf-8")
    return out


def _capped(bnd: Path, cfgs: tuple[Path, ...]) -> bool:
    try:
        net = load_network(bnd, list(cfgs))
    except NetworkFormatError:
        return False
    return float(net.settings.get("max_time", 0.0)) > MAX_TIME


@functools.cache
def maboss_verdict(bnd: Path, cfgs: tuple[Path, ...], n: int = N):
    """(states of ``n`` trajectories, None) when MaBoSS runs the files, (None, message) when it
    rejects them."""
    cap = _capped(bnd, cfgs)
    files = [_utf8_copy(bnd, False)] + [_utf8_copy(c, cap and i == len(cfgs) - 1) for i, c in enumerate(cfgs)]
    try:
        return maboss_final_states(files[0], files[1:], n=n), None
    except Exception as exc:  # MaBoSS's own rejection (BNException and friends)
        return None, str(exc).strip() or type(exc).__name__


def ours(bnd: Path, cfgs: tuple[Path, ...]) -> BooleanNetwork:
    net = load_network(bnd, list(cfgs))
    if float(net.settings.get("max_time", 0.0)) > MAX_TIME:
        net.settings["max_time"] = MAX_TIME
    return net


ONE_LINE = re.compile(r"^[^\n:]+(:\d+)?: [^\n]+$")


@pytest.mark.parametrize("run", RUNS, ids=[run_id(r) for r in RUNS])
def test_loads_exactly_what_maboss_loads(run):
    bnd, cfgs = run
    ref, why = maboss_verdict(bnd, cfgs, 100)  # MaBoSS's verdict only: few trajectories
    if ref is None:
        with pytest.raises(NetworkFormatError) as exc:
            load_network(bnd, list(cfgs))
        assert ONE_LINE.match(str(exc.value)), str(exc.value)
        print(f"both reject: MaBoSS {why.splitlines()[0]!r}; ours {exc.value}")
    else:
        net = load_network(bnd, list(cfgs))
        assert net.n_nodes >= 1


@pytest.mark.slow
@pytest.mark.parametrize("run", RUNS, ids=[run_id(r) for r in RUNS])
def test_final_states_match_cmaboss(run):
    bnd, cfgs = run
    ref, why = maboss_verdict(bnd, cfgs)
    if ref is None:
        pytest.skip(f"MaBoSS rejects this run ({why.splitlines()[0]}); checked by test_loads_exactly_what_maboss_loads")
    got = ours_final_states(ours(bnd, cfgs))
    worst, where = max_abs_difference(ref, got)
    node_worst, node = max_abs_difference(node_marginals(ref), node_marginals(got))
    print(
        f"{run_id(run)}: {len(ref)} states, max |dp| = {worst:.4f} at {sorted(where or [])}; "
        f"node marginals max |dp| = {node_worst:.4f}"
    )
    assert worst <= TOL, (worst, where)
    assert node_worst <= TOL, (node_worst, node)


KNOCKOUTS = [
    ("engine/examples/Paper_examples/p53_Mdm2.bnd", "engine/examples/Paper_examples/p53_Mdm2_runcfg.cfg", "Mdm2C"),
    ("engine/examples/Cell_cycle/cellcycle.bnd", "engine/examples/Cell_cycle/cellcycle_runcfg.cfg", "CycE"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("bnd", "cfg", "node"), KNOCKOUTS, ids=[k[2] for k in KNOCKOUTS])
def test_knockouts_match_cmaboss(bnd, cfg, node):
    bnd_p, cfg_p = CORPUS / bnd, CORPUS / cfg
    net = ours(bnd_p, (cfg_p,))
    assert net.n_nodes > 1
    ref = maboss_final_states(_utf8_copy(bnd_p, False), [_utf8_copy(cfg_p, False)], knockout=node)
    got = ours_final_states(net, knockout=node)
    wild, _ = maboss_verdict(bnd_p, (cfg_p,))
    assert max_abs_difference(ref, wild)[0] > 5 * TOL  # the knock-out changes the outcome
    worst, where = max_abs_difference(ref, got)
    print(f"{node} knock-out: max |dp| = {worst:.4f} at {sorted(where or [])}")
    assert worst <= TOL, (worst, where)


XOR_BND = """\
Node A { rate_up = 0; rate_down = 0; }
Node B { rate_up = 0; rate_down = 0; }
Node C { rate_up = 0; rate_down = 0; }
Node X { logic = A | B ^ C; }
Node Y { logic = A XOR B or C; }
"""


def test_xor_binds_looser_than_or_like_maboss(tmp_path):
    bnd = tmp_path / "xor.bnd"
    bnd.write_text(XOR_BND)
    cfg = tmp_path / "xor.cfg"
    cfg.write_text("X.istate = 0; Y.istate = 0; max_time = 20; time_tick = 1;\n")
    ref = maboss_final_states(bnd, [cfg])
    got = ours_final_states(load_network(bnd, cfg))
    # all on: MaBoSS's (A | B) ^ C = 0 and A ^ (B | C) = 0, so X and Y stay off
    assert ref.get(frozenset({"A", "B", "C"}), 0.0) > 0.1
    assert got.get(frozenset({"A", "B", "C"}), 0.0) > 0.1
    worst, where = max_abs_difference(ref, got)
    assert worst <= TOL, (worst, where)
