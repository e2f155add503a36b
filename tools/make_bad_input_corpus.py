# ruff: noqa: E501, RUF005
"""Write tests/bad_inputs/corpus/ (files) and tests/bad_inputs/corpus.json (the cases) that
tests/test_bad_input_corpus.py runs. Run from the repository root: python tools/make_bad_input_corpus.py"""

import json
from pathlib import Path

ROOT = Path("tests/bad_inputs")
C = ROOT / "corpus"
cases = []


def add(id, argv, expect="", **kw):
    cases.append(dict(id=id, argv=argv, expect=expect, **kw))


def put(rel, text=None, data=None):
    p = C / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        p.write_bytes(data)
    else:
        p.write_text(text, encoding="utf-8")
    return f"corpus/{rel}"


V = ["validate", "{tiny}"]


def setcase(id, key, value, expect=""):
    add(id, V + ["--set", f"{key}={value}"], expect, kind="scenario --set")


for k, e in [
    ("0 um", "dx"),
    ("-5 um", "dx"),
    ("nan um", "finite"),
    ("inf um", "finite"),
    ("1e300 um", ""),
    ("9**9**9 um", "not allowed"),
    ("9**(9**9) um", "not allowed"),
    ("20", "missing unit"),
    ("20 min", "wrong unit"),
    ("1e-300 um", ""),
    ("1" * 100 + " um", "too long"),
]:
    setcase(f"set-dx-{k[:20]}", "domain.dx", f'"{k}"', e)
for v, e in [
    ('["nan um", "200 um"]', "finite"),
    ('["inf um", "200 um"]', "finite"),
    ('["1e300 um", "1e300 um"]', ""),
    ('["-200 um", "200 um"]', ""),
    ('["0 um", "200 um"]', ""),
    ('["200 um"]', "domain.size"),
    ("[]", "domain.size"),
    ('"200 um"', "domain.size"),
    ('["200 um", "200 um", "200 um", "200 um"]', "domain.size"),
    ('["1e9 um", "1e9 um"]', ""),
    ('["200 um", "9**9**9 um"]', "not allowed"),
]:
    setcase(f"set-size-{v[:22]}", "domain.size", v, e)
for v in ['"nan min"', '"inf min"', '"-1 min"', '"0 min"', '"1e300 min"', '"abc"', '"1e30 day"', "5"]:
    setcase(f"set-duration-{v}", "duration", v, "duration")
for v in ["-1", "1e30", "18446744073709551616", '"abc"', "true", "1.5"]:
    setcase(f"set-seed-{v}", "seed", v, "seed")
for key in ("output.interval", "output.checkpoint_interval"):
    for v in ['"0 min"', '"-1 min"', '"nan min"', '"inf min"', '"1 um"']:
        if key.endswith("checkpoint_interval") and v == '"0 min"':
            continue  # 0 = no checkpoints: valid
        setcase(f"set-{key}-{v}", key, v, key.split(".")[-1])
for key in ("time.mechanics_dt", "time.diffusion_dt", "time.phenotype_dt"):
    for v in ['"0 min"', '"-0.1 min"', '"nan min"', '"inf min"', '"1e300 min"']:
        setcase(f"set-{key}-{v}", key, v, "")
for v in ['"-1 um**2/min"', '"nan um**2/min"', '"inf um**2/min"', '"1 um"', '"1e300 um**2/min"']:
    setcase(f"set-diffusion-{v}", "substrates.oxygen.diffusion", v, "")
for v in ['"-1 1/min"', '"nan 1/min"', '"inf 1/min"']:
    setcase(f"set-decay-{v}", "substrates.oxygen.decay", v, "")
for v in ['"-5 mmHg"', '"nan mmHg"', '"inf mmHg"', '"5 um"']:
    setcase(f"set-initial-{v}", "substrates.oxygen.initial", v, "")
for key in (
    "cell_types.tumor.cycle.entry_rate",
    "cell_types.tumor.death.apoptosis_rate",
    "cell_types.tumor.secretion.oxygen.uptake_rate",
):
    for v in ['"-0.1 1/min"', '"inf 1/min"', '"nan 1/min"', '"1e300 1/min"']:
        setcase(f"set-{key.split('.')[-1]}-{v}", key, v, "")
for v in ['"-1 um/min"', '"inf um/min"', '"nan um/min"']:
    setcase(f"set-speed-{v}", "cell_types.tumor.mechanics.speed", v, "speed")
for v in ['"-2 min"', '"nan min"', '"inf min"']:
    setcase(f"set-persistence-{v}", "cell_types.tumor.mechanics.persistence", v, "persistence")
