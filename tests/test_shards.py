"""--shard I/N and rankgen merge: the merged corpus has the content of one single run."""

import json
import h5py

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import rankgen
from rankgen.cli import main
from rankgen.corpus import Corpus
from rankgen.corpus.check import check
from rankgen.jobs.merge import merge
from rankgen.errors import RankgenError
from rankgen.jobs.distort import distort as generate
from rankgen.pipeline import EXECUTOR, Executor


@pytest.fixture
def photos(tmp_path, photo):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(5):
        Image.fromarray(np.roll(photo, 17 * i, axis=1)[:64, :80]).save(root / f"{i}.png")
    return root


def digests(path):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["checksums"])


KW = dict(dataset="folder", distortions=("gaussian_noise", "jpeg"), levels=3, seed=7, progress=False)


@pytest.mark.parametrize("n", [2, 3, 7])
def test_merged_shards_equal_a_single_run(tmp_path, photos, n):
    generate(tmp_path / "single.h5", root=str(photos), **KW)
    shards = []
    for i in reversed(range(n)):  # the order shards arrive in must not matter
        path = tmp_path / f"part-{i}.h5"
        generate(path, root=str(photos), shard=(i, n), **KW)
        shards.append(path)
    merge(shards, tmp_path / "copy.h5")
    merge(shards, tmp_path / "virtual.h5", virtual=True)
    expected = digests(tmp_path / "single.h5")
    for name in ("copy.h5", "virtual.h5"):
        assert digests(tmp_path / name) == expected
        assert check(tmp_path / name) == []
    single, copy = Corpus(tmp_path / "single.h5"), Corpus(tmp_path / "copy.h5")
    assert all(single.image(i).tobytes() == copy.image(i).tobytes() for i in range(len(single)))
    np.testing.assert_array_equal(single.groups, copy.groups)


