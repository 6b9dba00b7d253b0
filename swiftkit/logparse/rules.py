"""The diagnosis table: which line of a failed run's output means which failure kind.

Data only: diagnosis.py walks RULES in order. Every rule quotes a real line (`example`) from
the logs under tests/fixtures/logs, and a test checks each rule against its own example.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One row of the diagnosis table. `example` is a real line the rule was written against;
    a test checks that every rule matches its own example. `requires`, when set, must also
    match some line of the tail (for warnings that only explain a crash that follows them)."""

    kind: str
    pattern: re.Pattern
    message: str
    hint: str
    example: str
    source: str
    requires: re.Pattern | None = None


def _rule(kind: str, pattern: str, message: str, hint: str, example: str, source: str,
          requires: str | None = None) -> Rule:
    return Rule(kind, re.compile(pattern), message, hint, example, source,
                re.compile(requires) if requires else None)


# Ordered: the first rule that matches wins. Specific causes come before the generic symptoms
# they produce (an OOM under torchrun also prints ChildFailedError; a missing local dataset
# ends in a network error because ms-swift then asks the hub). Messages are format strings
# over the pattern's named groups.
RULES: tuple[Rule, ...] = (
    _rule("interrupted", r"^KeyboardInterrupt\b",
          "The run was interrupted (Ctrl-C).",
          "Run the same command again to resume from the last complete checkpoint.",
          "KeyboardInterrupt",
          "Python's traceback for an uncaught SIGINT"),
    _rule("cuda_oom",
          r"(?:torch\.(?:cuda\.)?OutOfMemoryError|CUDA out of memory|CUDA error: out of memory)"
          r"(?:.*?(?P<alloc>Tried to allocate [\d.]+ [KMGT]?i?B))?",
          "The GPU ran out of memory. {alloc}",
          "Halve per_device_train_batch_size and double gradient_accumulation_steps (same effective "
          "batch); if gradient_checkpointing is off, turn it on first.",
          "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 354.00 MiB. GPU 0 has a total "
          "capacity of 79.18 GiB of which 55.65 GiB is free.",
          "gpu-h100-oom.log (micro-batch 16, gradient checkpointing off, allocator capped at 23 GiB)"),
    _rule("host_oom", r"Signal 9 \(SIGKILL\) received by PID|exitcode\s*:\s*-9\b",
          "A training process was killed (SIGKILL), most likely by the kernel's out-of-memory killer.",
          "Lower dataloader_num_workers and dataset_num_proc, or run on a host with more RAM; "
          "`dmesg | grep -i oom` confirms an OOM kill.",
          "  traceback : Signal 9 (SIGKILL) received by PID 32313",
          "torchrun's ChildFailedError summary, format as in cpu-tiny-ddp2-teardown-abort.log"),
    _rule("disk_full", r"No space left on device|\[Errno 28\]|PytorchStreamWriter failed writing file"
          r"|inline_container\.cc:\d+\]\s*\.\s*unexpected pos \d+ vs \d+",
          "The disk is full.",
          "Free space where output_dir lives, or set save_total_limit to keep fewer checkpoints; "
          "the checkpoint being written when this happened is incomplete.",
          "OSError: [Errno 28] No space left on device: '/data/full/out/v0-20261122-133049/args.json' "
          "-> '/data/full/out/v0-20261122-133049/checkpoint-5/args.json'",
          "probe-disk-full.log (output_dir on a 120 KiB tmpfs)"),
    _rule("bad_flag", r"remaining_argv: (?P<argv>\[.*\])",
          "ms-swift rejected these arguments: {flags}.",
          "Rename or remove them: ms-swift 4 renamed several 3.x flags (--train_type is now "
          "--tuner_type, --evaluation_strategy is --eval_strategy, --no_cuda is --use_cpu).",
          "ValueError: remaining_argv: ['--train_type', 'lora']",
          "probe-bad-flag.log (swift/pipelines/base.py:_parse_args)"),
    _rule("model_type", r"Failed to automatically match `model_type` for `(?P<path>[^`]+)`",
          "ms-swift could not tell which model type {path} is.",
          "Pass model_type and template explicitly for a local model dir (for Qwen2.5: "
          "--model_type qwen2 --template qwen2_5).",
          "ValueError: Failed to automatically match `model_type` for `/data/tiny/tiny-qwen`. Multiple "
          "possible types found: ['qwen2', 'qwen2_gte']. Please specify `model_type` manually.",
          "probe-model-type-ambiguous.log"),
    _rule("dataset", r"The local path does not exist, dataset_id: `(?P<path>[^`]+)`",
          "The dataset file {path} does not exist.",
          "Fix the dataset path in the recipe (relative paths are resolved from the working dir).",
          "ValueError: The local path does not exist, dataset_id: `/data/missing.json`. "
          "os.path.exists(dataset_id): False",
          "probe-dataset-path-missing.log (swift/dataset/loader.py)"),
    _rule("dataset", r"Dataset (?P<dataset>\S+) load failed",
          "The dataset {dataset} could not be loaded; a path that is not an existing local file is "
          "looked up on the hub instead.",
          "If {dataset} is meant to be a local file, check its path; hub datasets need network access.",
          "[ERROR:swift] Dataset x.json load failed: subset_name=default,split=train with error: [E1001] …",
          "probe-dataset-relative-path-to-hub.log (a relative path that does not exist)"),
    _rule("dataset", r"Failed to load JSON from file '(?P<path>[^']+)'",
          "The dataset file {path} is not valid JSON/JSONL.",
          "Fix the JSON syntax at the row the message names (one JSON object per line for .jsonl).",
          "Failed to load JSON from file '/data/broken.jsonl' with error <class 'pyarrow.lib.ArrowInvalid'>: "
          "JSON parse error: Missing a comma or ']' after an array element. in row 0",
          "probe-dataset-malformed-jsonl.log"),
    _rule("dataset", r"There are errors in the dataset, the data will be deleted",
          "No usable dataset row was left: rows were dropped as malformed (see the warning above).",
          "Give each row `messages` (or `conversations`, or instruction/input/output, or query/response).",
          "[WARNING:swift] 👆👆👆There are errors in the dataset, the data will be deleted",
          "probe-dataset-no-valid-rows.log (rows with a `foo` column only)",
          requires=r"^ZeroDivisionError|num_samples should be a positive integer|"
                   r"'NoneType' object is not iterable"),
    _rule("dataset", r"Dataset filtered, origin length: (?P<rows>\d+), filtered dataset length: 0\b",
          "All {rows} dataset rows were dropped: none fits in max_length.",
          "Raise max_length (or shorten the system prompt and answers).",
          "[INFO:swift] Dataset filtered, origin length: 5, filtered dataset length: 0",
          "probe-dataset-all-rows-too-long.log (max_length 64)"),
    _rule("dataset", r"Failed to retrieve the dataset|Please provide subsets|DatasetGenerationError",
          "The dataset could not be read.",
          "Check the dataset file and its format; the lines above the traceback name the bad row.",
          "ValueError: Failed to retrieve the dataset. You can avoid this issue by increasing "
          "`max_length` or modifying the `truncation_strategy`.",
          "swift/dataset/utils.py (no log of it yet)"),
    _rule("model_not_found",
          r"path: '(?P<path>[^']+)' not found|NotExistError|RepositoryNotFoundError|"
          r"is not a local folder and is not a valid model identifier",
          "The model was not found{path_suffix}.",
          "Check the model path or hub id; a local dir must exist on this machine.",
          "ValueError: path: '/data/nomodel' not found",
          "probe-model-path-missing.log (swift/utils/hub_utils.py:safe_snapshot_download)"),
    _rule("network",
          r"NetworkError: \[E\d+\]|_DownloadDeadlineError|RequestTimeoutError|"
          r"requests\.exceptions\.(?:ConnectionError|ConnectTimeout|ReadTimeout)|NameResolutionError|"
          r"Temporary failure in name resolution|LocalEntryNotFoundError|OfflineModeIsEnabled",
          "The model/dataset hub could not be reached.",
          "Use a local model dir and local dataset files, or run where the hub is reachable.",
          "modelscope_hub.errors.NetworkError: [E1020] Connection failed: _DownloadHTTPSConnectionPool("
          "host='modelscope.cn', port=443): Max retries exceeded with url: /api/v1/models/Qwen/"
          "NoSuchModel-0.5B/repo/files?Revision=master&Recursive=True",
          "probe-model-hub-unreachable.log (no network)"),
    _rule("rendezvous",
          r"failed to listen on any local network address\. port: (?P<port>\d+).*EADDRINUSE",
          "Node 0 could not listen on the master port {port}: another process already uses it.",
          "Start the run with another port on every node (--master-port P), or stop what holds it "
          "(`ss -ltnp | grep :{port}` on node 0).",
          "torch.distributed.DistNetworkError: The server socket has failed to listen on any local network "
          "address. port: 29533, useIpv6: false, code: -98, name: EADDRINUSE, message: address already in use",
          "cpu-tiny-dist-port-in-use-node0.log (another process listening on MASTER_PORT)"),
    _rule("rendezvous",
          r"(?:client socket has (?:timed out after \d+ms while trying to connect to|failed to connect to any "
          r"network address of) \((?P<host>[^,]+), (?P<port>\d+)\)|Ping failed, invalid value returned from "
          r"server)",
          "This node could not reach the master {host}:{port} (node 0's rendezvous): nothing answered there, "
          "or something that is not torch did.",
          "Check that --master-addr is node 0's address as this node reaches it, that node 0 started with the same "
          "--master-port, and that no firewall blocks the port; the wait is bounded by torchrun's rendezvous "
          "timeout (900 s; PET_RDZV_CONF=timeout=N changes it).",
          "[E1129 04:28:33.829206898 socket.cpp:1028] [c10d] The client socket has timed out after 30000ms "
          "while trying to connect to (127.0.0.1, 29599).",
          "cpu-tiny-dist-master-unreachable-bounded.log, -noroute-bounded.log, -proxied-bounded.log"),
    _rule("distributed",
          r"Connection closed by peer \[(?P<peer>[^\]]+)\]:\d+\. This is typically caused by a remote worker",
          "A training process at {peer} went away (crashed or was killed), and this node's processes lost "
          "their peer.",
          "The other node's log says why (swiftkit-nodeR.log in the run dir, and its swiftkit-node-R.json); "
          "run again to resume from the last complete checkpoint.",
          "[rank0]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] "
          "Connection closed by peer [127.0.0.1]:901. This is typically caused by a remote worker crashing.",
          "cpu-tiny-dist-rank-killed-node0.log (node 1's training process SIGKILLed mid-run)"),
    _rule("distributed",
          r"Timed out waiting (?P<ms>\d+)ms for (?:send|recv) operation|Watchdog caught collective operation "
          r"timeout",
          "A collective operation timed out: another rank stopped answering (hung, stopped or too slow).",
          "The other ranks' logs show which one stopped; distributed.timeout sets how long a collective waits. "
          "Run again to resume from the last complete checkpoint.",
          "[rank0]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:"
          "129] Timed out waiting 60000ms for send operation to complete",
          "cpu-tiny-dist-rank-stopped-timeout-node0.log (node 1 SIGSTOPped, ddp_timeout 60)"),
    _rule("distributed", r"terminate called without an active exception",
          "A training process aborted while shutting down.",
          "Look at the checkpoint on disk: if it is complete, the run's work is done.",
          "terminate called without an active exception",
          "cpu-tiny-ddp2-teardown-abort.log (2 ranks, gloo, after the checkpoint was saved)"),
    _rule("distributed",
          r"Watchdog caught collective operation timeout|NCCL (?:error|timeout)|DistBackendError|"
          r"DistNetworkError|ProcessGroupNCCL|ProcessGroupGloo|Connection closed by peer",
          "Communication between the training processes failed.",
          "Rerun with NCCL_DEBUG=INFO to see which rank failed; check that every GPU is visible "
          "and no other job holds them.",
          "[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE) "
          "ran for 600000 milliseconds before timing out.",
          "torch's ProcessGroupNCCL watchdog message (no log of it yet)"),
    _rule("distributed", r"ChildFailedError",
          "One of the training processes failed.",
          "The first failure in the summary ('Root Cause') names the rank; its traceback is above it.",
          "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
          "cpu-tiny-ddp2-teardown-abort.log"),
)
