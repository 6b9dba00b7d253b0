"""Run a command, pass its output through unchanged, and keep every line with the seconds since the start.

    SWIFTKIT_SWIFT="python3 bench/gpu/stamp.py DIR python3 -m swift.cli.main" swiftkit run ...

writes DIR/<argv[1] of the command>-<pid>.tsv ("seconds<TAB>line"), to see where a `swift sft` child's time
goes between the markers that swiftkit's phase clock knows (swiftkit/run/phases.py).
"""
import os
import signal
import subprocess
import sys
import time


def main() -> int:
    out_dir, argv = sys.argv[1], sys.argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: proc.send_signal(s))
    what = next((a for a in argv if a in ("sft", "infer", "export", "pt", "rlhf")), "swift")
    with open(os.path.join(out_dir, f"{what}-{os.getpid()}.tsv"), "w", encoding="utf-8") as stamps:
        stamps.write(f"0.000\t$ {' '.join(argv)}\n")
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()
            stamps.write(f"{time.monotonic() - start:.3f}\t{raw.decode('utf-8', 'replace').rstrip()}\n")
        code = proc.wait()
        stamps.write(f"{time.monotonic() - start:.3f}\t[exit {code}]\n")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
