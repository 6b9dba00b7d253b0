"""serve/gguf.py, pure parts: which type of a GGUF export is served, and what is refused before anything starts
(markers written here, tiny stand-in files; nothing is loaded)."""
from __future__ import annotations

from pathlib import Path

from conftest import run_cli

from swiftkit.results import exports
from swiftkit.results.fingerprint import file_sha256
from swiftkit.serve import gguf


def export(tmp_path: Path, **types: dict) -> Path:
    """A GGUF export dir: for each type, a file and its marker entry (agreement, verified, min_agreement)."""
    folder = tmp_path / "checkpoint-10-gguf"
    folder.mkdir(parents=True, exist_ok=True)
    info = exports.ExportInfo(str(folder), str(tmp_path / "checkpoint-10-merged"), "/models/base", 1, {}, "float32",
                              format="gguf")
    for q, entry in types.items():
        name = f"swift-robot-{q}.gguf"
        (folder / name).write_bytes(b"GGUF" + q.encode())
        info.sha256[name] = file_sha256(folder / name)
        info.gguf[q] = {"file": name, "type": q, **entry}
    exports.write_marker(folder, info)
    return folder


def test_without_quant_the_best_agreeing_verified_type_is_served_and_said(tmp_path):
    folder = export(tmp_path, f32={"agreement": 0.97, "verified": True, "min_agreement": 0.9},
                    q8_0={"agreement": 0.99, "verified": False, "min_agreement": 1.0},
                    f16={"agreement": 0.97, "verified": True, "min_agreement": 0.9})
    found = gguf.locate(str(folder))
    q, why, problems = gguf.choose(found.info, None, None, folder)
    assert (q, problems) == ("f32", [])  # q8_0 agreed more but is unverified; f32 wins the tie with f16
    assert why == "f32: best agreement of the verified types, 97.0% same answers as the merged model; " \
                  "--quant picks another of f32, q8_0, f16"
    assert gguf.served_name(found.info, q) == "swift-robot" and gguf.threshold(found.info, q, None) == 0.9
    assert gguf.threshold(found.info, q, 0.5) == 0.5


def test_quant_picks_one_and_a_type_not_there_lists_the_ones_that_are(tmp_path):
    folder = export(tmp_path, f32={"agreement": 1.0, "verified": True}, q8_0={"agreement": 0.98, "verified": True})
    info = gguf.locate(str(folder)).info
    assert gguf.choose(info, "Q8-0", None, folder)[:2] == ("q8_0", "q8_0, as asked")
    q, _, problems = gguf.choose(info, "f16", None, folder)
    assert q is None and len(problems) == 1
    text = problems[0].format()
    assert f"--quant: --quant f16: the GGUF export {folder} has no f16 file; it holds f32, q8_0" in text
    assert "fix: --quant f32 (one of f32, q8_0), or export f16: swiftkit export" in text and "--quant f16" in text


def test_a_file_of_the_export_serves_its_type_and_a_file_elsewhere_is_not_a_gguf_export(tmp_path):
    folder = export(tmp_path, f32={"agreement": 1.0, "verified": True}, q8_0={"agreement": 0.98, "verified": True})
    found = gguf.locate(str(folder / "swift-robot-q8_0.gguf"))
    assert found.folder == folder and gguf.choose(found.info, None, found.file)[:2] == ("q8_0", "q8_0, the file given")
    _, _, problems = gguf.choose(found.info, "f32", found.file, folder)
    assert "--quant f32: swift-robot-q8_0.gguf is the q8_0 file" in problems[0].message
    (tmp_path / "loose.gguf").write_bytes(b"GGUF")
    assert not gguf.is_gguf_export(str(tmp_path / "loose.gguf")) and not gguf.is_gguf_export(str(tmp_path))
    assert not gguf.is_gguf_export(str(folder / "other.gguf"))


def test_an_unverified_never_checked_or_changed_file_is_refused_unless_no_verify(tmp_path):
    folder = export(tmp_path, f32={"agreement": 0.4, "verified": False, "min_agreement": 0.9},
                    q8_0={"agreement": None, "verified": False})
    found = gguf.locate(str(folder))
    text = gguf.file_problems(found, "f32", verify=True)[0].format()
    assert "swift-robot-f32.gguf is marked NOT verified: llama.cpp answered as the merged model in 40.0% of the " \
           "probes (needed 90%)" in text and "--no-verify to serve it unchecked" in text
    assert "was never checked in llama.cpp (exported with --no-verify)" in gguf.file_problems(found, "q8_0", True)[0].message
    assert gguf.file_problems(found, "f32", verify=False) == []
    (folder / "swift-robot-f32.gguf").write_bytes(b"GGUF changed")
    assert "changed since the export (sha256 differs" in gguf.file_problems(found, "f32", False)[0].message


def test_swift_deploy_options_are_refused_together():
    assert gguf.deploy_only_problems({"--backend": None, "--model-type": None}) == []
    problem, = gguf.deploy_only_problems({"--backend": "vllm", "--model-type": "qwen2", "--template": None})
    assert problem.message.startswith("--backend vllm, --model-type qwen2: only for `swift deploy`")
    assert "a GGUF export is served by llama.cpp's own server" in problem.message


def test_the_cli_says_every_problem_at_once_and_starts_nothing(tmp_path):
    folder = export(tmp_path, f32={"agreement": 0.4, "verified": False, "min_agreement": 0.9})
    code, _, err = run_cli("serve", str(folder), "--backend", "vllm", "--template", "qwen2_5", "--host", "0.0.0.0")
    assert code == 2 and f"swiftkit serve {folder}: nothing was started" in err
    assert "--backend vllm, --template qwen2_5: only for `swift deploy`" in err
    assert "swift-robot-f32.gguf is marked NOT verified" in err and "no --api-key is set" in err
    code, _, err = run_cli("serve", str(folder), "--quant", "q4_k_m", "--no-verify")
    assert code == 2 and "has no q4_k_m file; it holds f32" in err and "Traceback" not in err
    assert not list(folder.glob("serve-*"))


def test_quant_is_refused_for_what_swift_deploy_serves(tmp_path):
    from test_targets import trained

    run = trained(tmp_path)
    code, _, err = run_cli("serve", str(run), "--quant", "q8_0")
    assert code == 2 and "--quant: only for a GGUF export (swiftkit export TARGET --format gguf)" in err
