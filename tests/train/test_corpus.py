import json
import zlib

import numpy as np
import pytest

from mixopt.errors import SchemaError
from mixopt.train.corpus import DOMAINS, Document, is_validation, load_corpus, prepare_corpus, read_fixture


def test_fixture_has_four_domains_of_a_few_hundred_kb():
    for d in DOMAINS:
        docs = read_fixture(d)
        size = sum(len(x.text.encode()) for x in docs)
        assert 200_000 <= size <= 400_000, (d, size)
        assert len({x.id for x in docs}) == len(docs)


def test_split_is_crc32_of_domain_and_id_and_stable():
    # the rule, spelled out: a process-salted hash() would change between runs
    assert is_validation("code", "x") == (zlib.crc32(b"code/x") % 1000 < 50)
    ids = [f"doc{i}" for i in range(4000)]
    share = np.mean([is_validation("prose", i) for i in ids])
    assert 0.035 < share < 0.065


def test_prepared_corpus_holds_every_document_once(fixture_corpus_dir):
    c = load_corpus(fixture_corpus_dir)
    assert c.domains == DOMAINS
    manifest = json.loads((fixture_corpus_dir / "manifest.json").read_text())
    for d in DOMAINS:
        docs = read_fixture(d)
        m = manifest["domains"][d]
        assert m["train_docs"] + m["valid_docs"] == len(docs)
        assert m["valid_docs"] >= 1 and m["sources"][0]["license"]
        train_text = bytes(c.train[d]).split(b"\x00")
        valid_text = bytes(c.valid[d]).split(b"\x00")
        assert not set(train_text) & set(valid_text)  # no document on both sides
        held = {x.text.encode() for x in docs if is_validation(d, x.id)}
        assert set(valid_text) == held


def test_prepare_rejects_a_domain_without_held_out_documents(tmp_path):
    docs = [Document("a", "text")]
    with pytest.raises(SchemaError, match="validation"):
        prepare_corpus({"prose": docs}, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_load_corpus_errors_name_the_fix(tmp_path, fixture_corpus_dir):
    with pytest.raises(SchemaError, match="corpus build"):
        load_corpus(tmp_path)
    with pytest.raises(SchemaError, match="web"):
        load_corpus(fixture_corpus_dir, ["web"])


def test_build_without_root_fails_with_a_clear_message(monkeypatch, tmp_path):
    import mixopt.train.corpus as corpus
    from mixopt.errors import TrainerError

    monkeypatch.setattr(corpus, "_dpkg_installed", lambda pkg: False)
    monkeypatch.setattr(corpus.shutil, "which", lambda exe: "/usr/bin/" + exe)
    monkeypatch.setattr(corpus.os, "geteuid", lambda: 1000)
    with pytest.raises(TrainerError, match="needs root.*--fixture"):
        corpus.build_corpus(tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_corpus_build_fixture_command(tmp_path, capsys):
    from mixopt.cli import main

    assert main(["corpus", "build", str(tmp_path / "c"), "--fixture", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["domains"]) == set(DOMAINS)
    assert load_corpus(tmp_path / "c").domains == DOMAINS