for v in ['""', '"../x"', '"tumour"', "3"]:
    setcase(f"set-rules-{v}", "cell_types.tumor.rules", v, "rules")
for v in ['"-10 um"', '"nan um"', '"inf um"', '"1e300 um"', '"0 um"']:
    setcase(f"set-radius-{v}", "initial_cells.0.radius", v, "radius")
for v in ['["5000 um", "5000 um"]', '["-100 um", "100 um"]', '["nan um", "100 um"]', '["100 um"]', '"100 um"']:
    setcase(f"set-center-{v[:20]}", "initial_cells.0.center", v, "center")
for v in ['""', '"nobody"', "1"]:
    setcase(f"set-initial-type-{v}", "initial_cells.0.type", v, "type")
for kv in [
    "nope=1",
    "domain=3",
    "domain.dx.x=1",
    "name.x=1",
    "=1",
    "duration",
    "cell_types.tumor=1",
    'initial_cells.9.radius="1 um"',
    'initial_cells.x.radius="1 um"',
    'domain.size.5="1 um"',
]:
    add(f"set-key-{kv}", V + ["--set", kv], "", kind="scenario --set")

R = ["run", "{tiny}", "--out", "{out}.h5", "-q"]
for d in ["nan min", "inf min", "-5 min", "0 min", "1e300 min", "9**9**9 min", "soon", "", "5 parsecs"]:
    add(f"cli-duration-{d}", R + ["--duration", d], "duration", kind="CLI values")
for s in ["-1", "18446744073709551616", "abc", "1.5"]:
    add(f"cli-seed-{s}", R + ["--seed", s], "seed", kind="CLI values")
add("cli-port", R + ["--view", "--port", "99999"], "port", kind="CLI values")
add("cli-out-is-dir", ["run", "{tiny}", "--out", "{tmp}", "-q"], "directory", kind="CLI values")
add("cli-out-unwritable", ["run", "{tiny}", "--out", "/proc/tme_x/out.h5", "-q"], "", kind="CLI values")
add(
    "cli-name-traversal",
    ["run", "{tiny}", "--set", "name=../../../../escaped", "-q"],
    "cannot be used as a file name",
    kind="CLI values",
)
add(
    "cli-name-absolute",
    ["run", "{tiny}", "--set", "name=/tmp/escaped", "-q"],
    "cannot be used as a file name",
    kind="CLI values",
)
add(
    "cli-name-hidden",
    ["run", "{tiny}", "--set", "name=.hidden", "-q"],
    "cannot be used as a file name",
    kind="CLI values",
)
add("cli-resume-missing", R + ["--resume"], "no output to resume", kind="CLI values")
add("cli-missing-scenario", ["run", "{tmp}/nope.toml", "--out", "{out}.h5"], "no such file", kind="CLI values")
add("cli-unknown-shipped", ["run", "no_such_shipped_scenario", "--out", "{out}.h5"], "", kind="CLI values")
add("cli-unknown-option", R + ["--nope"], "", kind="CLI values")

