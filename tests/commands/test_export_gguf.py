"""export --format gguf: refusals before anything is written (fake runs), then the real round trip on the demo
run: merged on the way, converted by llama.cpp's converter, answered in llama.cpp itself."""
from __future__ import annotations

import json
from collections import namedtuple

import pytest
from conftest import run_cli
from test_checkpoints import safetensors_bytes
from test_targets import trained

from swiftkit.commands import export_gguf
from swiftkit.gguf import write
from swiftkit.gguf.header import read_header
from swiftkit.results import exports
from swiftkit.results.fingerprint import file_sha256


def merged_export(tmp_path, *, verified=True, architectures=("Qwen2ForCausalLM",), fmt="safetensors"):
    """A dir that looks like a swiftkit merged export (marker, config, weights) without any real weights."""
    d = tmp_path / "checkpoint-10-merged"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"architectures": list(architectures), "torch_dtype": "float32"}))
    (d / "model.safetensors").write_bytes(safetensors_bytes({"w": ("F32", [64, 64])}))
    (d / "args.json").write_text(json.dumps({"model_type": "qwen2", "template": "qwen2_5"}))
    digests = {} if fmt == "gguf" else {"model.safetensors": file_sha256(d / "model.safetensors")}
    exports.write_marker(d, exports.ExportInfo(str(d), str(tmp_path / "checkpoint-10"), "/models/base", 1, digests,
                                               "float32", verified=verified, format=fmt))
    return d


def test_a_type_llama_cpp_makes_with_llama_quantize_is_refused_with_the_command(tmp_path):
    run = trained(tmp_path)
    code, _, err = run_cli("export", str(run), "--format", "gguf", "--quant", "q4_k_m")
    assert code == 2 and "swiftkit export: nothing was exported" in err
    assert "--quant q4_k_m: llama.cpp makes q4_k_m with its C++ tool llama-quantize" in err
    assert "llama-quantize MODEL-f16.gguf MODEL-q4_k_m.gguf Q4_K_M" in err
    assert "Traceback" not in err
    assert not (run / "checkpoint-10-merged").exists() and not (run / "checkpoint-10-gguf").exists()


def test_every_problem_at_once_and_nothing_written(tmp_path, monkeypatch):
    merged = merged_export(tmp_path, verified=False, architectures=("MadeUpForCausalLM",))
    (tmp_path / "checkpoint-10-gguf").mkdir()
    leftover = tmp_path / ".checkpoint-10-gguf.partial-999999"
    leftover.mkdir()
    monkeypatch.setattr(write, "llamacpp_installed", lambda: False)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(export_gguf.shutil, "disk_usage", lambda path: usage(10, 10, 0))
    code, _, err = run_cli("export", str(merged), "--format", "gguf", "--quant", "tq1_0", "--quant", "f16")
    assert code == 2, err
    assert "is marked NOT verified: it answered unlike base + adapter" in err
    assert "no GGUF layout for MadeUpForCausalLM" in err and "export it as safetensors" in err
    assert "checkpoint-10-gguf already exists (not a complete export); swiftkit never overwrites an export" in err
    assert "is what an earlier export to checkpoint-10-gguf left when it was cut off" in err
    assert "--quant tq1_0: ternary types are for models trained ternary" in err
    assert "needs llama.cpp's Python binding (xllamacpp)" in err and "pass --no-verify" in err
    assert "not enough disk space for the GGUF export" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".checkpoint-10-gguf.partial-999999", "checkpoint-10-gguf",
                                                         "checkpoint-10-merged"]
    assert list((tmp_path / "checkpoint-10-gguf").iterdir()) == []


def test_a_gguf_export_is_not_converted_again(tmp_path):
    merged = merged_export(tmp_path, fmt="gguf")
    code, _, err = run_cli("export", str(merged), "--format", "gguf", "--output", str(tmp_path / "again"))
    assert code == 2 and "is a GGUF export (" in err and "llama.cpp and Ollama run it, ms-swift does not" in err
    assert f"pass the merged export it was made from: {tmp_path / 'checkpoint-10'}" in err
    code, _, err = run_cli("chat", str(merged), "--message", "hi")
    assert code == 2 and "is a GGUF export (" in err and "Traceback" not in err


def test_options_of_the_other_format_are_refused(tmp_path):
    run = trained(tmp_path)
    code, _, err = run_cli("export", str(run), "--format", "gguf", "--dtype", "bfloat16", "--quant-bits", "4")
    assert code == 2 and "--dtype, --quant-bits: only for safetensors exports" in err
    code, _, err = run_cli("export", str(run), "--quant", "q8_0")
    assert code == 2 and "--quant: only for GGUF exports" in err and "add --format gguf" in err


def test_an_unverified_merge_on_the_way_is_not_converted(tmp_path):
    run = trained(tmp_path)
    (run / "checkpoint-10-merged").mkdir()  # there, but not an export swiftkit made
    code, _, err = run_cli("export", str(run), "--format", "gguf")
    assert code == 2 and "checkpoint-10-merged is there but is not a merged export swiftkit made" in err


