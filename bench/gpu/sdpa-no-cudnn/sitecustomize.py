"""Bench only (bench/gpu/step_profile.sh, variant sdpa-no-cudnn): PyTorch's scaled_dot_product_attention without
its cuDNN backend, in every Python process that has this folder on its path. swiftkit's own sitecustomize
(swiftkit/child/sitecustomize.py) comes first on the training process's path and runs this one after its own
work, as it runs any sitecustomize it shadows. Torch is imported only when something else imports it."""
import sys


def _no_cudnn_sdpa(torch) -> None:
    torch.backends.cuda.enable_cudnn_sdp(False)
    print("[bench] cuDNN's scaled_dot_product_attention backend off", file=sys.stderr, flush=True)


class _AfterTorch:
    def find_spec(self, fullname, path, target=None):
        if fullname != "torch":
            return None
        import importlib.machinery

        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _no_cudnn_sdpa(module)

        spec.loader.exec_module = exec_module
        return spec


if "torch" in sys.modules:
    _no_cudnn_sdpa(sys.modules["torch"])
else:
    sys.meta_path.insert(0, _AfterTorch())
