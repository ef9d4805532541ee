"""The Python API: rankgen.distort/crops/density/annotate write the same files as the CLI, raise the
same errors, and the generating command modules are only shells around them."""

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import rankgen
from rankgen.cli import main
from rankgen.errors import RankgenError

CLI_DIR = Path(rankgen.__file__).parent / "cli"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import skimage.data

    root = tmp_path_factory.mktemp("photos")
    for i, name in enumerate(["astronaut", "coffee", "chelsea"]):
        Image.fromarray(getattr(skimage.data, name)()[:96, : 80 + 8 * i]).save(root / f"{name}.png")
    return root


def scored_csv(folder: Path, photos: Path) -> Path:
    lines = ["path,score,ref"]
    for i, png in enumerate(sorted(photos.glob("*.png")) * 2):
        lines.append(f"{png},{(i * 5) % 6 / 5:.3f},r{i % 3}")
    path = folder / "scores.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def cases(photos: Path, tmp: Path):
    """(name, API call, the same arguments as a command line)."""
    csv = scored_csv(tmp, photos)
    return [
        ("distort", lambda out: rankgen.distort(out, dataset="folder", root=str(photos), distortions="gaussian_blur,jpeg",
                                                levels=3, seed=3, workers=1, progress=False),
         ["distort", "--dataset", "folder", "--root", str(photos), "--distortions", "gaussian_blur,jpeg",
          "--levels", "3", "--seed", "3", "--workers", "1"]),
        ("crops", lambda out: rankgen.crops(out, n_images=2, k=3, s=0.7, r=4.0, size=24, per_image=2, seed=1, workers=1,
                                            progress=False),
         ["crops", "--n-images", "2", "--k", "3", "--s", "0.7", "--r", "4", "--size", "24", "--per-image", "2",
          "--seed", "1", "--workers", "1"]),
        ("density", lambda out: rankgen.density(out, n_images=2, stride=4, workers=1, progress=False),
         ["density", "--n-images", "2", "--stride", "4", "--workers", "1"]),
        ("annotate", lambda out: rankgen.annotate(out, dataset="csv", root=str(csv), annotators=2, seed=5, workers=1,
                                                  progress=False),
         ["annotate", "--dataset", "csv", "--root", str(csv), "--annotators", "2", "--seed", "5", "--workers", "1"]),
    ]


@pytest.mark.parametrize("index", range(4), ids=["distort", "crops", "density", "annotate"])
def test_api_writes_the_cli_file_byte_for_byte(tmp_path, photos, index):
    name, call, argv = cases(photos, tmp_path)[index]
    api, cli = tmp_path / "api.h5", tmp_path / "cli.h5"
    summary = call(api)
    assert summary.rows > 0 and not summary.skipped
    result = CliRunner().invoke(main, [*argv, "--quiet", "-o", str(cli)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert api.read_bytes() == cli.read_bytes()


def test_the_stored_command_replays_the_corpus(tmp_path, photos):
    import shlex

    from rankgen.corpus import Corpus

    first = tmp_path / "first.h5"
    rankgen.crops(first, n_images=2, k=3, s=0.7, r=4.0, size=24, per_image=2, seed=1, workers=1, progress=False)
    command = Corpus(first).attrs["command"]
    assert command.startswith("rankgen crops ") and "--k 3" in command and "-o" not in command.split()
    again = tmp_path / "again.h5"
    argv = shlex.split(command)[1:]
    assert CliRunner().invoke(main, [*argv, "--quiet", "-o", str(again)]).exit_code == 0
    assert again.read_bytes() == first.read_bytes()


@pytest.mark.parametrize("call, argv", [
    (lambda: rankgen.distort("x.h5", levels=1), ["distort", "--levels", "1"]),
    (lambda: rankgen.distort("x.h5", distortions="gaussian_blur,,jpeg"), ["distort", "--distortions", "gaussian_blur,,jpeg"]),
    (lambda: rankgen.crops("x.h5", k=1), ["crops", "--k", "1"]),
    (lambda: rankgen.density("x.h5", sigma="wide"), ["density", "--sigma", "wide"]),
    (lambda: rankgen.annotate("x.h5", dataset="csv", from_corpus="c.h5"), ["annotate", "--dataset", "csv", "--from", "c.h5"]),
], ids=["distort-levels", "distort-empty-name", "crops-k", "density-sigma", "annotate-both-sources"])
def test_api_raises_the_errors_the_cli_prints(tmp_path, monkeypatch, call, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RankgenError) as exc:
        call()
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2 and str(exc.value) in result.output
    assert not (tmp_path / "x.h5").exists()


def test_api_names_are_documented_functions():
    for name in ("distort", "crops", "density", "annotate"):
        function = getattr(rankgen, name)
        assert callable(function) and f"rankgen {name}" in function.__doc__
        assert name in dir(rankgen)
    with pytest.raises(AttributeError):
        rankgen.no_such_command


MACHINERY = {"rankgen.corpus", "rankgen.corpus.writer", "rankgen.pipeline", "rankgen.sources.crowd"}
MACHINERY_NAMES = {"CorpusWriter", "run_jobs", "JobResult", "shard_jobs", "nothing_usable", "fingerprint"}


@pytest.mark.parametrize("module", ["distort.py", "crops.py", "annotate.py"])
def test_generating_command_modules_are_only_shells(module):
    tree = ast.parse((CLI_DIR / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            package = {0: "", 1: "rankgen.cli.", 2: "rankgen."}[node.level]
            target = package + (node.module or "")
            assert target not in MACHINERY, f"cli/{module} imports {target}"
            assert not {a.name for a in node.names} & MACHINERY_NAMES, f"cli/{module} imports job machinery"
        assert not isinstance(node, ast.ClassDef), f"cli/{module} defines a class: jobs belong in rankgen.jobs"