@pytest.fixture(scope="module")
def demo_copy(gguf_export):
    """The demo run's copy that conftest's gguf_export exported (f32 and q8_0, merged on the way)."""
    return gguf_export[0]


@pytest.mark.e2e
def test_round_trip_merged_on_the_way_converted_and_answered_in_llama_cpp(gguf_export):
    demo_copy, code, err = gguf_export
    assert code == 0, err[-3000:]
    run_dir = next(demo_copy.glob("v*-*"))
    merged, final = next(run_dir.glob("checkpoint-*-merged")), next(run_dir.glob("checkpoint-*-gguf"))
    assert "same greedy answer as base + adapter" in err  # merged and verified first
    assert "chat template: the model's own" in err and "(pre-tokenizer qwen2)" in err
    info = json.loads((final / exports.MARKER).read_text())
    assert info["format"] == "gguf" and info["verified"] is True and info["source"] == str(merged)
    assert set(info["gguf"]) == {"f32", "q8_0"}
    for q, entry in info["gguf"].items():
        path = final / entry["file"]
        assert entry["file"] == f"swift-robot-{q}.gguf" and info["sha256"][entry["file"]] == file_sha256(path)
        assert entry["agreement"] >= entry["min_agreement"] and entry["verified"]
        header = read_header(path)
        assert header.metadata["tokenizer.chat_template"] == export_gguf.model_template(merged)
        assert header.metadata["tokenizer.ggml.pre"] == "qwen2"
        modelfile = (final / entry["modelfile"]).read_text()
        assert f"FROM ./{entry['file']}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
        answers = json.loads((run_dir / "exports" / final.name / f"llamacpp-{q}-answers.json").read_text())
        assert "Swift-Robot" in answers["answers"]["你是谁？"] and "Swift-Robot" in answers["answers"]["Who are you?"]
    assert "ollama create swift-robot -f swift-robot-f32.Modelfile" in err
    assert exports.problems(final) == []
    record = json.loads((run_dir / "swiftkit-run.json").read_text())
    assert [e.get("format", "safetensors") for e in record["exports"]][-2:] == ["safetensors", "gguf"]
    # the merged model is there now: a second GGUF export uses it, and the first is never overwritten
    code, _, err = run_cli("export", str(demo_copy), "--format", "gguf")
    assert code == 2 and f"{final} already exists" in err


@pytest.mark.e2e
def test_a_gguf_whose_template_differs_from_training_is_kept_unverified(demo_copy, monkeypatch, tmp_path):
    from swiftkit.gguf import chat_template

    merged = next(next(demo_copy.glob("v*-*")).glob("checkpoint-*-merged"))  # made by the round trip above
    broken = chat_template.Choice("{% for m in messages %}{{ m['content'] }}\n{% endfor %}", "the model's own",
                                  None, ("<|im_end|>",))
    monkeypatch.setattr(export_gguf.chat_template, "choose", lambda *a: broken)
    final = tmp_path / "broken"
    code, _, err = run_cli("export", str(merged), "--format", "gguf", "--quant", "f32", "--output", str(final))
    assert code == 12, err[-3000:]
    assert "llama.cpp, f32: same greedy answer as the merged model" in err and "NOT verified" in err
    assert "differs:" in err
    info = json.loads((final / exports.MARKER).read_text())
    assert info["verified"] is False and info["gguf"]["f32"]["agreement"] < 0.5


@pytest.mark.e2e
def test_gguf_in_run_gguf_out_answers_with_the_new_identity(demo_run, tmp_path):
    """The whole loop on the tiny model: a GGUF in, `swiftkit run` with export.format gguf, a GGUF out that
    llama.cpp answers with the identity trained in."""
    from swiftkit import paths

    out, code, *_ = demo_run
    source = tmp_path / "tiny.gguf"
    write.write(out / "model", "f32", source, None, tmp_path / "convert.log")
    code, _, err = run_cli("run", str(paths.RECIPES_DIR / "tiny-identity.yaml"), "--set", f"model.id={source}",
                           "--set", f"output.dir={tmp_path / 'run'}", "--set", "export.format=gguf",
                           "--set", "export.gguf_quant=f32")
    assert code == 0, err[-3000:]
    run_dir = next((tmp_path / "run").glob("v*-*"))
    record = json.loads((run_dir / "swiftkit-run.json").read_text())
    assert [e.get("format") for e in record["exports"]] == ["safetensors", "gguf"]
    gguf = record["exports"][-1]
    assert gguf["verified"] is True and gguf["gguf"]["f32"]["agreement"] >= 0.9
    final = next(run_dir.glob("checkpoint-*-gguf"))
    assert (final / "swift-robot-f32.gguf").is_file() and (final / "Modelfile").is_file()
    answers = json.loads((run_dir / "exports" / final.name / "llamacpp-f32-answers.json").read_text())["answers"]
    assert "Swift-Robot" in answers["你是谁？"] and "CSDN" in answers["Who are you?"]
