"""Runs at start-up of every Python process of a swiftkit-started `swift sft` (render.training_env puts
it on their PYTHONPATH). In the training process, and only there:
- it caps the CUDA caching allocator at SWIFTKIT_EMULATE_MEMORY_GB before any model loads, so a large
  card can stand in for a 24 GB one (the CUDA context, ~0.5 GiB, lies outside the cap);
- with SWIFTKIT_RANK_STATS=DIR (several training processes), each rank writes its peak memory there;
- with SWIFTKIT_DATASET_FINGERPRINT=random, the datasets library names its transforms' cache files
  without hashing ms-swift's encode function (_random_fingerprints), and with SWIFTKIT_DATASET_IN_PROCESS=1
  a map of one process runs in the training process (_maps_in_process).
With SWIFTKIT_PROFILE_STEPS=N[:WARMUP] (`swiftkit run --profile-steps N`), the trainer's steps are labelled and N of
them profiled after WARMUP (step_profile.py, beside this file).
In `swift deploy` started by `swiftkit serve` (SWIFTKIT_DEPLOY_401=1), a wrong API key gets 401 (_unauthorized).
With SWIFTKIT_NO_CUDNN_SDPA=1 (a GPU recipe, unless gpu.cudnn_attention), every process of the child runs
scaled_dot_product_attention without cuDNN (_no_cudnn_attention).
"""
import os
import sys


def _is_training_process() -> bool:
    # `swift sft` re-executes .../swift/cli/sft.py (directly or under torchrun); only that process trains.
    return any(arg.replace("\\", "/").endswith("swift/cli/sft.py") for arg in sys.argv[:1])


def _cap_memory(gib: float) -> None:
    import torch

    if not torch.cuda.is_available():
        return
    local = os.environ.get("LOCAL_RANK")  # under torchrun each rank caps only its own device
    devices = [int(local)] if local is not None else range(torch.cuda.device_count())
    for device in devices:
        total = torch.cuda.get_device_properties(device).total_memory
        fraction = min(1.0, gib * 2**30 / total)
        torch.cuda.set_per_process_memory_fraction(fraction, device)
    print(f"[swiftkit] CUDA allocator capped at {gib:g} GiB per device", file=sys.stderr, flush=True)


_cap = os.environ.get("SWIFTKIT_EMULATE_MEMORY_GB")
if _cap and _is_training_process():
    _cap_memory(float(_cap))


def _rank_stats(directory: str) -> None:
    """Each training process writes its peak memory to DIR/rank-N.json every few seconds and at exit:
    ms-swift reports rank 0's only. GPU: the allocator's peak reserved (what ms-swift's memory(GiB) is);
    CPU: the process's peak resident set."""
    import atexit
    import json
    import resource
    import socket
    import threading
    import time

    rank = os.environ.get("RANK", "0")
    path = os.path.join(directory, f"rank-{rank}.json")
    facts = {"rank": int(rank), "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
             "node_rank": int(os.environ.get("GROUP_RANK", os.environ.get("NODE_RANK", "0"))),
             "host": socket.gethostname(), "pid": os.getpid()}

    def write() -> None:
        stats = dict(facts, time=time.time(),
                     peak_rss_gib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3))
        torch = sys.modules.get("torch")  # never import torch here: only report what the process uses
        try:
            if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
                device = torch.cuda.current_device()
                stats["device"] = device
                stats["peak_memory_gib"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 3)
        except Exception:  # noqa: BLE001 - a statistic must never break training
            pass
        try:
            tmp = f"{path}.tmp"
            with open(tmp, "w") as f:
                json.dump(stats, f)
            os.replace(tmp, path)
        except OSError:
            pass

    def loop() -> None:
        while True:
            time.sleep(5)
            write()

    os.makedirs(directory, exist_ok=True)
    threading.Thread(target=loop, name="swiftkit-rank-stats", daemon=True).start()
    atexit.register(write)


_stats = os.environ.get("SWIFTKIT_RANK_STATS")
if _stats and _is_training_process():
    _rank_stats(_stats)


def _after_import(patches: dict) -> None:
    """Run patches[name](module) right after the module `name` is first imported (modules that ms-swift imports
    later, or never in some processes: importing them here would cost every process)."""
    import importlib.abc
    import importlib.machinery

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            patch = patches.pop(fullname, None)
            if patch is None:
                return None
            if not patches:
                sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return spec
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                patch(module)

            spec.loader.exec_module = exec_module
            return spec

    for name in [n for n in patches if n in sys.modules]:
        patches.pop(name)(sys.modules[name])
    if patches:
        sys.meta_path.insert(0, Finder())


