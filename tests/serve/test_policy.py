"""serve/policy.py: the model name, who may connect, and a port in use told before anything loads."""
from __future__ import annotations

import socket

from swiftkit.serve import policy
from swiftkit.serve.policy import access_problems, is_local, pick_backend, port_problem, slug


def test_the_served_name_is_the_identity_slugged():
    assert slug("Swift-Robot") == "swift-robot"
    assert slug("My Bot 2.0!") == "my-bot-2.0"
    assert slug("小助手") == "tuned"


def test_only_loopback_is_local():
    assert is_local("127.0.0.1") and is_local("localhost") and is_local("::1")
    assert not is_local("0.0.0.0") and not is_local("192.168.1.5") and not is_local("example.org")


def test_serving_beyond_this_machine_needs_a_key_or_insecure_said_out_loud():
    assert access_problems("127.0.0.1", None, False) == []
    assert access_problems("0.0.0.0", "k", False) == [] and access_problems("0.0.0.0", None, True) == []
    (problem,) = access_problems("0.0.0.0", None, False)
    assert problem.format() == ("--host: --host 0.0.0.0 serves beyond this machine, and no --api-key is set: anyone "
                                "who can reach the port could use the model\n    fix: give --api-key KEY (clients "
                                "send it as a Bearer token), or --host 127.0.0.1, or say --insecure to serve it open "
                                "on purpose")


def test_a_port_in_use_is_named_with_a_fix():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        problem = port_problem("127.0.0.1", port)
        assert problem is not None and f"port {port} on 127.0.0.1 is not free" in problem.message
        assert f"give another --port (e.g. {port + 1})" in problem.fix
    assert port_problem("127.0.0.1", port) is None


def test_the_deploy_command_pins_the_port_names_the_model_and_sets_vllms_rank_limit(catalog, tmp_path):
    from swiftkit.render import ModelRef, render_deploy

    ref = ModelRef("/m", tmp_path / "checkpoint-5", "qwen2", "qwen2_5", "float32", "Be brief.")
    inv = render_deploy(ref, catalog, host="127.0.0.1", port=8123, name="swift-robot", base_name=None, api_key="k",
                        backend="transformers", max_batch_size=16, lora_rank=64)
    argv = " ".join(inv.argv)
    assert f"deploy --adapters {tmp_path}/checkpoint-5 --model /m" in argv
    assert "--served_model_name swift-robot --host 127.0.0.1 --port 8123 --api_key k" in argv
    assert "vllm_max_lora_rank" not in argv and inv.env["SWIFTKIT_DEPLOY_401"] == "1"
    inv = render_deploy(ref, catalog, host="127.0.0.1", port=8123, name="swift-robot", base_name="base", api_key=None,
                        backend="vllm", max_batch_size=16, lora_rank=64)
    argv = " ".join(inv.argv)
    assert f"--adapters swift-robot={tmp_path}/checkpoint-5" in argv and "--served_model_name base" in argv
    assert "--vllm_max_lora_rank 64" in argv and "--api_key" not in argv


def test_auto_picks_vllm_only_where_it_is_installed_and_a_gpu_serves(monkeypatch):
    """The reason is said on serve's first line; an engine asked for by name is taken as asked."""
    assert pick_backend("transformers", {}) == ("transformers", "asked for")
    assert pick_backend("vllm", {"CUDA_VISIBLE_DEVICES": ""}) == ("vllm", "asked for")
    monkeypatch.setattr(policy.importlib.util, "find_spec", lambda name: None)
    assert pick_backend(None, {"CUDA_VISIBLE_DEVICES": "0"}) == ("transformers", "auto: vllm is not installed")
    monkeypatch.setattr(policy.importlib.util, "find_spec", lambda name: object())
    assert pick_backend("auto", {"CUDA_VISIBLE_DEVICES": "0"}) == ("vllm", "auto: vllm is installed")
    assert pick_backend("auto", {"CUDA_VISIBLE_DEVICES": ""})[0] == "transformers"  # a CPU recipe