HEAD = 'name = "t"\nduration = "10 min"\n[domain]\nsize = ["200 um", "200 um"]\ndx = "20 um"\n[substrates.oxygen]\n'
TUMOR = '[cell_types.tumor]\nrules = "tumor"\n'
files = {
    "empty": "",
    "only_comment": "# nothing\n",
    "binary": None,
    "toml_unclosed": "x = [1, 2\n",
    "domain_string": 'name = "t"\ndomain = "big"\n',
    "size_strings": HEAD.replace('["200 um", "200 um"]', '["a", "b"]'),
    "size_nested": HEAD.replace('["200 um", "200 um"]', '[["200 um"], ["200 um"]]'),
    "dx_table": HEAD.replace('dx = "20 um"', "dx = { a = 1 }"),
    "cell_type_empty_name": HEAD + '[cell_types.""]\nrules = "tumor"\n',
    "cell_type_rules_table": HEAD + "[cell_types.tumor]\nrules = { x = 1 }\n",
    "initial_cells_string": HEAD + 'initial_cells = "many"\n',
    "points_huge": HEAD
    + TUMOR
    + '[[initial_cells]]\ntype = "tumor"\nshape = "points"\npoints = [["1e300 um", "1e300 um"]]\n',
    "points_outside": HEAD
    + TUMOR
    + '[[initial_cells]]\ntype = "tumor"\nshape = "points"\npoints = [["500 um", "500 um"]]\n',
    "points_nan": HEAD + TUMOR + '[[initial_cells]]\ntype = "tumor"\nshape = "points"\npoints = [["nan um", "5 um"]]\n',
    "disc_negative_radius": HEAD
    + TUMOR
    + '[[initial_cells]]\ntype = "tumor"\nshape = "disc"\ncenter = ["100 um", "100 um"]\nradius = "-60 um"\n',
    "disc_outside": HEAD
    + TUMOR
    + '[[initial_cells]]\ntype = "tumor"\nshape = "disc"\ncenter = ["900 um", "900 um"]\nradius = "60 um"\n',
    "extends_self": 'extends = "extends_self.toml"\nname = "x"\n',
    "extends_absolute": 'extends = "/etc/passwd"\nname = "x"\n',
    "extends_traversal": 'extends = "../../../../../../etc/passwd"\nname = "x"\n',
    "plugins_absolute": 'plugins = ["/etc/passwd"]\n' + HEAD,
    "plugins_traversal": 'plugins = ["../../x.py"]\n' + HEAD,
    "bnd_absolute": HEAD
    + TUMOR
    + '[cell_types.tumor.intracellular]\nkind = "boolean"\nbnd = "/etc/passwd"\ncfg = "/etc/passwd"\n',
    "bnd_traversal": HEAD
    + TUMOR
    + '[cell_types.tumor.intracellular]\nkind = "boolean"\nbnd = "../../../../../../etc/passwd"\ncfg = "../../../../../../etc/passwd"\n',
    "artifact_absolute": HEAD
    + TUMOR
    + '[cell_types.tumor.intracellular]\nkind = "surrogate"\nartifact = "/etc/passwd"\n',
    "library_absolute": HEAD + '[drugs]\nlibrary = "/etc/passwd"\ngiven = ["x"]\n',
    "library_traversal": HEAD + '[drugs]\nlibrary = "../../../../../../etc/passwd"\ngiven = ["x"]\n',
    "deep_array": "a = " + "[" * 3000 + "]" * 3000 + "\n",
    "huge_name": 'name = "' + "x" * 5000 + '"\n' + HEAD[len('name = "t"\n') :],
    "observer_unknown": HEAD + "[output.observers.nope]\n",
    "observer_bad_interval": HEAD + '[output.observers.population_csv]\ninterval = "-1 min"\n',
}
for name, text in files.items():
    rel = put(f"scenarios/{name}.toml", text, b"\x00\xff\xfe\x89HDF" * 20 if text is None else None)
    add(f"scenario-validate-{name}", ["validate", "{file}"], "", file=rel, kind="scenario files")
    add(f"scenario-run-{name}", ["run", "{file}", "--out", "{out}.h5", "-q"], "", file=rel, kind="scenario files")
add("scenario-extends-chain-1500", ["validate", "{chain}"], "extends", chain=1500, kind="scenario files")

NET = "Node A { logic = A; rate_up = 1; rate_down = 1; }\n"
bnds = {
    "deep_parens": "Node B { logic = " + "(" * 3000 + "A" + ")" * 3000 + "; rate_up = 1; rate_down = 1; }\n",
    "deep_not": "Node B { logic = " + "!" * 3000 + "A; rate_up = 1; rate_down = 1; }\n",
    "long_and": "Node B { logic = " + " & ".join(["A"] * 3000) + "; rate_up = 1; rate_down = 1; }\n",
    "div_zero_rate": "Node B { logic = A; rate_up = 1/0; rate_down = 1; }\n",
    "nan_rate": "Node B { logic = A; rate_up = nan; rate_down = 1; }\n",
    "negative_rate": "Node B { logic = A; rate_up = -1; rate_down = 1; }\n",
    "unicode_garbage": "Node B { logic = \u00c5\u2202\u0192; }\n",
    "huge_number": "Node B { logic = A; rate_up = 1e999; rate_down = 1; }\n",
}
for name, body in bnds.items():
    rel = put(f"networks/{name}.bnd", NET + body)
    add(
        f"bnd-{name}",
        ["validate", "{wrapper}", "--set", "cell_types.tumor.intracellular.bnd={file}"],
        "",
        file=rel,
        kind="networks",
    )

for name in [
    "garbage",
    "empty",
    "not_dict",
    "wrong_format",
    "missing_state",
    "names_not_list",
    "config_wrong_types",
    "config_missing_keys",
    "weights_nan",
    "weights_tampered",
    "state_not_tensors",
    "kind_unknown",
]:
    add(f"artifact-{name}", ["validate", "{artifact_scenario}"], "", artifact=name, kind="artifacts")