def _random_fingerprints(fingerprint) -> None:
    """datasets names the cache file of every `map` by hashing the mapped function with dill. ms-swift's
    encode function holds the template and so the tokenizer: pickling Qwen2.5's 151k-entry tokenizer took
    4.5 s of a 6.4 s data phase on the CPU, for 74 rows whose encoding takes 0.07 s. ms-swift reads those
    cache files back only with --load_from_cache_file (default false, and then swiftkit does not ask for
    this), so the name only has to be unique in the process: a random one, which is what datasets itself
    falls back to for a function it cannot hash. The rows, their order and the training are unchanged."""
    # arrow_dataset imports the name after this module has run, so it gets this one too
    fingerprint.update_fingerprint = lambda fingerprint_, transform, transform_args: (
        fingerprint.generate_random_fingerprint())


def _maps_in_process(arrow_dataset) -> None:
    """ms-swift maps its rows with num_proc=1 (--dataset_num_proc's default), which datasets runs in a pool
    of one worker process: the function, template and tokenizer are pickled across first (1.7 s of the
    data phase on the CPU with Qwen2.5's tokenizer). One worker does the same work as this process, so a map
    of one process runs here. (--dataset_num_proc 0 would say so to ms-swift, but load_dataset divides by
    it.) Larger num_proc values are left alone."""
    import functools

    original = arrow_dataset.Dataset.map

    @functools.wraps(original)
    def map(self, *args, **kwargs):
        if kwargs.get("num_proc") == 1:
            kwargs["num_proc"] = None
        return original(self, *args, **kwargs)

    arrow_dataset.Dataset.map = map


def _unauthorized(deploy) -> None:
    """ms-swift's deploy answers a missing or wrong API key with 400 Bad Request, which clients (the openai one
    among them) take for a malformed request and report as such; HTTP says 401 Unauthorized. With
    SWIFTKIT_DEPLOY_401=1 (swiftkit serve) that one error is answered 401; everything else is unchanged."""
    original = deploy.SwiftDeploy.create_error_response

    def create_error_response(status_code, message):
        return original(401 if message == "API key error" else status_code, message)

    deploy.SwiftDeploy.create_error_response = staticmethod(create_error_response)


def _no_cudnn_attention(torch) -> None:
    """PyTorch runs scaled_dot_product_attention on cuDNN first where the card has it (Hopper). Its calls cost
    milliseconds of CPU each on shapes it has not met, and rows padded per batch and generation's growing keys
    meet new shapes all the time: on an H200, 11.9 ms a call in a 24 GB identity step, 45 % of a verification
    engine call. Without it the flash and memory-efficient kernels run (bench/results/step-profile)."""
    try:
        torch.backends.cuda.enable_cudnn_sdp(False)
    except (AttributeError, RuntimeError):  # a torch without the switch has no cuDNN attention to turn off
        pass


def _profile_steps(trainer_module) -> None:
    """Every Trainer made in this process gets step_profile's labels and profiler callback (there is one)."""
    import functools

    import step_profile

    count, warmup = step_profile.steps_spec(os.environ["SWIFTKIT_PROFILE_STEPS"])
    original = trainer_module.Trainer.__init__

    @functools.wraps(original)  # ms-swift reads the signature to know which arguments it takes
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        step_profile.install(self, count, warmup)

    trainer_module.Trainer.__init__ = __init__


_patches = {}
if os.environ.get("SWIFTKIT_NO_CUDNN_SDPA") == "1":
    _patches["torch"] = _no_cudnn_attention
if os.environ.get("SWIFTKIT_DEPLOY_401") == "1":
    _patches["swift.pipelines.infer.deploy"] = _unauthorized
if _is_training_process():
    if os.environ.get("SWIFTKIT_DATASET_FINGERPRINT") == "random":
        _patches["datasets.fingerprint"] = _random_fingerprints
    if os.environ.get("SWIFTKIT_DATASET_IN_PROCESS") == "1":
        _patches["datasets.arrow_dataset"] = _maps_in_process
    if os.environ.get("SWIFTKIT_PROFILE_STEPS"):
        _patches["transformers.trainer"] = _profile_steps
if _patches:
    _after_import(_patches)


def _chain() -> None:
    """Run the sitecustomize this one shadows (one further along the path: the user's, a cluster's, a test's),
    as Python itself would have."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None or os.path.abspath(spec.origin or "") == os.path.abspath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_chain()