def test_virtual_merge_reads_from_anywhere(tmp_path, photos, monkeypatch):
    for i in range(2):
        generate(tmp_path / f"p{i}.h5", root=str(photos), shard=(i, 2), **KW)
    merge([tmp_path / "p0.h5", tmp_path / "p1.h5"], tmp_path / "v.h5", virtual=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    c = Corpus(tmp_path / "v.h5")
    assert c.image(len(c) - 1).shape == (64, 80, 3)


def test_merge_refuses_what_cannot_be_merged(tmp_path, photos):
    generate(tmp_path / "single.h5", root=str(photos), **KW)
    generate(tmp_path / "a0.h5", root=str(photos), shard=(0, 3), **KW)
    generate(tmp_path / "a2.h5", root=str(photos), shard=(2, 3), **KW)
    generate(tmp_path / "b1.h5", root=str(photos), shard=(1, 3), **{**KW, "seed": 8})
    with pytest.raises(RankgenError, match="1/3 are missing"):
        merge([tmp_path / "a0.h5", tmp_path / "a2.h5"], tmp_path / "m.h5")
    with pytest.raises(RankgenError, match="both shard 0/3"):
        merge([tmp_path / "a0.h5", tmp_path / "a0.h5"], tmp_path / "m.h5")
    with pytest.raises(RankgenError, match="not written with --shard"):
        merge([tmp_path / "single.h5"], tmp_path / "m.h5")
    with pytest.raises(RankgenError, match="different commands"):
        merge([tmp_path / "a0.h5", tmp_path / "b1.h5", tmp_path / "a2.h5"], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()
    before = (tmp_path / "a0.h5").read_bytes()
    for virtual in (False, True):
        with pytest.raises(RankgenError, match="is also one of the shards"):
            merge([tmp_path / "a0.h5", tmp_path / "a2.h5"], tmp_path / "a0.h5", virtual=virtual, overwrite=True)
    assert (tmp_path / "a0.h5").read_bytes() == before


def test_merge_refuses_shards_made_by_other_kernel_versions(tmp_path, photos, monkeypatch):
    import rankgen.jobs.distort as distort_module

    generate(tmp_path / "s0.h5", root=str(photos), shard=(0, 2), **KW)
    real = distort_module.pixel_versions

    def older(names):
        versions = real(names)
        return {**versions, "kernels": {name: min(v, 3) for name, v in versions["kernels"].items()}}

    monkeypatch.setattr(distort_module, "pixel_versions", older)  # as rankgen before kernel version 4
    generate(tmp_path / "s1.h5", root=str(photos), shard=(1, 2), **KW)
    with pytest.raises(RankgenError, match="different distortion kernels"):
        merge([tmp_path / "s0.h5", tmp_path / "s1.h5"], tmp_path / "m.h5")


def test_cli_shard_and_merge(tmp_path, photos):
    runner = CliRunner()
    for i in range(2):
        r = runner.invoke(main, ["distort", "--dataset", "folder", "--root", str(photos), "--distortions", "jpeg",
                                 "--shard", f"{i}/2", "--quiet", "-o", str(tmp_path / f"s{i}.h5")])
        assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["merge", str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5"), "-o", str(tmp_path / "m.h5")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["check", str(tmp_path / "m.h5")])
    assert r.exit_code == 0 and "ok" in r.output
    r = runner.invoke(main, ["distort", "--shard", "2/2", "-o", str(tmp_path / "x.h5")])
    assert r.exit_code == 2 and "0 <= I < N" in r.output


@pytest.mark.parametrize("command", ["crops", "density"])
def test_crowd_commands_shard_and_merge(tmp_path, command):
    runner = CliRunner()
    common = [command, "--n-images", "3", "--seed", "5", "--quiet"]
    if command == "crops":
        common += ["--per-image", "2", "--size", "32"]
    assert runner.invoke(main, [*common, "-o", str(tmp_path / "single.h5")]).exit_code == 0
    for i in range(2):
        r = runner.invoke(main, [*common, "--shard", f"{i}/2", "-o", str(tmp_path / f"s{i}.h5")])
        assert r.exit_code == 0, r.output
    merge([tmp_path / "s0.h5", tmp_path / "s1.h5"], tmp_path / "merged.h5")
    assert digests(tmp_path / "merged.h5") == digests(tmp_path / "single.h5")


def test_dask_local_cluster_gives_the_same_corpus(tmp_path, photos):
    pytest.importorskip("distributed")
    runner = CliRunner()
    args = ["distort", "--dataset", "folder", "--root", str(photos), "--distortions", "jpeg,gaussian_noise",
            "--levels", "3", "--quiet"]
    r = runner.invoke(main, [*args, "--workers", "1", "-o", str(tmp_path / "local.h5")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, [*args, "--executor", "dask", "--workers", "2", "-o", str(tmp_path / "dask.h5")])
    assert r.exit_code == 0, r.output
    assert digests(tmp_path / "dask.h5") == digests(tmp_path / "local.h5")
    assert EXECUTOR.get() == Executor(), "--executor must not outlive its command"
    r = runner.invoke(main, [*args, "--scheduler", "tcp://127.0.0.1:1", "-o", str(tmp_path / "x.h5")])
    assert r.exit_code == 2 and "--executor dask" in r.output


def test_merge_refuses_a_shard_whose_item_fails_its_crc(tmp_path, photos):
    """Merge moves stored bytes as they are; it checks them against their CRC on the way, so a damaged
    shard stops the merge with one line naming it instead of passing the item on."""
    parts = []
    for i in range(2):
        parts.append(tmp_path / f"p{i}.h5")
        generate(parts[-1], root=str(photos), shard=f"{i}/2", **KW)
    with h5py.File(parts[1], "r+") as f:
        f["ragged/image/crc32"][3] ^= 1
    r = CliRunner().invoke(main, ["merge", *map(str, parts), "-o", str(tmp_path / "m.h5"), "--workers", "1"])
    assert r.exit_code == 2, r.output
    assert f"{parts[1]} is damaged: item 3 of ragged/image fails its CRC" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "m.h5").exists()


@pytest.mark.parametrize("partial", ["another writer's, live", "another command's, interrupted",
                                     "an interrupted virtual merge's"])
def test_a_virtual_merge_never_truncates_another_runs_partial(tmp_path, photos, partial):
    """The virtual merge wrote `<out>.partial` outside CorpusWriter: it took no lock and opened that file
    with "w", which emptied a running writer's partial before HDF5's own lock refused it, or an
    interrupted one's with its committed items. It takes the lock and a partial of its own now."""
    from rankgen.corpus.writer import output_lock, release_output_lock

    for i in range(2):
        generate(tmp_path / f"p{i}.h5", root=str(photos), shard=(i, 2), **KW)
    shards, out = [tmp_path / "p0.h5", tmp_path / "p1.h5"], tmp_path / "v.h5"
    if partial == "an interrupted virtual merge's":
        (tmp_path / "v.h5.virtual.partial").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))  # killed mid-write
        merge(shards, out, virtual=True)
        assert check(out) == [] and not (tmp_path / "v.h5.virtual.partial").exists()
        return
    theirs = tmp_path / "v.h5.partial"
    theirs.write_bytes(b"committed items" * 1000)
    lock = output_lock(out) if partial == "another writer's, live" else None
    try:
        if lock:
            with pytest.raises(RankgenError, match="another process .* is writing"):
                merge(shards, out, virtual=True)
        else:
            merge(shards, out, virtual=True)
            assert check(out) == []
        assert theirs.read_bytes() == b"committed items" * 1000
    finally:
        release_output_lock(lock)


def test_a_virtual_merge_that_fails_after_writing_says_so_and_leaves_no_partial(tmp_path, photos, monkeypatch):
    """Reading the file back, syncing or renaming it failed with a traceback and left the partial behind."""
    import errno
    import os

    from rankgen.corpus import merge as corpus_merge

    for i in range(2):
        generate(tmp_path / f"p{i}.h5", root=str(photos), shard=(i, 2), **KW)

    def unreadable(f):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(corpus_merge, "dataset_digests", unreadable)
    with pytest.raises(RankgenError, match=r"cannot write .*v\.h5\.virtual\.partial: Input/output error\. Re-run the same command"):
        merge([tmp_path / "p0.h5", tmp_path / "p1.h5"], tmp_path / "v.h5", virtual=True)
    assert sorted(p.name for p in tmp_path.glob("v.h5*")) == []


def test_a_partial_merge_is_not_resumed_over_shards_regenerated_since(tmp_path, photos, monkeypatch, ctrl_c_at):
    """The resume key held the shards' paths and sizes only: a killed merge, re-run after the shards were
    regenerated with another seed, held items of both runs."""
    import rankgen.jobs.merge as merge_module

    shards = [tmp_path / f"p{i}.h5" for i in range(2)]
    for i, shard in enumerate(shards):
        generate(shard, root=str(photos), shard=(i, 2), **KW)
    monkeypatch.setattr(merge_module, "copy_items", ctrl_c_at(merge_module.copy_items, 2))
    with pytest.raises(KeyboardInterrupt):
        merge(shards, tmp_path / "m.h5", workers=1, progress=False)
    monkeypatch.undo()
    for i, shard in enumerate(shards):
        generate(shard, root=str(photos), shard=(i, 2), overwrite=True, **{**KW, "seed": 8})
    with pytest.raises(RankgenError, match="m.h5.partial cannot be resumed"):
        merge(shards, tmp_path / "m.h5", workers=1, progress=False)


def test_materialize_refuses_to_write_over_a_shard_of_its_virtual_input(tmp_path, photos):
    shards = [tmp_path / f"p{i}.h5" for i in range(2)]
    for i, shard in enumerate(shards):
        generate(shard, root=str(photos), shard=(i, 2), pixels="references", **KW)
    merge(shards, tmp_path / "v.h5", virtual=True)
    with pytest.raises(RankgenError, match="is one of the shards .*v.h5 reads from"):
        rankgen.materialize(tmp_path / "v.h5", shards[0], overwrite=True, progress=False)
    assert check(tmp_path / "v.h5") == []


def test_a_partial_materialization_is_not_resumed_from_another_compact_corpus(tmp_path, photos, monkeypatch,
                                                                                ctrl_c_at):
    """A virtual merge had no fingerprint, so every materialization of one shared the resume key: a
    killed one, re-run with --overwrite on another compact corpus, resumed and mixed the two."""
    import rankgen.jobs.materialize as materialize_module

    for seed in (7, 8):
        shards = [tmp_path / f"s{seed}-{i}.h5" for i in range(2)]
        for i, shard in enumerate(shards):
            generate(shard, root=str(photos), shard=(i, 2), pixels="references", **{**KW, "seed": seed})
        merge(shards, tmp_path / f"v{seed}.h5", virtual=True)
    monkeypatch.setattr(materialize_module, "copy_items", ctrl_c_at(materialize_module.copy_items, 2))
    with pytest.raises(KeyboardInterrupt):
        rankgen.materialize(tmp_path / "v7.h5", tmp_path / "out.h5", workers=1, progress=False)
    monkeypatch.undo()
    summary = rankgen.materialize(tmp_path / "v8.h5", tmp_path / "out.h5", overwrite=True, workers=1, progress=False)
    assert summary.resumed_from == 0
    rankgen.materialize(tmp_path / "v8.h5", tmp_path / "fresh.h5", workers=1, progress=False)
    assert digests(tmp_path / "out.h5") == digests(tmp_path / "fresh.h5")