libs = {
    "empty": "",
    "binary": None,
    "ic50_nan": '[drugs.birinapant]\ntargets = [{ node = "cIAP", action = "inhibit" }]\nic50 = "nan nM"\nhill = 1\n',
    "ic50_negative": '[drugs.birinapant]\ntargets = [{ node = "cIAP", action = "inhibit" }]\nic50 = "-1 nM"\nhill = 1\n',
    "ic50_inf": '[drugs.birinapant]\ntargets = [{ node = "cIAP", action = "inhibit" }]\nic50 = "inf nM"\nhill = 1\n',
    "ic50_tower": '[drugs.birinapant]\ntargets = [{ node = "cIAP", action = "inhibit" }]\nic50 = "9**9**9 nM"\nhill = 1\n',
    "drugs_not_table": "drugs = 3\n",
}
for name, text in libs.items():
    rel = put(f"drugs/{name}.toml", text, b"\x00\xff" * 50 if text is None else None)
    add(
        f"library-{name}",
        [
            "drugs",
            "screen",
            "--drugs",
            "birinapant,tpca1",
            "--config",
            "{screen}",
            "--library",
            "{file}",
            "--out",
            "{out}",
        ],
        "",
        file=rel,
        kind="drug libraries",
    )

P = '[parameters."cell_types.tumor.cycle.entry_rate"]\nlow = "0.01 1/min"\nhigh = "0.1 1/min"\n'
SW = 'scenario = "../../../data/tiny_spheroid.toml"\nmetrics = ["final_cells"]\n'
sweeps = {
    "samples_1e9": SW + 'design = "lhs"\nsamples = 1000000000\n' + P,
    "grid_huge": SW + 'design = "grid"\n' + P + "levels = 300000\n",
    "replicates_1e12": SW + 'design = "lhs"\nsamples = 2\nreplicates = 1000000000000\n' + P,
    "name_traversal": 'name = "../../../x"\n' + SW + 'design = "lhs"\nsamples = 2\n' + P,
    "name_absolute": 'name = "/tmp/x"\n' + SW + 'design = "lhs"\nsamples = 2\n' + P,
    "low_nan": SW + 'design = "lhs"\nsamples = 2\n' + P.replace('"0.01 1/min"', '"nan 1/min"'),
    "low_above_high": SW + 'design = "lhs"\nsamples = 2\n' + P.replace('"0.01 1/min"', '"0.5 1/min"'),
    "samples_negative": SW + 'design = "lhs"\nsamples = -3\n' + P,
    "empty": "",
}
for name, text in sweeps.items():
    rel = put(f"sweeps/{name}.toml", text)
    argv = ["sweep", "{file}", "--no-progress"] + ([] if name.startswith("name_") else ["--out", "{out}"])
    add(f"sweep-{name}", argv, "", file=rel, kind="sweeps")

trains = {
    "epochs_negative": "[train]\nepochs = -1\n",
    "lr_nan": "[train]\nlr = nan\n",
    "lr_inf": "[train]\nlr = inf\n",
    "not_toml": "[[[\n",
    "batch_zero": "[train]\nbatch_size = 0\n",
}
for name, text in trains.items():
    rel = put(f"training/{name}.toml", text)
    add(
        f"train-config-{name}",
        ["train", "--config", "{file}", "--out", "{out}.pt", "-q"],
        "",
        file=rel,
        kind="training configs",
    )

for name in [
    "empty",
    "text",
    "truncated",
    "no_groups",
    "wrong_schema",
    "missing_cells",
    "bad_json_attr",
    "directory",
    "flipped_data",
]:
    for cmd in (
        ["info", "{output}"],
        ["plot", "{output}", "--out-dir", "{out}", "-q"],
        ["export", "{output}", "--to", "csv", "--out", "{out}"],
    ):
        if name == "flipped_data" and cmd[0] != "info":
            continue  # the data checksum is verified by tme info
        add(f"output-{cmd[0]}-{name}", cmd, "", output=name, kind="outputs")
add(
    "output-resume-foreign",
    ["run", "{tiny}", "--out", "{output}", "--resume", "-q"],
    "",
    output="wrong_schema",
    kind="outputs",
)
add(
    "output-resume-truncated",
    ["run", "{tiny}", "--out", "{output}", "--resume", "-q"],
    "",
    output="truncated",
    kind="outputs",
)

ids = [c["id"] for c in cases]
assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
(ROOT / "corpus.json").write_text(json.dumps({"cases": cases}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
print(len(cases))
