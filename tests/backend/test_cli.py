"""The command line: one table of commands, shared options, choices from the registries, and every
example command the README shows parses as written."""

import glob
import os
import re
import shlex

import pytest

from backend import nets
from backend.cli import COMMANDS, SEED, build_parser, parse_args
from backend.protocol import LandFuseError
from tests.backend.conftest import REPO, run_cli


def _example_commands():
    """`python -m backend …` commands in the README and docs/, continuation lines joined, comments cut,
    optional `[...]` parts kept (they must parse too), the first of `a|b` alternatives taken."""
    commands = []
    for path in [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))):
        text = open(path, encoding="utf-8").read().replace("\\\n", " ")
        for match in re.finditer(r"python -m backend ([^`\n]+)", text):
            line = match.group(1).split("#")[0]
            line = line.replace("[", " ").replace("]", " ")
            argv = [tok.split("|")[0] for tok in shlex.split(line)]
            if argv and argv[0].startswith("<"):   # the architecture picture's `python -m backend <command>`
                continue
            commands.append((os.path.basename(path), argv))
    return commands


EXAMPLES = _example_commands()


def test_the_readme_shows_examples_of_the_main_commands():
    shown = {argv[0] for _, argv in EXAMPLES}
    assert {"classify", "train", "finetune", "evaluate", "info", "pretrain", "diagnostics", "benchmark"} <= shown


@pytest.mark.parametrize("source,argv", EXAMPLES, ids=[" ".join(a[:1]) + f"@{i}" for i, (_, a) in enumerate(EXAMPLES)])
def test_every_documented_example_parses(source, argv):
    args = parse_args(argv)
    assert args.command == argv[0] and args.argv == argv


def test_each_command_is_one_table_entry():
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    assert set(names) == set(build_parser()._subparsers._group_actions[0].choices)


def test_architecture_choices_come_from_the_registry():
    for arch in nets.ARCHITECTURES:
        assert parse_args(["train", "--hsi", "a", "--labels", "b", "--out", "c", "--arch", arch]).arch == arch
    with pytest.raises(LandFuseError):
        parse_args(["train", "--hsi", "a", "--labels", "b", "--out", "c", "--arch", "resnet"])


def _options(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {opt: action for action in sub._actions for opt in action.option_strings}


def test_shared_options_are_the_same_everywhere():
    with_device = [c.name for c in COMMANDS if "--device" in _options(c.name)]
    assert {"classify", "train", "finetune", "pretrain", "benchmark", "demo"} <= set(with_device)
    assert {(_options(n)["--device"].default, tuple(_options(n)["--device"].choices)) for n in with_device} == \
        {("auto", ("auto", "cpu", "cuda"))}
    with_seed = [c.name for c in COMMANDS if "--seed" in _options(c.name)]
    assert len(with_seed) >= 7
    assert {(_options(n)["--seed"].default, _options(n)["--seed"].type) for n in with_seed} == {(0, SEED)}
    assert SEED("7") == 7
    for bad in ("-1", str(2 ** 32), "x"):
        with pytest.raises(LandFuseError):
            parse_args(["synth", "--out", "o", "--seed", bad])


def test_info_and_diagnostics_run_as_documented():
    code, events, err = run_cli("info", "--model", os.path.join(REPO, "models", "generic-landcover"))
    assert code == 0, err
    assert events[-1]["model"]["architecture"]
    code, events, err = run_cli("diagnostics")
    assert code == 0, err
    assert "torch" in str(events[-1]["diagnostics"])
